use super::*;
use crate::config;

#[test]
fn longest_segment_prefix_wins() {
    let config = config::load_str(
        r#"
        [[routes]]
        name = "root"
        path = "/"
        upstream = "http://127.0.0.1:1"
        [[routes]]
        name = "mcp"
        path = "/mcp"
        upstream = "http://127.0.0.1:2/base"
        [[routes]]
        name = "deep"
        path = "/mcp/deep"
        upstream = "http://127.0.0.1:3"
        "#,
        "test",
        std::path::Path::new("."),
    )
    .unwrap();
    let s = Snapshot::build(&config, None).unwrap();
    let pick = |p| s.route_for(p).map(|(r, rest)| (r.name.as_str(), rest));
    assert_eq!(pick("/mcp"), Some(("mcp", "")));
    assert_eq!(pick("/mcp/x"), Some(("mcp", "/x")));
    assert_eq!(pick("/mcp/deep/y"), Some(("deep", "/y")));
    assert_eq!(pick("/mcpx"), Some(("root", "/mcpx")));
    let (mcp, _) = s.route_for("/mcp").unwrap();
    assert_eq!(
        mcp.upstream.uri("", Some("a=1")).unwrap(),
        "http://127.0.0.1:2/base?a=1"
    );
}
