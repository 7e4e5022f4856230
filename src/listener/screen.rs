//! Accept stage: the request-head screen. Before any stage sees a request,
//! heads that another HTTP component could frame or read differently are
//! refused — smuggling shapes, oversized heads, and a `Connection` header
//! that would make end-to-end headers vanish after they were checked.

use http::header::{self, HeaderMap};
use http::{HeaderName, Version};

use crate::answer::Problem;

/// The head limits of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub(crate) max_headers: usize,
    pub(crate) max_header_bytes: usize,
}

/// End-to-end headers a `Connection` header may not name: the gateway
/// decides on them (or the upstream needs them to read the request as the
/// gateway did), so stripping them as hop-by-hop would forward a request
/// other than the one decided on. Every `mcp-*` header is one of them.
const END_TO_END: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LENGTH,
    header::ACCEPT,
    header::HOST,
    HeaderName::from_static("last-event-id"),
];

/// True for a header `Connection` may never name (see [`END_TO_END`]).
pub fn is_end_to_end(name: &str) -> bool {
    let name = name.trim();
    name.get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("mcp-"))
        || END_TO_END
            .iter()
            .any(|h| h.as_str().eq_ignore_ascii_case(name))
}

/// The size a header block counts for: each field's name, value, `": "` and CRLF.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Refuses a request head the gateway will not take.
pub(crate) fn check(
    version: Version,
    headers: &HeaderMap,
    limits: HeadLimits,
) -> Result<(), Problem> {
    if headers.len() > limits.max_headers {
        return Err(Problem::HeadersTooLarge(format!(
            "the request has {} header fields; the limit is {}",
            headers.len(),
            limits.max_headers
        )));
    }
    let bytes = header_bytes(headers);
    if bytes > limits.max_header_bytes {
        return Err(Problem::HeadersTooLarge(format!(
            "the request headers are {bytes} bytes; the limit is {}",
            limits.max_header_bytes
        )));
    }
    framing(version, headers)?;
    let named = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|name| std::str::from_utf8(name).map_or(true, is_end_to_end));
    if named {
        return Err(Problem::BadRequest(
            "the Connection header names an end-to-end header (mcp-*, content-type, accept, host, ...): those are never dropped as hop-by-hop",
        ));
    }
    Ok(())
}

/// The framing headers of the raw HTTP/1 head, which the parsed head no
/// longer shows in full: the engine drops a repeated `Content-Length` and
/// one sent with `Transfer-Encoding`. A head that was not captured whole
/// (or an HTTP/2 request: no raw head) passes; the parsed-head checks and
/// the engine's own rules (Transfer-Encoding wins, the connection closes)
/// still hold for it.
pub(crate) fn raw_framing(head: &[u8]) -> Result<(), Problem> {
    let mut fields = [httparse::EMPTY_HEADER; RAW_FIELDS];
    let mut more;
    let mut request = httparse::Request::new(&mut fields);
    let parsed = match request.parse(head) {
        Err(httparse::Error::TooManyHeaders) => {
            more = vec![httparse::EMPTY_HEADER; 10_000];
            request = httparse::Request::new(&mut more);
            request.parse(head)
        }
        other => other,
    };
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        return Ok(());
    }
    let named = |name: &str| {
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    let lengths = named("content-length");
    if lengths > 1 {
        return Err(Problem::BadRequest(
            "the request carries more than one Content-Length header",
        ));
    }
    if lengths == 1 && named("transfer-encoding") > 0 {
        return Err(Problem::BadRequest(
            "a request may not carry both Content-Length and Transfer-Encoding",
        ));
    }
    Ok(())
}

/// Fields parsed from a raw head without allocating (hyper's own default).
const RAW_FIELDS: usize = 100;

/// One way to frame the body, and only one.
fn framing(version: Version, headers: &HeaderMap) -> Result<(), Problem> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(Problem::BadRequest(
            "the request carries more than one Content-Length header",
        ));
    }
    if length.is_some_and(|v| v.is_empty() || !v.as_bytes().iter().all(u8::is_ascii_digit)) {
        return Err(Problem::BadRequest(
            "Content-Length must be one decimal number",
        ));
    }
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else {
        return Ok(());
    };
    if length.is_some() {
        return Err(Problem::BadRequest(
            "a request may not carry both Content-Length and Transfer-Encoding",
        ));
    }
    let chunked_only = version == Version::HTTP_11
        && codings.next().is_none()
        && coding
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked");
    if !chunked_only {
        return Err(Problem::BadRequest(
            "the only Transfer-Encoding accepted is a single \"chunked\" on HTTP/1.1",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_headers: 100,
        max_header_bytes: 64 * 1024,
    };

    fn head(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(
                HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn code(fields: &[(&str, &str)]) -> Option<&'static str> {
        check(Version::HTTP_11, &head(fields), LIMITS)
            .err()
            .map(|p| p.code())
    }

    #[test]
    fn ordinary_heads_pass() {
        assert_eq!(
            code(&[("content-length", "10"), ("connection", "keep-alive")]),
            None
        );
        assert_eq!(code(&[("transfer-encoding", "chunked")]), None);
        assert_eq!(
            code(&[("connection", "close, x-hop"), ("x-hop", "1")]),
            None
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for fields in [
            &[("content-length", "5"), ("transfer-encoding", "chunked")][..],
            &[("content-length", "5"), ("content-length", "5")],
            &[("content-length", "5"), ("content-length", "6")],
            &[("content-length", "5, 5")],
            &[("content-length", "+5")],
            &[("transfer-encoding", "gzip, chunked")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert_eq!(code(fields), Some("bad_request"), "{fields:?}");
        }
        let h2 = head(&[("transfer-encoding", "chunked")]);
        assert!(check(Version::HTTP_2, &h2, LIMITS).is_err());
    }

    #[test]
    fn raw_heads_with_two_framings_are_refused() {
        let refused = |head: &str| raw_framing(head.as_bytes()).is_err();
        assert!(refused(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(refused(
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"
        ));
        assert!(refused(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
        ));
        assert!(!refused(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        ));
        assert!(!refused(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
        assert!(
            !refused("POST / HTTP/1.1\r\nContent-Len"),
            "a partial capture passes"
        );
        let many: String = (0..300).map(|i| format!("x-{i}: v\r\n")).collect();
        let head =
            format!("POST / HTTP/1.1\r\n{many}Content-Length: 1\r\nContent-Length: 1\r\n\r\n");
        assert!(refused(&head), "past the stack's fields too");
    }

    #[test]
    fn a_connection_header_may_not_name_end_to_end_headers() {
        for named in [
            "mcp-name",
            "Mcp-Protocol-Version",
            "keep-alive, MCP-SESSION-ID",
            "content-type",
            " accept ",
        ] {
            assert_eq!(
                code(&[("connection", named)]),
                Some("bad_request"),
                "{named}"
            );
        }
    }

    #[test]
    fn oversized_heads_are_refused_by_count_and_by_bytes() {
        let many: Vec<(String, String)> =
            (0..101).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(code(&many), Some("request_headers_too_large"));
        let big = "a".repeat(64 * 1024);
        assert_eq!(code(&[("x-big", &big)]), Some("request_headers_too_large"));
        let fits = "a".repeat(64 * 1024 - 9);
        assert_eq!(code(&[("x-big", &fits)]), None);
    }
}
