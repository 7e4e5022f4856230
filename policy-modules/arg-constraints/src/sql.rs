//! `read_only_sql`: accepts one SELECT / WITH … SELECT / EXPLAIN / SHOW
//! statement and nothing that could change data.
//!
//! This is a lexical check, not a parser, and it is written to be safe
//! across dialects rather than exact for one: wherever PostgreSQL, MySQL,
//! SQLite or SQL Server would split the text differently (backslash escapes,
//! `$$` quoting, `#` and nested comments, `--` without a space, Oracle
//! `q'…'`), it refuses. So a region it skips as a string literal is a string
//! literal in every dialect, and everything else — code, comments, quoted
//! identifiers — must be free of `;` and data-changing keywords. It cannot
//! see side effects hidden in functions (`SELECT pg_terminate_backend(…)`):
//! pair it with a read-only database role.

/// Keywords that may begin or hide a data-changing statement. Checked in
/// code, comments and quoted identifiers; a string literal may contain them.
const FORBIDDEN: &[&str] = &[
    "ALTER",
    "ATTACH",
    "CALL",
    "COPY",
    "CREATE",
    "DEALLOCATE",
    "DELETE",
    "DETACH",
    "DROP",
    "DUMPFILE",
    "EXEC",
    "EXECUTE",
    "EXPORT",
    "GRANT",
    "IMPORT",
    "INSERT",
    "INTO",
    "LOAD",
    "LOCK",
    "MERGE",
    "OUTFILE",
    "PRAGMA",
    "PREPARE",
    "REINDEX",
    "RENAME",
    "REVOKE",
    "TRUNCATE",
    "UPDATE",
    "UPSERT",
    "VACUUM",
];

/// The statements a query may start with.
const READ_ONLY_STARTS: &[&str] = &["SELECT", "WITH", "EXPLAIN", "SHOW"];

/// `Ok` when `sql` is one read-only statement; `Err` says why not.
pub(crate) fn check(sql: &str) -> Result<(), String> {
    let words = scan(sql.as_bytes())?;
    let first = words
        .iter()
        .find(|w| w.in_code)
        .ok_or_else(|| "SQL has no statement".to_owned())?;
    if !READ_ONLY_STARTS
        .iter()
        .any(|k| first.text.eq_ignore_ascii_case(k))
    {
        return Err(format!(
            "SQL starts with {}; only SELECT, WITH … SELECT, EXPLAIN and SHOW are allowed",
            first.text.to_ascii_uppercase()
        ));
    }
    if first.text.eq_ignore_ascii_case("WITH")
        && !words
            .iter()
            .any(|w| w.in_code && w.text.eq_ignore_ascii_case("SELECT"))
    {
        return Err("SQL WITH has no SELECT".into());
    }
    if let Some(word) = words
        .iter()
        .find(|w| FORBIDDEN.iter().any(|k| w.text.eq_ignore_ascii_case(k)))
    {
        let place = if word.in_code {
            ""
        } else {
            " (in a comment or quoted identifier)"
        };
        return Err(format!(
            "SQL contains {}{place}, which is not read-only",
            word.text.to_ascii_uppercase()
        ));
    }
    Ok(())
}

/// A word outside string literals.
struct Word<'a> {
    text: &'a str,
    /// In code proper, not in a comment or quoted identifier.
    in_code: bool,
}

/// Splits the text into words, skipping string literals, and refuses
/// anything ambiguous between dialects or a second statement.
fn scan(sql: &[u8]) -> Result<Vec<Word<'_>>, String> {
    let mut words = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while let Some(&c) = sql.get(i) {
        if ended && !c.is_ascii_whitespace() {
            return Err("SQL has a second statement after ';'".into());
        }
        let next = sql.get(i + 1).copied();
        i = match (c, next) {
            (b'\'' | b'"', _) => {
                refuse_q_quote(sql, i)?;
                skip_literal(sql, i)?
            }
            (b'`', _) | (b'[', _) => {
                let close = if c == b'`' { b'`' } else { b']' };
                let end = find_close(sql, i + 1, close)
                    .ok_or_else(|| "SQL has an unterminated quoted identifier".to_owned())?;
                opaque(sql, i + 1, end, &mut words)?;
                end + 1
            }
            (b'-', Some(b'-')) | (b'#', _) => {
                let end = sql[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(sql.len(), |p| i + p);
                opaque(sql, i, end, &mut words)?;
                end
            }
            (b'/', Some(b'*')) => {
                let end = find(sql, i + 2, b"*/")
                    .ok_or_else(|| "SQL has an unterminated comment".to_owned())?;
                if matches!(sql.get(i + 2), Some(b'!' | b'+')) {
                    return Err("SQL has an executable comment or hint (/*! or /*+)".into());
                }
                if find(&sql[..end], i + 2, b"/*").is_some() {
                    return Err("SQL has a nested comment".into());
                }
                opaque(sql, i + 2, end, &mut words)?;
                end + 2
            }
            (b';', _) => {
                ended = true;
                i + 1
            }
            (b'$', Some(d)) if d.is_ascii_digit() => i + 1,
            (b'$', _) => return Err("SQL has $-quoting or a bare $".into()),
            (b'\\', _) => return Err("SQL has a backslash outside a string".into()),
            (c, _) if is_word(c) => {
                let end = word_end(sql, i);
                words.push(Word {
                    text: text(sql, i, end),
                    in_code: true,
                });
                end
            }
            _ => i + 1,
        };
    }
    Ok(words)
}

/// Skips a `'…'` or `"…"` literal (doubled quote escapes) starting at `start`;
/// returns the index after it. Backslashes are refused: MySQL reads `\'` as
/// an escaped quote, standard SQL as the end of the string.
fn skip_literal(sql: &[u8], start: usize) -> Result<usize, String> {
    let quote = sql[start];
    let mut i = start + 1;
    loop {
        match sql.get(i) {
            None => return Err("SQL has an unterminated string".into()),
            Some(b'\\') => return Err("SQL has a backslash in a string".into()),
            Some(&q) if q == quote && sql.get(i + 1) == Some(&quote) => i += 2,
            Some(&q) if q == quote => return Ok(i + 1),
            Some(_) => i += 1,
        }
    }
}

/// Oracle's `q'[…]'` strings end at `]'`, not at the next quote.
fn refuse_q_quote(sql: &[u8], quote_at: usize) -> Result<(), String> {
    let mut start = quote_at;
    while start > 0 && is_word(sql[start - 1]) {
        start -= 1;
    }
    let prefix = text(sql, start, quote_at);
    if prefix.eq_ignore_ascii_case("q") || prefix.eq_ignore_ascii_case("nq") {
        return Err("SQL has a q-quoted string".into());
    }
    Ok(())
}

/// Checks a comment or quoted identifier (`sql[start..end]`): dialects
/// disagree on where these end, so they may hold no quote, `;` or backslash,
/// and their words are checked like code.
fn opaque<'a>(
    sql: &'a [u8],
    start: usize,
    end: usize,
    words: &mut Vec<Word<'a>>,
) -> Result<(), String> {
    let mut i = start;
    while i < end {
        let c = sql[i];
        if matches!(c, b'\'' | b'"' | b'`' | b';' | b'\\') {
            return Err(format!(
                "SQL has {:?} inside a comment or quoted identifier",
                char::from(c)
            ));
        }
        if is_word(c) {
            let word_end = word_end(sql, i).min(end);
            words.push(Word {
                text: text(sql, i, word_end),
                in_code: false,
            });
            i = word_end;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// The closing quote of a quoted identifier (doubled closers escape).
fn find_close(sql: &[u8], mut i: usize, close: u8) -> Option<usize> {
    loop {
        match sql.get(i) {
            None => return None,
            Some(&c) if c == close && sql.get(i + 1) == Some(&close) => i += 2,
            Some(&c) if c == close => return Some(i),
            Some(_) => i += 1,
        }
    }
}

fn find(sql: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    sql.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn word_end(sql: &[u8], mut i: usize) -> usize {
    while sql.get(i).copied().is_some_and(is_word) {
        i += 1;
    }
    i
}

/// ASCII word bytes as text (word bytes are ASCII, so this never fails).
fn text(sql: &[u8], start: usize, end: usize) -> &str {
    std::str::from_utf8(&sql[start..end]).unwrap_or("")
}

#[cfg(test)]
mod tests;
