use super::{HostPattern, host_of};

fn allowed(url: &str) -> bool {
    let patterns: Vec<HostPattern> = ["api.github.com", "*.example.com", "10.0.0.5", "::1"]
        .iter()
        .map(|p| HostPattern::parse(p).expect("valid pattern"))
        .collect();
    host_of(url).is_ok_and(|host| patterns.iter().any(|p| p.allows(&host)))
}

#[test]
fn listed_hosts_pass() {
    for url in [
        "https://api.github.com/repos/acme/app",
        "http://api.github.com",
        "HTTPS://API.GitHub.com:443/x?y#z",
        "https://api.github.com./x",
        "https://docs.example.com/a",
        "https://a.b.example.com",
        "http://10.0.0.5:8080/health",
        "http://[::1]:3000/",
        "https://api.github.com?q=@evil.com",
        "https://api.github.com#@evil.com",
    ] {
        assert!(allowed(url), "{url}");
    }
}

#[test]
fn everything_else_fails() {
    for url in [
        "https://evil.com",
        "https://api.github.com@evil.com",
        "https://api.github.com:pw@evil.com/",
        "https://evil.com\\@api.github.com",
        "https://api.github.com\\@evil.com",
        "https://example.com",
        "https://evilexample.com",
        "https://example.com.evil.com",
        "https://api.github.com.evil.com",
        "ftp://api.github.com",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "//api.github.com",
        "api.github.com/x",
        "https:/api.github.com",
        "https:///api.github.com",
        "https://api.git hub.com",
        "https://api.github.com\t",
        "https://api%2egithub.com",
        "https://xn--pple-43d.com",
        "https://аpple.example.com",
        "http://10.0.0.6",
        "http://010.0.0.5",
        "http://167772165",
        "http://0xa000005",
        "http://10.5",
        "http://[::2]",
        "http://[::1",
        "https://api.github.com:99999999",
        "https://api.github.com:",
        "https://.example.com",
        "https://a..example.com",
        "",
    ] {
        assert!(!allowed(url), "{url}");
    }
}

#[test]
fn patterns_are_checked() {
    assert!(HostPattern::parse("*.10.0.0.5").is_err());
    assert!(HostPattern::parse("api.github.com/x").is_err());
    assert!(HostPattern::parse("https://api.github.com").is_err());
    assert!(HostPattern::parse("0177.0.0.1").is_err());
    assert_eq!(
        HostPattern::parse("*.Example.COM"),
        Ok(HostPattern::Below(".example.com".into()))
    );
}
