use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::decide::{ContextWire, Phase, RequestFacts};
use crate::identify::spiffe::SpiffeId;
use crate::identify::{Delegation, Identity, Workload};
use crate::snapshot::Snapshot;

fn snapshot() -> Snapshot {
    crate::install_crypto_provider();
    let text = "[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:1\"\n";
    let cfg = crate::config::load_str(text, "test", Path::new(".")).expect("config");
    Snapshot::build(&cfg, None).expect("snapshot")
}

fn workload() -> Identity {
    let subject = "spiffe://example.org/agent/triage";
    Identity::Workload(Arc::new(Workload {
        subject: subject.into(),
        issuer: "https://spire.example.org".into(),
        spiffe: SpiffeId::parse(subject).ok(),
        audience: vec!["https://tools.example.com/mcp".into()],
        scopes: vec!["tools:call".into()],
        expires_at: 4_000_000_000,
        claims: serde_json::Map::from_iter([("email".to_owned(), json!("a@example.org"))]),
        delegation: Delegation::default(),
        task_id: Some("t-1".into()),
        derived: Default::default(),
    }))
}

fn doc(encoded: &Encoded<'_>, fields: Option<&str>) -> Value {
    let fields = fields.map(|f| {
        Arc::new(
            Declared::parse(f.as_bytes())
                .ok()
                .flatten()
                .expect("fields"),
        )
    });
    encoded.with(fields.as_ref(), |bytes| {
        serde_json::from_slice(bytes).expect("JSON")
    })
}

#[test]
fn declared_fields_trim_the_document_exactly_where_the_host_can() {
    let snap = snapshot();
    let (route, _) = snap.route_for("/r").expect("route");
    let args = json!({"path": "/workspace", "n": 1});
    let facts = RequestFacts {
        era: Some("legacy"),
        headers: vec![("user-agent", "ua".into())],
        ..RequestFacts::default()
    };
    for identity in [workload(), Identity::Anonymous] {
        let input = DecisionInput {
            phase: Phase::Call,
            route,
            tool: "search",
            arguments: &args,
            method: "tools/call",
            identity: &identity,
            request: &facts,
            context: ContextWire::none(),
        };
        let encoded = encode(&input);
        let full = doc(&encoded, None);
        assert_eq!(
            full["identity"],
            serde_json::to_value(&identity).expect("identity")
        );
        assert_eq!(full["tool"]["arguments"], args);
        for declared in [
            r#"["/route/name", "/tool/name", "/identity/kind", "/identity/subject", "/identity/spiffe/trust_domain"]"#,
            r#"["/phase", "/tool", "/grants", "/time/unix_ms", "/task/id", "/counters"]"#,
            r#"["/identity", "/request/headers", "/recent_calls"]"#,
            r#"["/identity/claims", "/identity/delegation/agent", "/method"]"#,
            "[]",
        ] {
            let fields = Declared::parse(declared.as_bytes())
                .ok()
                .flatten()
                .expect("fields");
            assert_eq!(
                doc(&encoded, Some(declared)),
                fields.fields().trim(&full),
                "{declared}"
            );
        }
    }
}

#[test]
fn maps_inside_a_selection_are_sent_whole() {
    let snap = snapshot();
    let (route, _) = snap.route_for("/r").expect("route");
    let args = json!({"path": "/workspace", "n": 1});
    let identity = workload();
    let input = DecisionInput {
        phase: Phase::List,
        route,
        tool: "search",
        arguments: &args,
        method: "tools/list",
        identity: &identity,
        request: &RequestFacts::default(),
        context: ContextWire::none(),
    };
    let encoded = encode(&input);
    let got = doc(
        &encoded,
        Some(r#"["/tool/arguments/path", "/identity/claims/email"]"#),
    );
    assert_eq!(got["tool"], json!({"arguments": args}));
    assert_eq!(
        got["identity"],
        json!({"claims": {"email": "a@example.org"}})
    );
    assert_eq!(got["version"], 1);
}

#[test]
fn one_document_per_field_set_and_one_clock_reading() {
    let snap = snapshot();
    let (route, _) = snap.route_for("/r").expect("route");
    let identity = Identity::Anonymous;
    let input = DecisionInput {
        phase: Phase::Call,
        route,
        tool: "t",
        arguments: &Value::Null,
        method: "tools/call",
        identity: &identity,
        request: &RequestFacts::default(),
        context: ContextWire::none(),
    };
    let encoded = encode(&input);
    let a = Arc::new(
        Declared::parse(br#"["/time"]"#)
            .ok()
            .flatten()
            .expect("fields"),
    );
    let b = Arc::new(
        Declared::parse(br#"["/time"]"#)
            .ok()
            .flatten()
            .expect("fields"),
    );
    let first: Value = encoded.with(Some(&a), |d| serde_json::from_slice(d).expect("JSON"));
    let second: Value = encoded.with(Some(&b), |d| serde_json::from_slice(d).expect("JSON"));
    let whole: Value = encoded.with(None, |d| serde_json::from_slice(d).expect("JSON"));
    assert_eq!(first, second);
    assert_eq!(whole["time"], first["time"]);
    assert_eq!(
        encoded.docs.borrow().len(),
        2,
        "equal field sets share a document"
    );
}

#[test]
fn every_identity_field_can_be_declared_alone() {
    // The host writes a partial identity itself: held here, key by key, to
    // the identity's own serialization, so a field added there fails here.
    let snap = snapshot();
    let (route, _) = snap.route_for("/r").expect("route");
    let mut delegated = workload();
    if let Identity::Workload(w) = &mut delegated {
        let w = Arc::make_mut(w);
        w.delegation = Delegation {
            user: Some("spiffe://example.org/user".into()),
            agent: Some("spiffe://example.org/agent".into()),
            intermediaries: vec!["spiffe://example.org/earlier".into()],
        };
        w.spiffe = None;
    }
    for identity in [workload(), delegated, Identity::Anonymous] {
        let input = DecisionInput {
            phase: Phase::Call,
            route,
            tool: "t",
            arguments: &Value::Null,
            method: "tools/call",
            identity: &identity,
            request: &RequestFacts::default(),
            context: ContextWire::none(),
        };
        let encoded = encode(&input);
        let whole = serde_json::to_value(&identity).expect("identity");
        let mut pointers = Vec::new();
        for (key, value) in whole.as_object().expect("an object") {
            pointers.push(format!("/identity/{key}"));
            for sub in value.as_object().into_iter().flat_map(|o| o.keys()) {
                pointers.push(format!("/identity/{key}/{sub}"));
            }
        }
        for pointer in pointers {
            let declared = format!("[{pointer:?}]");
            let fields = Declared::parse(declared.as_bytes())
                .ok()
                .flatten()
                .expect("fields");
            let full = doc(&encoded, None);
            assert_eq!(
                doc(&encoded, Some(&declared)),
                fields.fields().trim(&full),
                "{declared}"
            );
        }
    }
}

#[test]
fn the_values_form_holds_the_value_at_each_pointer() {
    let snap = snapshot();
    let (route, _) = snap.route_for("/r").expect("route");
    let args = json!({"path": "/workspace", "n": 1});
    let facts = RequestFacts {
        era: Some("legacy"),
        ..RequestFacts::default()
    };
    let mut bare = workload();
    if let Identity::Workload(w) = &mut bare {
        Arc::make_mut(w).spiffe = None;
    }
    let pointers = [
        "/version",
        "/phase",
        "/route/name",
        "/route/kind",
        "/tool/name",
        "/method",
        "/identity/kind",
        "/identity/subject",
        "/identity/issuer",
        "/identity/spiffe/trust_domain",
        "/identity/spiffe/path",
        "/identity/spiffe/id",
        "/identity/spiffe",
        "/identity/claims/email",
        "/identity/audience/0",
        "/identity/task_id",
        "/tool/arguments",
        "/tool/arguments/path",
        "/request/era",
        "/request/headers",
        "/task",
        "/task/id",
        "/grants",
        "/time",
        "/time/unix_ms",
        "/phase/x",
        "/nothing",
    ];
    let declared =
        serde_json::to_string(&json!({"fields": pointers, "form": "values"})).expect("JSON");
    let declared = Arc::new(
        Declared::parse(declared.as_bytes())
            .ok()
            .flatten()
            .expect("fields"),
    );
    for identity in [workload(), bare, Identity::Anonymous] {
        let input = DecisionInput {
            phase: Phase::Call,
            route,
            tool: "search",
            arguments: &args,
            method: "tools/call",
            identity: &identity,
            request: &facts,
            context: ContextWire::none(),
        };
        let encoded = encode(&input);
        let full = doc(&encoded, None);
        let sent = encoded.with(Some(&declared), <[u8]>::to_vec);
        // The time is read once per decision, so the two agree on it too.
        assert_eq!(sent, declared.encode_value(&full), "{identity:?}");
    }
}

/// The fields written straight from the decision input rather than read
/// from a trimmed document (`/tool/arguments`, `/grants`, `/time/unix_ms`)
/// hold the document's values when a task has grants too.
#[test]
fn values_written_directly_match_the_document_with_grants() {
    let snap = snapshot();
    let (route, _) = snap.route_for("/r").expect("route");
    let args = json!({"text": "hello", "n": [1, 2]});
    let grants = json!([{"id": "g-1", "tool": "search", "route": null, "constraints": [],
                          "expires_at": 4_000_000_000u64, "uses_left": 3, "reason": "r \"q\"",
                          "granted_by": "op"}]);
    let context = ContextWire {
        task: crate::decide::LazyJson::NONE,
        grants: serde_json::value::to_raw_value(&grants).ok().map(Arc::from),
        counters: crate::decide::LazyJson::NONE,
        recent_calls: crate::decide::LazyJson::NONE,
    };
    let identity = workload();
    let facts = RequestFacts::default();
    let input = DecisionInput {
        phase: Phase::Call,
        route,
        tool: "search",
        arguments: &args,
        method: "tools/call",
        identity: &identity,
        request: &facts,
        context: &context,
    };
    let pointers = ["/tool/arguments", "/grants", "/time/unix_ms"];
    let declared =
        serde_json::to_string(&json!({"fields": pointers, "form": "values"})).expect("JSON");
    let declared = Arc::new(
        Declared::parse(declared.as_bytes())
            .ok()
            .flatten()
            .expect("fields"),
    );
    let encoded = encode(&input);
    let full = doc(&encoded, None);
    let sent = encoded.with(Some(&declared), <[u8]>::to_vec);
    // Read the values back: header, then tag, length, JSON text for each.
    let mut rest = &sent[2..];
    for pointer in pointers {
        assert_eq!(rest[0], 3, "{pointer} is sent as JSON");
        let len = u32::from_le_bytes(rest[1..5].try_into().expect("length")) as usize;
        let got: Value = serde_json::from_slice(&rest[5..5 + len]).expect("JSON value");
        assert_eq!(Some(&got), full.pointer(pointer), "{pointer}");
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty());
    assert_eq!(full["grants"], grants);
}
