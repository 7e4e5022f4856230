//! The policy page: the loaded module with where it applies, and the
//! reload button — shown to the admin role only, and working.

use super::browser::Browser;
use super::*;
use crate::common::TestGateway;
use crate::common::metric;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_page_lists_modules_and_an_admin_reloads_them() {
    let gw = TestGateway::start(&console_config("http://127.0.0.1:9/mcp", "deny", "")).await;
    let b = Browser::start().await;
    b.sign_in(&gw.admin_url(""), OPERATOR).await;
    b.click("a[href=\"/console/policy\"]").await;
    let table = b.text("#modules").await;
    for needle in ["jit", "call, list", "tools", "every tool"] {
        assert!(table.contains(needle), "{needle:?} missing:\n{table}");
    }
    let hash = b
        .wait_for("#modules code.hash")
        .await
        .attr("title")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash.len(), 64, "the module's SHA-256: {hash}");
    assert!(
        b.find_all("#reload button").await.is_empty(),
        "operators do not reload"
    );
    b.wait_text("#reloads", "Reloading needs the admin role")
        .await;

    b.click("#signout").await;
    b.wait_for("#token").await;
    b.sign_in(&gw.admin_url(""), ADMIN_TOKEN).await;
    b.goto(&gw.admin_url("/console/policy")).await;
    let before = b.text("#reloads-ok").await.parse::<u64>().unwrap();
    b.click("#reload button").await;
    b.wait_text("#flash", "Policies reloaded: 1 module(s) active.")
        .await;
    b.wait_text("#last-reload", "reload by root").await;
    // At least this one: the file watcher also reloads when other tests
    // rebuild the shared module files.
    assert!(b.text("#reloads-ok").await.parse::<u64>().unwrap() > before);
    let audited = metric(
        &gw,
        "toolgate_admin_actions_total{action=\"policies.reload\",outcome=\"ok\"}",
    )
    .await;
    assert_eq!(audited, 1.0, "counted like any admin API reload");
    b.close().await;
}
