//! Accept stage: read the request body, bounded in size and in time. The
//! whole body is read before anything is decided or forwarded: policy
//! decides on the arguments, and nothing reaches an upstream before its
//! decision.

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::answer::Problem;

/// The one form of a path that routing, the tool name policy sees and the
/// upstream all use: percent-escapes of unreserved characters decoded
/// (`%70rod` is `prod`), other escapes upper-cased. A path another
/// component might read differently — `.`/`..` segments (also encoded),
/// encoded `/` or `\\`, `\\`, empty segments (`//`), `;` parameters, a broken
/// escape — is refused rather than allowed to escape its route or policy.
pub fn normalize_path(path: &str) -> Result<String, Problem> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = path
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or(Problem::BadPath)?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| Problem::BadPath)?;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'_' | b'~') {
                out.push(char::from(v));
            } else if matches!(v, b'.' | b'/' | b'\\') {
                return Err(Problem::BadPath);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        if matches!(b, b'\\' | b';') {
            return Err(Problem::BadPath);
        }
        if !b.is_ascii() {
            // A raw non-ASCII byte is written as its escape: one form for
            // `/é` and `/%C3%A9`, and never re-read as Latin-1.
            out.push_str(&format!("%{b:02X}"));
            i += 1;
            continue;
        }
        out.push(char::from(b));
        i += 1;
    }
    let dot_segment = out.split('/').any(|seg| seg == "." || seg == "..");
    if !out.starts_with('/') || dot_segment || out.contains("//") {
        return Err(Problem::BadPath);
    }
    Ok(out)
}

pub async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Problem> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Problem::BodyTooLarge { limit });
    }
    let collect = Limited::new(body, limit).collect();
    // A client that stops sending (or never sends what it announced with
    // `Expect: 100-continue`) does not hold the call open.
    let collected = match crate::listener::body_read_timeout() {
        Some(within) => {
            tokio::time::timeout(within, collect)
                .await
                .map_err(|_| Problem::BodyTimeout {
                    limit_ms: within.as_millis(),
                })?
        }
        None => collect.await,
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Problem::BodyTooLarge { limit })
        }
        Err(e) => Err(Problem::BodyRead(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_one_form_or_are_refused() {
        for (raw, want) in [
            ("/api/repos/acme/%70rod", "/api/repos/acme/prod"),
            ("/mcp", "/mcp"),
            ("/mcp/", "/mcp/"),
            ("/files/a%20b", "/files/a%20b"),
            ("/files/a%3ab", "/files/a%3Ab"),
            ("/x/%7euser", "/x/~user"),
            ("/files/\u{e9}t\u{e9}", "/files/%C3%A9t%C3%A9"),
            ("/files/%c3%a9", "/files/%C3%A9"),
        ] {
            assert_eq!(normalize_path(raw).unwrap(), want, "{raw}");
        }
        for bad in [
            "/api/../admin",
            "/api/./x",
            "/api/%2e%2e/admin",
            "/api/%2E/x",
            "/api/a%2fb",
            "/api/a%5cb",
            "/api//admin",
            "/api/a;jsessionid=1",
            "/api/a%",
            "/api/a%zz",
            "/api/a%+1",
            "/api/a\\b",
            "relative",
        ] {
            assert!(normalize_path(bad).is_err(), "{bad}");
        }
    }
}
