//! Hostile modules: each denies with `policy_error` (or is refused at load)
//! while good calls on another route keep succeeding, concurrently.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_modules_fail_closed_without_hurting_good_calls() {
    let up = tools_upstream().await;
    let hostile = [
        "loop",
        "membomb",
        "trap",
        "garbage",
        "huge",
        "out_of_bounds",
    ];
    let mut config = String::from("[policy_limits]\ndeadline = \"20ms\"\nmax_memory = 8388608\n");
    config.push_str(&route("good", "/good", &up.url("/mcp")));
    config.push_str(&policy("allow", &fixture("allow.wat"), "good", ""));
    for name in hostile {
        config.push_str(&route(name, &format!("/{name}"), &up.url("/mcp")));
        config.push_str(&policy(
            &format!("{name}-policy"),
            &fixture(&format!("{name}.wat")),
            name,
            "",
        ));
    }
    let gw = std::sync::Arc::new(TestGateway::start(&config).await);

    // Good calls run in a loop while every hostile module is hit repeatedly.
    let good = {
        let gw = std::sync::Arc::clone(&gw);
        tokio::spawn(async move {
            let mut n = 0;
            let until = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < until {
                let ok = call(&gw, "/good", "echo").await;
                assert_eq!(
                    ok["result"]["content"][0]["text"], "ok",
                    "good call failed: {ok}"
                );
                n += 1;
            }
            n
        })
    };
    for round in 0..3 {
        let mut tasks = Vec::new();
        for name in hostile {
            let gw = std::sync::Arc::clone(&gw);
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let answer = call(&gw, &format!("/{name}"), "echo").await;
                (name, answer, started.elapsed())
            }));
        }
        for t in tasks {
            let (name, answer, took) = t.await.unwrap();
            assert!(
                is_refused_with(&answer, "policy_error"),
                "round {round}, {name}: {answer}"
            );
            assert!(took < Duration::from_secs(2), "{name} took {took:?}");
        }
    }
    let good_calls = good.await.unwrap();
    assert!(good_calls > 5, "good calls kept flowing: {good_calls}");
    for (name, kind) in [
        ("loop", "deadline"),
        ("membomb", "memory"),
        ("trap", "trap"),
        ("garbage", "malformed_output"),
        ("huge", "output_too_large"),
        ("out_of_bounds", "malformed_output"),
    ] {
        let m = crate::common::metric(
            &gw,
            &format!(
                "toolgate_policy_evaluations_total{{policy=\"{name}-policy\",result=\"{kind}\"}}"
            ),
        )
        .await;
        assert!(m >= 3.0, "{name} counted as {kind}: {m}");
    }
    assert_eq!(
        up.seen()
            .iter()
            .filter(|s| String::from_utf8_lossy(&s.body).contains("tools/call"))
            .count(),
        good_calls
    );
}

#[test]
fn modules_that_cannot_work_are_refused_at_load() {
    toolgate::install_crypto_provider();
    for (file, extra, want) in [
        ("missing_export.wat", "", "toolgate_decide"),
        (
            "wasi_import.wat",
            "",
            "imports something toolgate does not provide",
        ),
        // A config the module cannot take is an error, not silently dropped.
        (
            "allow.wat",
            "[policies.config]\nstrict = true",
            "toolgate_configure",
        ),
    ] {
        let text = format!(
            "{}{}",
            route("r", "/r", "http://127.0.0.1:1"),
            policy("p", &fixture(file), "r", extra)
        );
        let cfg = toolgate::config::load_str(&text, "t", Path::new(".")).unwrap();
        let err = toolgate::snapshot::Snapshot::build(&cfg, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("policy \"p\"") && err.contains(want),
            "{file}: {err}"
        );
    }
}
