//! The committed fuzz seeds (`fuzz/seeds/<target>/`), made from the inputs
//! the unit and integration tests use. Regenerate them with
//! `cargo test --all-targets fuzz_smoke::seeds::write -- --ignored`; seeds
//! named `regression-*` are crashes the fuzzers found, kept by hand.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Every seed, as (target, file name, bytes).
pub(super) fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_owned(), bytes));
    };
    for (name, body) in jsonrpc() {
        add("jsonrpc", name, body.into_bytes());
    }
    for (name, request) in understand() {
        add("understand", name, request.into_bytes());
    }
    for (name, stream) in sse() {
        add("sse", name, stream);
    }
    for (name, token) in jwt() {
        add("jwt", name, token);
    }
    for (name, doc) in jwks() {
        add("jwks", name, doc);
    }
    for (name, text) in config() {
        add("config", name, text);
    }
    for (name, answer) in policy_answer() {
        add("policy_answer", name, answer.into_bytes());
    }
    for (name, pair) in constraint() {
        add("constraint", name, pair.into_bytes());
    }
    for (name, body) in admin_body() {
        add("admin_body", name, body);
    }
    out
}

pub(super) fn dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

#[test]
#[ignore = "writes fuzz/seeds; run by hand when the seeds change"]
fn write() {
    for (target, name, bytes) in all() {
        let dir = dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn tools_call(id: Value, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

fn jsonrpc() -> Vec<(&'static str, String)> {
    let call = tools_call(json!(7), "echo", json!({"text": "hi"}));
    vec![
        ("tools-call", call.to_string()),
        ("initialize", json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "c", "version": "1"}}}).to_string()),
        ("batch", r#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":3,"result":{}}]"#.into()),
        ("response-error", r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32601,"message":"no"}}"#.into()),
        ("lookalike-method", r#"{"jsonrpc":"2.0","id":1,"method":"TOOLS/CALL","params":{"name":"x"}}"#.into()),
        ("nul-method", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\\u0000\",\"params\":{}}".into()),
        ("notification-call", r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#.into()),
        ("bad-id", r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#.into()),
        ("float-id", r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.into()),
        ("big-id", r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#.into()),
        ("array-arguments", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#.into()),
        ("duplicate-keys", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list","params":{"name":"a","name":"b"}}"#.into()),
        ("empty-batch", "[]".into()),
        ("deep", format!("{}{}", "[".repeat(200), "]".repeat(200))),
        ("not-json", "{not json".into()),
    ]
}

fn understand() -> Vec<(&'static str, String)> {
    let json = "content-type: application/json\naccept: application/json, text/event-stream";
    let call = tools_call(json!(1), "echo", json!({"text": "hi", "n": 3}));
    let modern = "mcp-protocol-version: 2026-07-28\nmcp-method: tools/call\nmcp-name: echo";
    vec![
        ("legacy-call", format!("POST /mcp\n{json}\n\n{call}")),
        ("modern-call", format!("POST /mcp\n{json}\n{modern}\nmcp-param-text: hi\n\n{call}")),
        ("modern-base64-name", format!("POST /mcp\n{json}\nmcp-protocol-version: 2026-07-28\nmcp-method: tools/call\nmcp-name: =?base64?ZWNobw==?=\n\n{call}")),
        ("modern-mismatch", format!("POST /mcp\n{json}\nmcp-protocol-version: 2026-07-28\nmcp-method: tools/list\n\n{call}")),
        ("legacy-batch", format!("POST /mcp\n{json}\n\n[{call},{}]", json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))),
        ("modern-batch", format!("POST /mcp\n{json}\nmcp-protocol-version: 2026-07-28\n\n[{call}]")),
        ("session", format!("POST /mcp/\n{json}\nmcp-protocol-version: 2025-06-18\nmcp-session-id: abc\n\n{call}")),
        ("get-stream", "GET /mcp\naccept: text/event-stream\nlast-event-id: 3\n\n".into()),
        ("delete", "DELETE /mcp\nmcp-session-id: abc\n\n".into()),
        ("http-route", "POST /api/repos/acme/%70rod?page=2&page=3&q=a+b\ncontent-type: application/json\n\n{\"title\":\"x\"}".into()),
        ("http-get", "GET /api/issues?state=open\n\n".into()),
        ("dot-segment", "POST /api/%2e%2e/admin\ncontent-type: application/json\n\n{}".into()),
        ("wrong-type", format!("POST /mcp\ncontent-type: text/plain\n\n{call}")),
        ("double-type", format!("POST /mcp\ncontent-type: application/json\ncontent-type: text/plain\n\n{call}")),
        ("unknown-method", format!("POST /mcp\n{json}\n\n{}", json!({"jsonrpc": "2.0", "id": 2, "method": "vendor/run", "params": {}}))),
    ]
}

fn sse() -> Vec<(&'static str, Vec<u8>)> {
    let with = |limit: u8, cut: u8, stream: &[u8]| {
        let mut out = vec![limit, cut];
        out.extend_from_slice(stream);
        out
    };
    vec![
        ("line-endings", with(16, 0, b"event: message\r\nid: 1\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\ndata: two\r\rdata:three\n\n")),
        ("progress-then-result", with(64, 9, b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[]}}\n\n")),
        ("unterminated", with(4, 3, b"data: never ends")),
        ("oversized", with(0, 1, b"data: 0123456789012345678901234567890123456789\n\n")),
        ("trailing-cr", with(8, 2, b"data: x\r")),
        ("nul-id", with(8, 5, b"id: a\0b\ndata: x\n\n")),
        ("retry-and-unknown", with(8, 4, b"retry: 10\nfoo: bar\ndata\n\n")),
    ]
}

fn jwt() -> Vec<(&'static str, Vec<u8>)> {
    let now = 1_700_000_000u64;
    let pair = |mode: u8, header: Value, claims: Value| {
        let mut out = vec![mode];
        out.extend(header.to_string().into_bytes());
        out.extend(claims.to_string().into_bytes());
        out
    };
    let iss = "https://issuer.example";
    let aud = "https://gw.example/mcp";
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let es = json!({"alg": "ES256", "kid": "ec-1", "typ": "JWT"});
    let raw = |token: &str| {
        let mut out = vec![0u8];
        out.extend_from_slice(token.as_bytes());
        out
    };
    vec![
        ("raw-none", raw("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")),
        ("raw-garbage", raw("a.b.c")),
        (
            "raw-hs256-confusion",
            raw(
                "eyJhbGciOiJIUzI1NiIsImtpZCI6InJzYS0xIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIn0.c2ln",
            ),
        ),
        (
            "oauth",
            pair(
                1,
                hs.clone(),
                json!({"iss": iss, "sub": "user-1", "aud": aud,
            "iat": now - 10, "exp": now + 300, "scope": "read write", "task_id": "t-1", "tenant": "a"}),
            ),
        ),
        (
            "oauth-act",
            pair(
                1,
                hs.clone(),
                json!({"iss": iss, "sub": "alice", "aud": [aud, "other"],
            "exp": now + 60, "act": {"sub": "agent", "act": {"sub": "orchestrator"}}, "scp": ["a", "b"]}),
            ),
        ),
        (
            "oauth-nbf-float",
            pair(
                1,
                hs.clone(),
                json!({"iss": iss, "sub": "u", "aud": aud,
            "exp": (now + 60) as f64 + 0.5, "nbf": now + 30}),
            ),
        ),
        (
            "oauth-crit",
            pair(
                1,
                json!({"alg": "HS256", "crit": ["exp"]}),
                json!({"iss": iss, "sub": "u", "aud": aud, "exp": now + 60}),
            ),
        ),
        (
            "spiffe",
            pair(
                3,
                es.clone(),
                json!({"iss": iss, "sub": "spiffe://example.org/agent/a",
            "aud": aud, "iat": now, "exp": now + 300, "task_id": "t-2"}),
            ),
        ),
        (
            "spiffe-no-path",
            pair(
                3,
                es.clone(),
                json!({"iss": iss, "sub": "spiffe://example.org",
            "aud": aud, "exp": now + 300}),
            ),
        ),
        (
            "spiffe-extra-header",
            pair(
                3,
                json!({"alg": "ES256", "kid": "ec-1", "jku": "https://evil"}),
                json!({"iss": iss, "sub": "spiffe://example.org/a", "aud": aud, "exp": now + 300}),
            ),
        ),
        ("repeated-claim", {
            let mut out = vec![1u8];
            out.extend(hs.to_string().into_bytes());
            out.extend(
                format!(
                    r#"{{"iss":"{iss}","sub":"a","sub":"b","aud":"{aud}","exp":{}}}"#,
                    now + 60
                )
                .into_bytes(),
            );
            out
        }),
    ]
}

fn jwks() -> Vec<(&'static str, Vec<u8>)> {
    let dev = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/dev/jwks.json"))
        .expect("config/dev/jwks.json");
    vec![
        ("dev", dev),
        ("mixed", json!({"spiffe_refresh_hint": 300, "keys": [
            {"kty": "EC", "crv": "P-256", "kid": "e", "use": "jwt-svid",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "r", "use": "sig", "n": "AQAB", "e": "AQAB", "alg": "RS256"},
            {"kty": "EC", "crv": "P-521", "kid": "p"},
            {"kty": "RSA", "kid": "d", "d": "x", "n": "AQAB", "e": "AQAB"},
            {"kid": 5}
        ]}).to_string().into_bytes()),
        ("not-a-set", br#"{"keys": {}}"#.to_vec()),
    ]
}

fn config() -> Vec<(&'static str, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let file = |name: &str| std::fs::read(root.join(name)).expect("example config");
    vec![
        ("toolgate", file("toolgate.toml")),
        ("demo", file("demo.toml")),
        ("small", b"[server]\nbind = \"127.0.0.1:0\"\n\n[[routes]]\nname = \"a\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:9/mcp\"\ndefault_decision = \"allow\"\n[routes.timeouts]\nfirst_byte = \"300ms\"\n".to_vec()),
        ("errors", b"[[routes]]\nname = \"A B\"\npath = \"mcp\"\nupstream = \"ftp://x\"\n[[routes]]\nname = \"b\"\nbogus = 1\n[tasks]\nmax_ttl = \"1 month\"\n".to_vec()),
        ("syntax", b"[server\nbind = ".to_vec()),
    ]
}

fn policy_answer() -> Vec<(&'static str, String)> {
    vec![
        ("allow", r#"{"decision":"allow"}"#.into()),
        (
            "deny",
            r#"{"decision":"deny","reason":"no","annotations":{"grant":"g1"}}"#.into(),
        ),
        (
            "approval",
            r#"{"decision":"needs_approval","reason":"risky"}"#.into(),
        ),
        ("deny-no-reason", r#"{"decision":"deny"}"#.into()),
        ("error", r#"{"error":"bad input"}"#.into()),
        (
            "opa-set",
            r#"[{"result":{"decision":"deny","reason":["a","b"]}}]"#.into(),
        ),
        (
            "opa-allow-flag",
            r#"[{"result":{"allow":true,"needs_approval":false,"annotations":[1]}}]"#.into(),
        ),
        ("opa-bool", r#"[{"result":false}]"#.into()),
        ("opa-empty", "[]".into()),
        (
            "long-reason",
            format!(r#"{{"decision":"deny","reason":"{}"}}"#, "é".repeat(1100)),
        ),
    ]
}

fn constraint() -> Vec<(&'static str, String)> {
    let pair = |c: Value, args: Value| format!("{c} {args}");
    vec![
        (
            "equals",
            pair(
                json!({"pointer": "/repo", "equals": "acme/app"}),
                json!({"repo": "acme/app"}),
            ),
        ),
        (
            "equals-number",
            pair(json!({"pointer": "/a", "equals": 1}), json!({"a": 1.0})),
        ),
        (
            "one-of",
            pair(
                json!({"pointer": "/env", "one_of": ["staging", "dev"]}),
                json!({"env": "prod"}),
            ),
        ),
        (
            "glob",
            pair(
                json!({"pointer": "/branch", "glob": "fix/*"}),
                json!({"branch": "fix/é-1"}),
            ),
        ),
        (
            "regex",
            pair(
                json!({"pointer": "/title", "regex": "[A-Z]+-[0-9]+: .*"}),
                json!({"title": "AB-1: x"}),
            ),
        ),
        (
            "regex-unicode-class",
            pair(
                json!({"pointer": "/t", "regex": "\\p{Greek}+"}),
                json!({"t": "αβ"}),
            ),
        ),
        (
            "range",
            pair(
                json!({"pointer": "/replicas", "range": {"min": 1, "max": 5}}),
                json!({"replicas": 3}),
            ),
        ),
        (
            "range-max-only",
            pair(
                json!({"pointer": "/amount", "range": {"max": 100}}),
                json!({"amount": 99.5}),
            ),
        ),
        (
            "prefix",
            pair(
                json!({"pointer": "/path", "prefix": "/workspace/"}),
                json!({"path": "/workspace/../etc"}),
            ),
        ),
        (
            "whole-arguments",
            pair(
                json!({"pointer": "", "equals": {"env": "prod"}}),
                json!({"env": "prod"}),
            ),
        ),
        (
            "two-operators",
            pair(
                json!({"pointer": "/a", "equals": 1, "glob": "*"}),
                json!({"a": 2}),
            ),
        ),
        (
            "escaped-pointer",
            pair(
                json!({"pointer": "/a~1b/0", "equals": true}),
                json!({"a/b": [true]}),
            ),
        ),
        ("glob-star", "search_*\nsearch_issues".into()),
        ("glob-question-utf8", "*é?\naébç".into()),
        ("glob-backtrack", format!("*a*a*a*b\n{}", "a".repeat(64))),
    ]
}

fn admin_body() -> Vec<(&'static str, Vec<u8>)> {
    let body = |endpoint: u8, value: Value| {
        let mut out = vec![endpoint];
        out.extend(value.to_string().into_bytes());
        out
    };
    vec![
        (
            "task",
            body(
                0,
                json!({"agent": "spiffe://example.org/agent/a", "purpose": "triage",
            "labels": {"team": "ops"}, "ttl": "1h30m", "on_behalf_of": "alice"}),
            ),
        ),
        (
            "task-long-ttl",
            body(0, json!({"agent": "a", "purpose": "p", "ttl": "400d"})),
        ),
        (
            "grant",
            body(
                1,
                json!({"task_id": "TASK", "tool": "create_*", "route": "github",
            "constraints": [{"pointer": "/repo", "equals": "acme/app"}, {"pointer": "/n", "range": {"max": 3}}],
            "ttl": "15m", "max_uses": 3, "reason": "file the triage summary"}),
            ),
        ),
        (
            "grant-expires-at",
            body(
                1,
                json!({"task_id": "TASK", "tool": "x", "expires_at": 1_900_000_000u64,
            "not_before": 18_446_744_073_709_551_615u64, "reason": "r"}),
            ),
        ),
        (
            "grant-bad-regex",
            body(
                1,
                json!({"task_id": "TASK", "tool": "x", "ttl": "1m", "reason": "r",
            "constraints": [{"pointer": "/a", "regex": "("}]}),
            ),
        ),
        ("complete", body(2, json!({"reason": "done"}))),
        ("revoke-task", body(3, json!({}))),
        (
            "revoke-agent",
            body(
                4,
                json!({"agent": "spiffe://example.org/agent", "reason": "left"}),
            ),
        ),
        (
            "approve",
            body(5, json!({"ttl": "5m", "max_uses": 2, "reason": "ok"})),
        ),
        ("approve-empty", vec![5, b' ']),
        ("deny", body(6, json!({"reason": "too risky"}))),
        (
            "grant-request",
            body(
                7,
                json!({"route": "github", "tool": "create_issue", "ttl": "15m",
            "constraints": [{"pointer": "/repo", "equals": "acme/app"}], "arguments": {"repo": "acme/app"},
            "max_uses": 3, "reason": "file it"}),
            ),
        ),
    ]
}
