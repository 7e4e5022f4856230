//! `path_prefix`: a file path argument must lie under a directory, after
//! `.`, `..` and repeated slashes are resolved — so `/workspace/../etc`
//! is `/etc`. Paths are checked as text: a symlink inside the prefix that
//! points outside it is the tool's (or the sandbox's) to prevent.

/// A path in normal form: absolute, no `.`/`..`/empty segments, no trailing
/// slash (except the root itself).
pub(crate) fn normalize(path: &str) -> Result<String, String> {
    if path.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    // Windows separators would let `..\..` through a Unix-style check.
    if path.contains('\\') {
        return Err("path contains a backslash".into());
    }
    // A tool that URL-decodes its argument would see `%2e%2e/` as `../`.
    if let Some(encoded) = encoded_separator(path) {
        return Err(format!("path contains percent-encoded {encoded:?}"));
    }
    if !path.starts_with('/') {
        return Err("path is not absolute".into());
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            // `/..` is `/`: popping an empty stack stays at the root.
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Whether normalised `path` is `prefix` or inside it (segment-wise, so
/// `/workspace2` is not inside `/workspace`).
pub(crate) fn within(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The first `%XX` that decodes to `.`, `/`, `\`, NUL or `%` (double encoding).
fn encoded_separator(path: &str) -> Option<char> {
    let bytes = path.as_bytes();
    bytes.windows(3).find_map(|w| {
        let hex = std::str::from_utf8(&w[1..]).ok()?;
        let decoded = u8::from_str_radix(hex, 16).ok()?;
        (w[0] == b'%' && matches!(decoded, b'.' | b'/' | b'\\' | 0 | b'%'))
            .then(|| char::from(decoded))
    })
}

#[cfg(test)]
mod tests {
    use super::{normalize, within};

    fn allowed(path: &str) -> bool {
        normalize(path).is_ok_and(|p| within(&p, "/workspace"))
    }

    #[test]
    fn normalizes_dots_and_slashes() {
        assert_eq!(normalize("/a/./b//c/"), Ok("/a/b/c".into()));
        assert_eq!(normalize("/a/b/../../.."), Ok("/".into()));
        assert_eq!(normalize("//"), Ok("/".into()));
        assert_eq!(normalize("/a/..."), Ok("/a/...".into()), "... is a name");
    }

    #[test]
    fn inside_the_prefix() {
        assert!(allowed("/workspace/src/main.rs"));
        assert!(allowed("/workspace"));
        assert!(allowed("/workspace/"));
        assert!(allowed("//workspace//a/./b"));
        assert!(allowed("/workspace/a/../b"));
        assert!(allowed("/tmp/../workspace/x"));
    }

    #[test]
    fn traversal_and_tricks_are_outside() {
        for path in [
            "/workspace/../etc/passwd",
            "/workspace/a/../../etc",
            "/workspace2/x",
            "/workspacex",
            "workspace/x",
            "./workspace/x",
            "~/workspace",
            "",
            "/workspace/x\0.png",
            "/workspace/..\\..\\etc",
            "/workspace/%2e%2e/etc",
            "/workspace/%2E%2e%2Fetc",
            "/workspace/..%2fetc",
            "/workspace/%252e%252e/etc",
            "/etc",
        ] {
            assert!(!allowed(path), "{path:?}");
        }
    }

    #[test]
    fn root_prefix_allows_every_absolute_path() {
        assert!(within("/etc", "/"));
    }
}
