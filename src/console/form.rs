//! Operator console, what a form carries: an
//! `application/x-www-form-urlencoded` body of at most [`MAX_FORM`] bytes,
//! each field at most once, and its translation into the JSON body of the
//! admin API call it stands for.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

use super::Error;

/// Largest form body (the admin API's own body limit).
pub(crate) const MAX_FORM: usize = 64 * 1024;

/// Fields that are the console's own, never sent to the API.
const OWN_FIELDS: [&str; 2] = ["csrf", "return"];
/// Fields the API takes as whole numbers.
const NUMBERS: [&str; 3] = ["max_uses", "not_before", "expires_at"];
/// Fields the API takes as JSON documents (typed into a textarea).
const DOCUMENTS: [&str; 2] = ["constraints", "labels"];

/// A parsed form: field → value, in the order sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(bytes) {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(Error::BadForm(format!("the form sends {key:?} twice")));
            }
            fields.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self(fields))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The admin API body this form stands for: empty fields left out,
    /// numbers and JSON documents typed, the console's own fields dropped.
    pub(crate) fn api_body(&self) -> Result<Value, Error> {
        let mut body = Map::new();
        for (key, value) in &self.0 {
            let value = value.trim();
            if value.is_empty() || OWN_FIELDS.contains(&key.as_str()) {
                continue;
            }
            let typed = if NUMBERS.contains(&key.as_str()) {
                let n: u64 = value.parse().map_err(|_| {
                    Error::BadForm(format!("{key}: {value:?} is not a whole number"))
                })?;
                Value::from(n)
            } else if DOCUMENTS.contains(&key.as_str()) {
                serde_json::from_str(value)
                    .map_err(|e| Error::BadForm(format!("{key}: not valid JSON ({e})")))?
            } else {
                Value::String(value.to_owned())
            };
            body.insert(key.clone(), typed);
        }
        Ok(Value::Object(body))
    }
}

/// Reads and parses a form body.
pub(crate) async fn read<B>(head: &Parts, body: B) -> Result<Form, Error>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<crate::BoxError>,
{
    let kind = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = kind.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Error::BadForm(format!(
            "the console takes forms (application/x-www-form-urlencoded), not {kind:?}"
        )));
    }
    let declared = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_FORM as u64) {
        return Err(Error::TooLarge(MAX_FORM));
    }
    let bytes = match Limited::new(body, MAX_FORM).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Error::TooLarge(MAX_FORM));
        }
        Err(e) => return Err(Error::BadForm(format!("could not read the form: {e}"))),
    };
    Form::parse(&bytes)
}
