//! Accept stage: read the request body, bounded. The whole body is read
//! before anything is decided or forwarded: policy decides on the arguments,
//! and nothing reaches an upstream before its decision.

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::answer::Problem;

/// Paths are matched and forwarded as they are, so a path that another
/// component might normalise differently (`..`, `%2e%2e`, `%2f`, `\`) is
/// refused instead of being allowed to escape its route or its policy.
pub fn check_path(path: &str) -> Result<(), Problem> {
    let lower = path.to_ascii_lowercase();
    let encoded_separator = ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e));
    let dot_segment = path.split('/').any(|seg| seg == "." || seg == "..");
    if encoded_separator || dot_segment || path.contains('\\') {
        return Err(Problem::BadPath);
    }
    Ok(())
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
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Problem::BodyTooLarge { limit })
        }
        Err(e) => Err(Problem::BodyRead(e.to_string())),
    }
}
