use serde_json::json;

use super::*;

const FIELDS: [&str; 6] = [
    "/route/name",
    "/tool/arguments",
    "/identity/kind",
    "/identity/spiffe/trust_domain",
    "/task",
    "/a~1b",
];

#[test]
fn encodes_reads_and_rebuilds_the_declared_fields() {
    let input = json!({
        "version": 1,
        "route": {"name": "r\"é", "kind": "mcp"},
        "tool": {"name": "t", "arguments": {"a": [1, "x"]}},
        "identity": {"kind": "workload", "subject": "s", "spiffe": null},
        "task": null,
        "a/b": true,
    });
    let bytes = encode(&input, &FIELDS);
    assert!(is_values(&bytes));
    let mut slots = [Field::Absent; MAX_FIELDS];
    let values = read(&bytes, FIELDS.len(), &mut slots).expect("reads");
    assert_eq!(
        values,
        [
            Field::Str("r\"é"),
            Field::Json(r#"{"a":[1,"x"]}"#),
            Field::Str("workload"),
            Field::Absent,
            Field::Null,
            Field::Json("true"),
        ]
    );
    assert_eq!(values[0].as_str(), Some("r\"é"));
    assert_eq!(values[1].as_str(), None);
    assert_eq!(
        document(&FIELDS, values).expect("a document"),
        json!({"route": {"name": "r\"é"}, "tool": {"arguments": {"a": [1, "x"]}},
               "identity": {"kind": "workload"}, "task": null, "a/b": true})
    );
}

#[test]
fn anything_else_is_an_error() {
    let good = encode(&json!({"route": {"name": "r"}}), &FIELDS[..1]);
    let mut slots = [Field::Absent; MAX_FIELDS];
    assert!(read(&good, 1, &mut slots).is_ok());
    let mut extra = good.clone();
    extra.push(0);
    let mut bad_utf8 = good.clone();
    if let Some(last) = bad_utf8.last_mut() {
        *last = 0xff;
    }
    for (bytes, count) in [
        (&b"{}"[..], 1),
        (&good[..good.len() - 1], 1),
        (&extra[..], 1),
        (&good[..], 2),
        (&good[..], MAX_FIELDS + 1),
        (&bad_utf8[..], 1),
        (&[0, 1, 9][..], 1),
        (&[0, 2, 0][..], 1),
    ] {
        let mut slots = [Field::Absent; MAX_FIELDS];
        assert!(read(bytes, count, &mut slots).is_err(), "{bytes:?}");
    }
    assert!(!is_values(b"{}"));
    assert!(document(&["/a"], &[Field::Json("{")]).is_err());
}
