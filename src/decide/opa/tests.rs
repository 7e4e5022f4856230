//! Tests of the OPA drop-in, through `PolicyModule::load` as a configured
//! module is loaded: the hand-written OPA-ABI fixtures in tests/fixtures/opa.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::sprintf::sprintf;
use super::{OpaModule, result};
use crate::config::{Policy, PolicyLimits};
use crate::decide::Verdict;
use crate::decide::engine::PolicyEngine;
use crate::decide::module::{Fault, PolicyModule, ticks};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opa")
        .join(name)
}

fn policy(module: PathBuf) -> Policy {
    Policy {
        name: "opa-test".into(),
        module,
        vectors: None,
        routes: Vec::new(),
        tools: Vec::new(),
        phases: Vec::new(),
        config: None,
        entrypoint: None,
    }
}

/// A deadline generous enough for a loaded test machine, but for the one
/// test that wants it hit.
fn limits(deadline: Duration) -> PolicyLimits {
    PolicyLimits {
        deadline,
        cache_dir: Some(std::env::temp_dir().join("toolgate-test-cache")),
        ..PolicyLimits::default()
    }
}

fn load(cfg: &Policy) -> Result<PolicyModule, Fault> {
    let engine = PolicyEngine::global().expect("engine");
    PolicyModule::load(&engine, cfg, &limits(Duration::from_secs(1)))
}

fn input(tool: &str) -> Vec<u8> {
    json!({"version": 1, "phase": "call", "tool": {"name": tool, "arguments": {"path": "/w/a"}}})
        .to_string()
        .into_bytes()
}

/// The fixture's text with one line swapped, written where a test can load it.
fn patched(name: &str, from: &str, to: &str, dir: &tempfile::TempDir) -> PathBuf {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    assert!(text.contains(from), "{name} has no {from:?}");
    let path = dir.path().join(name);
    std::fs::write(&path, text.replace(from, to)).expect("write");
    path
}

#[test]
fn opa_modules_are_send_sync_debug() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<OpaModule>();
}

#[test]
fn allows_and_denies_with_a_sprintf_reason() {
    let module = load(&policy(fixture("deny_delete.wat"))).expect("loads");
    assert_eq!(&*module.version, "opa");
    let allowed = module.evaluate(&input("read_file")).expect("decides");
    assert_eq!(allowed.verdict, Verdict::Allow);
    let denied = module.evaluate(&input("delete_file")).expect("decides");
    assert_eq!(denied.verdict, Verdict::Deny);
    assert_eq!(
        denied.reason.as_deref(),
        Some(r#"delete calls are refused by rule 7 ("no-deletes")"#)
    );
}

#[test]
fn the_heap_is_rewound_between_evaluations() {
    let engine = PolicyEngine::global().expect("engine");
    let wasm = std::fs::read(fixture("deny_delete.wat")).expect("fixture");
    let compiled = engine
        .compile(&wasm, "opa-heap-test", None)
        .expect("compiles");
    let opa =
        OpaModule::new(&engine, &compiled, &Arc::from("heap"), 64 << 20, None).expect("loads");
    // Each input is 200 KiB: without the rewind, memory would grow by that
    // much per call.
    let big = json!({"tool": {"name": "delete_it", "arguments": {"pad": "x".repeat(200 << 10)}}})
        .to_string();
    let before = opa
        .evaluate(big.as_bytes(), ticks(Duration::from_secs(1)))
        .expect("decides");
    assert_eq!(before.verdict, Verdict::Deny);
    let size = opa.idle_memory();
    for _ in 0..50 {
        opa.evaluate(big.as_bytes(), ticks(Duration::from_secs(1)))
            .expect("decides");
    }
    assert_eq!(opa.idle_memory(), size);
}

#[test]
fn entrypoints_are_chosen_by_name_or_refused() {
    let mut cfg = policy(fixture("deny_delete.wat"));
    cfg.entrypoint = Some("toolgate/undefined".into());
    let undefined = load(&cfg)
        .expect("loads")
        .evaluate(&input("read_file"))
        .expect("decides");
    assert_eq!(undefined.verdict, Verdict::Deny);
    assert_eq!(undefined.reason.as_deref(), Some(result::NO_RESULT));

    cfg.entrypoint = Some("data.toolgate.decision".into());
    let dotted = load(&cfg)
        .expect("loads")
        .evaluate(&input("delete_file"))
        .expect("decides");
    assert_eq!(dotted.verdict, Verdict::Deny);

    cfg.entrypoint = Some("toolgate/nope".into());
    let Err(Fault::Load(msg)) = load(&cfg) else {
        panic!("an unknown entrypoint must be refused");
    };
    assert!(
        msg.contains("no entrypoint \"toolgate/nope\"; it has: toolgate/decision, toolgate/undefined, toolgate/abort"),
        "{msg}"
    );
}

#[test]
fn opa_abort_is_a_trap_with_its_message() {
    let mut cfg = policy(fixture("deny_delete.wat"));
    cfg.entrypoint = Some("toolgate/abort".into());
    let module = load(&cfg).expect("loads");
    match module.evaluate(&input("read_file")) {
        Err(Fault::Trap(msg)) => assert!(
            msg.contains("opa_abort: the abort entrypoint always aborts"),
            "{msg}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn a_module_needing_unprovided_builtins_is_refused_naming_them() {
    let Err(Fault::Load(msg)) = load(&policy(fixture("needs_http.wat"))) else {
        panic!("a module needing http.send must be refused");
    };
    assert!(
        msg.contains("does not provide: http.send, net.lookup_ip_addr ("),
        "{msg}"
    );
}

#[test]
fn a_runaway_policy_hits_the_deadline_every_time() {
    let engine = PolicyEngine::global().expect("engine");
    let module = PolicyModule::load(
        &engine,
        &policy(fixture("loop.wat")),
        &limits(Duration::from_millis(20)),
    )
    .expect("loads");
    for _ in 0..2 {
        assert_eq!(module.evaluate(&input("read_file")), Err(Fault::Deadline));
    }
}

#[test]
fn old_abis_and_oversized_memories_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let minor = "(global (export \"opa_wasm_abi_minor_version\") i32 (i32.const 2))";
    let old = patched(
        "loop.wat",
        minor,
        &minor.replace("const 2", "const 1"),
        &dir,
    );
    let Err(Fault::Load(msg)) = load(&policy(old)) else {
        panic!("ABI 1.1 must be refused");
    };
    assert!(
        msg.contains("Wasm ABI 1.1; toolgate needs 1.2 or later"),
        "{msg}"
    );
    let newer = patched(
        "loop.wat",
        minor,
        &minor.replace("const 2", "const 9"),
        &dir,
    );
    load(&policy(newer)).expect("a later minor version is backwards-compatible");

    let huge = patched("loop.wat", "(memory 2)", "(memory 2048)", &dir);
    let Err(Fault::Load(msg)) = load(&policy(huge)) else {
        panic!("a module needing 128 MiB to start must be refused under a 64 MiB cap");
    };
    assert!(msg.contains("128 MiB"), "{msg}");

    let wasi = patched(
        "loop.wat",
        "(import \"env\" \"opa_println\"",
        "(import \"wasi\" \"fd_write\"",
        &dir,
    );
    let Err(Fault::Load(msg)) = load(&policy(wasi)) else {
        panic!("an unknown import must be refused");
    };
    assert!(msg.contains("imports wasi.fd_write"), "{msg}");
}

#[test]
fn vectors_run_against_opa_modules() {
    let mut cfg = policy(fixture("deny_delete.wat"));
    cfg.vectors = Some(fixture("deny_delete.vectors.json"));
    load(&cfg).expect("its vectors pass");

    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = dir.path().join("wrong.json");
    let vectors = json!({"vectors": [
        {"name": "delete allowed?", "input": {"tool": {"name": "delete_file"}}, "expect": "allow"}
    ]});
    std::fs::write(&wrong, vectors.to_string()).expect("write");
    cfg.vectors = Some(wrong);
    let Err(Fault::Load(msg)) = load(&cfg) else {
        panic!("a failing vector must refuse the module");
    };
    assert!(msg.contains("1 of 1 test vectors failed"), "{msg}");
    assert!(
        msg.contains("expected allow, got deny (delete calls are refused"),
        "{msg}"
    );
}

#[test]
fn sprintf_formats_as_go_does() {
    let cases = [
        ("%s is %d", json!(["x", 5]), "x is 5"),
        ("%v|%v|%v|%v", json!(["s", 1, 1.5, true]), "s|1|1.5|true"),
        (
            "%v %v",
            json!([[1, "a"], {"b": null, "a": [true]}]),
            r#"[1, "a"] {"a": [true], "b": null}"#,
        ),
        ("%q|%q", json!(["a\"b\n", 65]), r#""a\"b\n"|'A'"#),
        (
            "%.2f|%f|%e",
            json!([1.23456, 2.5, 1234.5678]),
            "1.23|2.500000|1.234568e+03",
        ),
        (
            "%v|%v|%v|%v",
            json!([1e6, 123456.0, 1e-5, 0.0001]),
            "1e+06|123456|1e-05|0.0001",
        ),
        (
            "%5d|%-5d|%05d|%+d|%x|%X|%o|%b",
            json!([42, 42, -42, 42, 255, 255, 8, 5]),
            "   42|42   |-0042|+42|ff|FF|10|101",
        ),
        (
            "%6.2f|%-4s|%4s|%.2s",
            json!([9.87654, "ab", "ab", "abc"]),
            "  9.88|ab  |  ab|ab",
        ),
        ("100%%", json!([]), "100%"),
        ("%x", json!(["hi"]), "6869"),
        ("%d", json!(["seven"]), "%!d(string=seven)"),
        ("%f", json!([5]), "%!f(int=5)"),
        ("%d", json!([true]), "%!d(string=true)"),
        ("%s %s", json!(["only"]), "only %!s(MISSING)"),
        ("%s", json!(["a", 2, 2.5]), "a%!(EXTRA int=2, float64=2.5)"),
        ("trailing %", json!([]), "trailing %!(NOVERB)"),
        ("%z", json!([1]), "%!z(int=1)"),
        (
            "%d",
            json!([18446744073709551615u64]),
            "18446744073709551615",
        ),
        ("%v", json!([null]), "null"),
        ("%.3g|%g", json!([1234.5678, 0.5]), "1.23e+03|0.5"),
    ];
    for (format, args, want) in cases {
        let args = args.as_array().cloned().unwrap_or_default();
        assert_eq!(
            sprintf(format, &args),
            want,
            "sprintf({format:?}, {args:?})"
        );
    }
    let wide = sprintf("%99999999d", &[json!(1)]);
    assert_eq!(wide.len(), 4096, "widths are clamped");
}

#[test]
fn results_that_are_not_decisions_are_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "(loop $forever (br $forever))\n    (unreachable))";
    // 1024 holds `{}`: JSON, but not a result set.
    for (result, want) in [
        ("(i32.const 1024))", "not an array"),
        ("(i32.const 0x7ffffff0))", "outside memory"),
    ] {
        let module = load(&policy(patched("loop.wat", body, result, &dir))).expect("loads");
        match module.evaluate(&input("read_file")) {
            Err(Fault::Malformed(msg)) => assert!(msg.contains(want), "{msg}"),
            other => panic!("expected malformed output, got {other:?}"),
        }
    }
}
