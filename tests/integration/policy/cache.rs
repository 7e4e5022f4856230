//! The compiled-module cache (SECURITY.md, "Compiled-module cache"): an
//! entry planted under a module's name is refused and the real module runs.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_compiled_module_is_refused_and_the_real_one_runs() {
    let up = tools_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let start = |module: &str| {
        let mut config = format!("[policy_limits]\ncache_dir = \"{}\"\n", cache.display());
        config.push_str(&route("r", "/mcp", &up.url("/mcp")));
        config.push_str(&policy("guard", &fixture(module), "r", ""));
        config
    };
    // An allow-all module, compiled into the cache as the gateway does.
    let gw = TestGateway::start(&start("allow.wat")).await;
    assert_eq!(
        call(&gw, "/mcp", "delete_all").await["result"]["content"][0]["text"],
        "ok"
    );
    gw.stop().await;
    let sha = |name: &str| {
        let bytes = std::fs::read(fixture(name)).unwrap();
        crate::tasks::sha256_hex_bytes(&bytes)
    };
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with(&sha("allow.wat")))
        .expect("the allow module's entry");
    let engine_part = entry.split_once('-').unwrap().1;
    // Planted under the deny module's name: its content hash, same engine.
    std::fs::copy(
        cache.join(&entry),
        cache.join(format!("{}-{engine_part}", sha("deny.wat"))),
    )
    .unwrap();

    let gw = TestGateway::start(&start("deny.wat")).await;
    let answer = call(&gw, "/mcp", "delete_all").await;
    assert!(
        is_refused_with(&answer, "the deny fixture says no"),
        "the planted allow-all module ran: {answer}"
    );
    assert_eq!(up.seen().len(), 1, "only the first call reached the tool");
}
