//! The era rules: classification, the 2026-07-28 header rungs, stripping.

use super::*;
use crate::mcp::Envelope;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

fn call(name: &str) -> Message {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","_meta":{{"{VERSION_META_KEY}":"{MODERN_VERSION}"}}}}}}"#
    );
    Envelope::parse(body.as_bytes()).unwrap().messages.remove(0)
}

#[test]
fn eras_are_classified_by_version_header() {
    assert_eq!(Era::of(&headers(&[])), Era::Legacy { version: None });
    assert!(Era::of(&headers(&[])).allows_batches());
    let legacy = Era::of(&headers(&[(PROTOCOL_VERSION_HEADER, "2025-06-18")]));
    assert!(!legacy.allows_batches());
    let modern = Era::of(&headers(&[(PROTOCOL_VERSION_HEADER, MODERN_VERSION)]));
    assert!(matches!(modern, Era::Modern { .. }));
}

#[test]
fn matching_headers_pass_and_mismatches_are_named() {
    let good = [
        (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
        (METHOD_HEADER, "tools/call"),
        (NAME_HEADER, "echo"),
    ];
    check_modern_headers(&headers(&good), &call("echo")).unwrap();
    let encoded = format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode("écho")
    );
    let enc = [
        (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
        (METHOD_HEADER, "tools/call"),
        (NAME_HEADER, encoded.as_str()),
    ];
    check_modern_headers(&headers(&enc), &call("écho")).unwrap();

    let cases: [(&[(&'static str, &str)], &str); 5] = [
        (
            &[
                (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                (METHOD_HEADER, "tools/list"),
                (NAME_HEADER, "echo"),
            ],
            "Mcp-Method",
        ),
        (
            &[
                (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                (NAME_HEADER, "echo"),
            ],
            "Mcp-Method",
        ),
        (
            &[
                (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                (METHOD_HEADER, "tools/call"),
                (NAME_HEADER, "rm"),
            ],
            "Mcp-Name",
        ),
        (
            &[
                (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                (METHOD_HEADER, "tools/call"),
            ],
            "Mcp-Name",
        ),
        (
            &[
                (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                (METHOD_HEADER, "tools/call"),
                (NAME_HEADER, "echo"),
                (NAME_HEADER, "echo"),
            ],
            "more than once",
        ),
    ];
    for (pairs, want) in cases {
        let err = check_modern_headers(&headers(pairs), &call("echo")).unwrap_err();
        assert!(err.to_string().contains(want), "{pairs:?}: {err}");
    }
    let wrong_version = [
        (PROTOCOL_VERSION_HEADER, "2027-01-01"),
        (METHOD_HEADER, "tools/call"),
        (NAME_HEADER, "echo"),
    ];
    assert!(check_modern_headers(&headers(&wrong_version), &call("echo")).is_err());
}

#[test]
fn mirrored_parameters_must_be_values_of_the_arguments() {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"read","arguments":{{"path":"/w/a","opts":{{"n":3,"all":true}}}},"_meta":{{"{VERSION_META_KEY}":"{MODERN_VERSION}"}}}}}}"#
    );
    let call = Envelope::parse(body.as_bytes()).unwrap().messages.remove(0);
    let base = [
        (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
        (METHOD_HEADER, "tools/call"),
        (NAME_HEADER, "read"),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        headers(&pairs)
    };
    for good in [
        vec![("mcp-param-path", "/w/a")],
        vec![("mcp-param-n", "3"), ("mcp-param-all", "true")],
        vec![("mcp-param-path", "=?base64?L3cvYQ==?=")],
    ] {
        check_modern_headers(&with(&good), &call).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    let cases: [(&[(&'static str, &str)], &str); 4] = [
        (&[("mcp-param-path", "/etc")], "arguments do not"),
        (&[("mcp-param-n", "4")], "arguments do not"),
        (
            &[("mcp-param-path", "/w/a"), ("mcp-param-path", "/w/a")],
            "more than once",
        ),
        (&[("mcp-param-path", "=?base64?***?=")], "malformed base64"),
    ];
    for (extra, want) in cases {
        let err = check_modern_headers(&with(extra), &call).unwrap_err();
        assert!(err.to_string().contains(want), "{extra:?}: {err}");
        assert!(err.to_string().starts_with("mcp-param-"), "{err}");
    }
    // Only a tools/call mirrors parameters; only a named method has a name.
    let list = Envelope::parse(br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#)
        .unwrap()
        .messages
        .remove(0);
    let list_headers = [
        (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
        (METHOD_HEADER, "tools/list"),
    ];
    check_modern_headers(&headers(&list_headers), &list).unwrap();
    for (extra, want) in [
        (("mcp-param-path", "/w/a"), "only with tools/call"),
        ((NAME_HEADER, "delete_all"), "Mcp-Name"),
    ] {
        let mut pairs = list_headers.to_vec();
        pairs.push(extra);
        let err = check_modern_headers(&headers(&pairs), &list).unwrap_err();
        assert!(err.to_string().contains(want), "{extra:?}: {err}");
    }
}

#[test]
fn routing_headers_are_stripped_whole() {
    let mut h = headers(&[
        (METHOD_HEADER, "tools/call"),
        (NAME_HEADER, "x"),
        ("mcp-param-a", "1"),
        ("mcp-param-b", "2"),
        (PROTOCOL_VERSION_HEADER, "2025-06-18"),
        (SESSION_HEADER, "s-1"),
    ]);
    strip_routing_headers(&mut h);
    let left: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
    assert_eq!(left, [PROTOCOL_VERSION_HEADER, SESSION_HEADER]);
}
