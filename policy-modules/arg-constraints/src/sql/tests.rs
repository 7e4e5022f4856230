use super::check;

#[test]
fn read_only_statements_pass() {
    for sql in [
        "SELECT 1",
        "select * from users where id = $1;",
        "  SELECT name FROM t WHERE note = 'DROP TABLE x; --' ;  \n",
        "WITH recent AS (SELECT * FROM orders) SELECT count(*) FROM recent",
        "EXPLAIN SELECT * FROM t",
        "EXPLAIN ANALYZE SELECT * FROM t",
        "SHOW TABLES",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT \"delete\" FROM t",
        "SELECT 'it''s' AS quote",
        "SELECT a FROM t -- the latest rows\nORDER BY a",
        "SELECT /* count them */ count(*) FROM t",
        "SELECT replace(name, 'a', 'b'), updated_at FROM t",
        "SELECT * FROM pragma_table_info('t')",
        "SELECT arr[1] FROM t",
    ] {
        assert_eq!(check(sql), Ok(()), "{sql}");
    }
}

#[test]
fn data_changing_statements_fail() {
    for sql in [
        "",
        "   ",
        "-- only a comment",
        "INSERT INTO t VALUES (1)",
        "update t set a = 1",
        "DELETE FROM t",
        "DROP TABLE t",
        "TRUNCATE t",
        "GRANT ALL ON t TO bob",
        "PRAGMA writable_schema = 1",
        "ATTACH DATABASE 'x' AS y",
        "COPY t TO '/tmp/x'",
        "CALL proc()",
        "EXEC sp_who",
        "VALUES (1)",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "WITH x AS (VALUES (1)) TABLE x",
        "EXPLAIN ANALYZE DELETE FROM t",
        "SELECT * INTO backup FROM t",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
    ] {
        assert!(check(sql).is_err(), "{sql}");
    }
}

#[test]
fn second_statements_fail() {
    for sql in [
        "SELECT 1; DROP TABLE t",
        "SELECT 1; SELECT 2",
        "SELECT 1;;",
        "SELECT 1; -- trailing comment",
        "SELECT 1 ;\nDELETE FROM t",
    ] {
        assert!(check(sql).is_err(), "{sql}");
    }
}

#[test]
fn dialect_ambiguities_fail() {
    for sql in [
        // MySQL: \' escapes, so the string ends later than standard SQL thinks.
        r"SELECT 'x\''; DROP TABLE t; --'",
        r"SELECT E'\'' ",
        // MySQL: `--` without a space is not a comment; `#` is one.
        "SELECT 1 --'\n'; DROP TABLE t; --'",
        "SELECT 1 # '\n; DROP TABLE t; -- '",
        // PostgreSQL: comments nest, and $$ quotes.
        "SELECT /* /* */ ' */ ; DROP TABLE t; -- '",
        "SELECT $$'$$; DROP TABLE t; --'",
        // SQL Server / MySQL quoted identifiers holding a quote.
        "SELECT [']; DROP TABLE t; --']",
        "SELECT `'`; DROP TABLE t; `'`",
        // MySQL executable comments and optimizer hints.
        "SELECT 1 /*!50000 , (DROP) */",
        "SELECT /*+ no_index */ 1",
        // Keywords hidden in comments or identifiers.
        "SELECT 1 /* DELETE */",
        "SELECT `update` FROM t",
        "SELECT q'[it's]' FROM dual",
        "SELECT 'unterminated",
        "SELECT 1 /* unterminated",
        "\\! rm -rf /",
    ] {
        assert!(check(sql).is_err(), "{sql}");
    }
}

#[test]
fn reasons_name_the_problem() {
    assert_eq!(
        check("DELETE FROM t"),
        Err(
            "SQL starts with DELETE; only SELECT, WITH … SELECT, EXPLAIN and SHOW are allowed"
                .into()
        )
    );
    assert_eq!(
        check("SELECT 1; DROP TABLE t"),
        Err("SQL has a second statement after ';'".into())
    );
    assert_eq!(
        check("SELECT * FROM t FOR UPDATE"),
        Err("SQL contains UPDATE, which is not read-only".into())
    );
}
