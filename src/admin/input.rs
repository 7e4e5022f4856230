//! Admin API, what a request carries: its JSON body (≤ 64 KiB, read whole
//! once, then parsed into the endpoint's request type, unknown fields refused) and its query
//! parameters (unknown ones refused, so a typo never widens a listing).

use std::collections::BTreeMap;

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::error::Error;

/// Largest admin request body.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// Parses a JSON body already read; an empty body is `{}`.
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson(e.to_string()))
}

/// Reads a body whole, at most [`MAX_BODY`] bytes.
pub(super) async fn read(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Error> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = Error::BodyTooLarge { limit: MAX_BODY };
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large);
    }
    let collect = Limited::new(body, MAX_BODY).collect();
    // Read after authentication, but a caller that stops sending still
    // must not hold the request open: the listener's body-read timeout.
    let collected = match crate::listener::body_read_timeout() {
        Some(within) => {
            tokio::time::timeout(within, collect)
                .await
                .map_err(|_| Error::BodyTimeout {
                    limit_ms: within.as_millis(),
                })?
        }
        None => collect.await,
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Err(e) => Err(Error::BodyRead(e.to_string())),
    }
}

/// A free-text reason: at most 4 KiB, no control characters.
pub(super) fn reason(text: Option<String>, required: bool) -> Result<String, Error> {
    let text = text.unwrap_or_default();
    if required && text.trim().is_empty() {
        return Err(Error::Invalid("reason: is required".into()));
    }
    if text.len() > 4096 {
        return Err(Error::Invalid("reason: is longer than 4096 bytes".into()));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "reason: must not contain control characters".into(),
        ));
    }
    Ok(text)
}

/// Query parameters, each at most once and each one of `allowed`; empty
/// values count as absent.
#[derive(Debug, Default)]
pub(super) struct Query(BTreeMap<String, String>);

impl Query {
    pub(super) fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, Error> {
        let mut out = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if !allowed.contains(&key.as_ref()) {
                return Err(Error::Invalid(format!(
                    "unknown query parameter {key:?} (this endpoint takes {})",
                    allowed.join(", ")
                )));
            }
            if out
                .insert(key.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(Error::Invalid(format!(
                    "query parameter {key:?} is repeated"
                )));
            }
        }
        out.retain(|_, v: &mut String| !v.is_empty());
        Ok(Self(out))
    }

    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    /// A parameter parsed as one of a lowercase enum's names.
    pub(super) fn parse_as<T: DeserializeOwned>(
        &self,
        key: &str,
        names: &str,
    ) -> Result<Option<T>, Error> {
        self.0
            .get(key)
            .map(|v| {
                serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| Error::Invalid(format!("{key}: {v:?} is not one of {names}")))
            })
            .transpose()
    }

    pub(super) fn flag(&self, key: &str) -> Result<bool, Error> {
        match self.0.get(key).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(Error::Invalid(format!(
                "{key}: {other:?} is not true or false"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_refuse_unknown_and_repeated_keys() {
        let q = Query::parse(Some("agent=a%20b&state="), &["agent", "state"]).unwrap();
        assert_eq!(q.get("agent").as_deref(), Some("a b"));
        assert_eq!(q.get("state"), None, "empty is absent");
        let e = Query::parse(Some("task_id=x"), &["task"]).unwrap_err();
        assert!(e.to_string().contains("\"task_id\""), "{e}");
        assert!(Query::parse(Some("task=a&task=b"), &["task"]).is_err());
        let q = Query::parse(Some("live=yes"), &["live"]).unwrap();
        assert!(q.flag("live").is_err());
        assert!(
            Query::parse(None, &[])
                .unwrap()
                .flag("live")
                .is_ok_and(|l| !l)
        );
    }

    #[test]
    fn enum_values_are_checked() {
        let q = Query::parse(Some("state=active"), &["state"]).unwrap();
        let s: Option<crate::store::TaskState> = q.parse_as("state", "active, completed").unwrap();
        assert_eq!(s, Some(crate::store::TaskState::Active));
        let q = Query::parse(Some("state=done"), &["state"]).unwrap();
        let e = q
            .parse_as::<crate::store::TaskState>("state", "active, completed")
            .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }
}
