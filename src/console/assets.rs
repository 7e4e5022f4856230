//! Operator console, its static files: the stylesheet, the one script and
//! the icon, compiled into the binary (rust-embed, embedded in debug builds
//! too) — no CDN, works offline. Each is served with its SHA-256 as ETag.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use rust_embed::RustEmbed;

use super::Error;
use crate::Body;
use crate::answer::full;

#[derive(RustEmbed)]
#[folder = "assets/console/"]
struct Files;

/// Serves one embedded file by name (`console.css`, …).
pub(crate) fn serve(head: &Parts, name: &str) -> Result<Response<Body>, Error> {
    let file = Files::get(name).ok_or_else(|| Error::NotFound(head.uri.path().to_owned()))?;
    let etag = format!(
        "\"{}\"",
        crate::store::model::hex(&file.metadata.sha256_hash())
    );
    let fresh = head
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        let mut resp = Response::new(full(""));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        Response::new(full(file.data.into_owned()))
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    Ok(resp)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some(_) | None => "application/octet-stream",
    }
}

/// Every embedded file's name (for tests).
#[cfg(test)]
pub(crate) fn names() -> Vec<String> {
    Files::iter().map(|n| n.into_owned()).collect()
}
