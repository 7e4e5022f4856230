//! Identify stage: SPIFFE IDs (`spiffe://trust-domain/path`), parsed exactly as
//! the SPIFFE ID spec allows so a JWT-SVID's `sub` names one workload.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// The longest SPIFFE ID accepted, in bytes, scheme included.
pub const MAX_ID_BYTES: usize = 2048;
/// The longest trust domain name accepted, in bytes (a URI host).
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

const SCHEME: &str = "spiffe://";

/// A valid SPIFFE ID. Serializes as its URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    /// E.g. `example.org`.
    pub trust_domain: String,
    /// Empty, or `/seg/seg...` with a leading slash and no trailing one.
    pub path: String,
}

/// Why a string is not a SPIFFE ID. Messages name the defect, never the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("SPIFFE ID is empty")]
    Empty,
    #[error("SPIFFE ID is longer than 2048 bytes")]
    TooLong,
    #[error("SPIFFE ID scheme is not spiffe://")]
    Scheme,
    #[error("SPIFFE ID contains a query")]
    Query,
    #[error("SPIFFE ID contains a fragment")]
    Fragment,
    #[error("SPIFFE ID contains percent-encoding")]
    PercentEncoding,
    #[error("trust domain is empty")]
    EmptyTrustDomain,
    #[error("trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    #[error("trust domain contains userinfo")]
    UserInfo,
    #[error("trust domain contains a port")]
    Port,
    #[error("trust domain contains uppercase letters")]
    UppercaseTrustDomain,
    #[error("trust domain contains a character other than a-z 0-9 . - _")]
    TrustDomainChar,
    #[error("path has an empty segment")]
    EmptySegment,
    #[error("path has a trailing slash")]
    TrailingSlash,
    #[error("path has a dot segment")]
    DotSegment,
    #[error("path contains a character other than a-z A-Z 0-9 . - _")]
    PathChar,
    /// `spiffe://example.org`: a valid ID, but of a trust domain, not a workload.
    #[error("SPIFFE ID names a trust domain, not a workload (it has no path)")]
    NoWorkload,
}

impl SpiffeId {
    /// Parses a workload's ID, `spiffe://trust-domain/path`: a JWT-SVID's
    /// `sub` must name a workload, and a trust domain's own ID names none.
    pub fn workload(id: &str) -> Result<Self, Error> {
        let id = Self::parse(id)?;
        if id.path.is_empty() {
            return Err(Error::NoWorkload);
        }
        Ok(id)
    }

    /// Parses `spiffe://trust-domain[/path]`.
    pub fn parse(id: &str) -> Result<Self, Error> {
        if id.is_empty() {
            return Err(Error::Empty);
        }
        if id.len() > MAX_ID_BYTES {
            return Err(Error::TooLong);
        }
        let rest = id.strip_prefix(SCHEME).ok_or(Error::Scheme)?;
        match rest.find(['?', '#']).map(|at| rest.as_bytes()[at]) {
            Some(b'?') => return Err(Error::Query),
            Some(_) => return Err(Error::Fragment),
            None => {}
        }
        if rest.contains('%') {
            return Err(Error::PercentEncoding);
        }
        let (trust_domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        check_trust_domain(trust_domain)?;
        check_path(path)?;
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            path: path.to_owned(),
        })
    }
}

fn check_trust_domain(td: &str) -> Result<(), Error> {
    if td.is_empty() {
        return Err(Error::EmptyTrustDomain);
    }
    if td.contains('@') {
        return Err(Error::UserInfo);
    }
    if td.contains(':') {
        return Err(Error::Port);
    }
    if td.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(Error::TrustDomainTooLong);
    }
    if td.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Error::UppercaseTrustDomain);
    }
    if !td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(Error::TrustDomainChar);
    }
    Ok(())
}

/// `path` is empty or starts with `/` (it was split off at the first slash).
fn check_path(path: &str) -> Result<(), Error> {
    let Some(segments) = path.strip_prefix('/') else {
        return Ok(());
    };
    let mut segments = segments.split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "" if segments.peek().is_none() => return Err(Error::TrailingSlash),
            "" => return Err(Error::EmptySegment),
            "." | ".." => return Err(Error::DotSegment),
            _ => {}
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(Error::PathChar);
        }
    }
    Ok(())
}

impl FromStr for SpiffeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}{}", self.trust_domain, self.path)
    }
}

/// Serialized as policy modules see it (policy-modules/ABI.md):
/// `{"id": "spiffe://td/path", "trust_domain": "td", "path": "/path"}`.
impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("SpiffeId", 3)?;
        st.serialize_field("id", &self.to_string())?;
        st.serialize_field("trust_domain", &self.trust_domain)?;
        st.serialize_field("path", &self.path)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_parse_and_render_back() {
        let cases = [
            ("spiffe://example.org", "example.org", ""),
            ("spiffe://example.org/agent", "example.org", "/agent"),
            (
                "spiffe://staging.example.com/payments/mysql",
                "staging.example.com",
                "/payments/mysql",
            ),
            (
                "spiffe://k8s-west.example.com/ns/staging/sa/default",
                "k8s-west.example.com",
                "/ns/staging/sa/default",
            ),
            (
                "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
                "example.com",
                "/9eebccd2-12bf-40a6-b262-65fe0487d453",
            ),
            (
                "spiffe://td_1.x-y/A.b-C_d/..a/a..",
                "td_1.x-y",
                "/A.b-C_d/..a/a..",
            ),
            ("spiffe://1.2.3.4/x", "1.2.3.4", "/x"),
        ];
        for (input, td, path) in cases {
            let id = SpiffeId::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!((id.trust_domain.as_str(), id.path.as_str()), (td, path));
            assert_eq!(id.to_string(), input);
            assert_eq!(input.parse::<SpiffeId>(), Ok(id));
        }
    }

    #[test]
    fn invalid_ids_name_the_defect() {
        let long_path = format!("spiffe://example.org/{}", "a".repeat(MAX_ID_BYTES));
        let long_td = format!("spiffe://{}/a", "a".repeat(256));
        let cases: Vec<(&str, Error)> = vec![
            ("", Error::Empty),
            (&long_path, Error::TooLong),
            (&long_td, Error::TrustDomainTooLong),
            ("example.org/agent", Error::Scheme),
            ("SPIFFE://example.org/agent", Error::Scheme),
            ("spiffe:/example.org/agent", Error::Scheme),
            ("https://example.org/agent", Error::Scheme),
            ("spiffe://", Error::EmptyTrustDomain),
            ("spiffe:///agent", Error::EmptyTrustDomain),
            ("spiffe://example.org:8443/agent", Error::Port),
            ("spiffe://example.org:/agent", Error::Port),
            ("spiffe://user@example.org/agent", Error::UserInfo),
            ("spiffe://user:pw@example.org/agent", Error::UserInfo),
            ("spiffe://Example.org/agent", Error::UppercaseTrustDomain),
            ("spiffe://exa mple.org/agent", Error::TrustDomainChar),
            ("spiffe://exämple.org/agent", Error::TrustDomainChar),
            ("spiffe://example.org/agent?x=1", Error::Query),
            ("spiffe://example.org?x=1", Error::Query),
            ("spiffe://example.org/agent#frag", Error::Fragment),
            ("spiffe://example.org/a%20b", Error::PercentEncoding),
            ("spiffe://example%2eorg/a", Error::PercentEncoding),
            ("spiffe://example.org/", Error::TrailingSlash),
            ("spiffe://example.org/agent/", Error::TrailingSlash),
            ("spiffe://example.org//agent", Error::EmptySegment),
            ("spiffe://example.org/a//b", Error::EmptySegment),
            ("spiffe://example.org/./agent", Error::DotSegment),
            ("spiffe://example.org/a/../b", Error::DotSegment),
            ("spiffe://example.org/..", Error::DotSegment),
            ("spiffe://example.org/a b", Error::PathChar),
            ("spiffe://example.org/a*b", Error::PathChar),
            ("spiffe://example.org/ä", Error::PathChar),
            ("spiffe://example.org/a\\b", Error::PathChar),
        ];
        for (input, want) in cases {
            assert_eq!(SpiffeId::parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn a_workload_id_needs_a_path() {
        assert_eq!(
            SpiffeId::workload("spiffe://example.org"),
            Err(Error::NoWorkload)
        );
        assert_eq!(
            SpiffeId::workload("spiffe://example.org/"),
            Err(Error::TrailingSlash)
        );
        let id = SpiffeId::workload("spiffe://example.org/agent").unwrap();
        assert_eq!(id.path, "/agent");
    }

    #[test]
    fn length_limit_is_inclusive() {
        let prefix = "spiffe://example.org/";
        let id = format!("{prefix}{}", "a".repeat(MAX_ID_BYTES - prefix.len()));
        assert!(SpiffeId::parse(&id).is_ok());
        let td = format!("spiffe://{}", "a".repeat(MAX_TRUST_DOMAIN_BYTES));
        assert!(SpiffeId::parse(&td).is_ok());
    }

    #[test]
    fn error_messages_are_header_safe() {
        let errors = [
            Error::NoWorkload,
            Error::Port,
            Error::PathChar,
            Error::TrustDomainChar,
            Error::Query,
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains(['"', '\\']), "{text}");
        }
        assert_eq!(Error::Port.to_string(), "trust domain contains a port");
    }
}
