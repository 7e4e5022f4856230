//! Identify stage: the JOSE header of a token, read once, strictly: a repeated
//! `alg`, `kid` or `typ` makes the token malformed.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{Mode, Rejection};

/// The header fields verification looks at.
#[derive(Debug, Default)]
pub(super) struct Header {
    pub(super) alg: String,
    pub(super) kid: Option<String>,
    typ: Option<String>,
    /// Any field besides `alg`, `kid` and `typ` was present.
    other_fields: bool,
    crit: bool,
}

impl Header {
    pub(super) fn parse(json: &[u8]) -> Result<Self, Rejection> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let header = de
            .deserialize_map(HeaderVisitor)
            .and_then(|h| de.end().map(|()| h))
            .map_err(|_| Rejection::Malformed)?;
        if header.alg.is_empty() {
            return Err(Rejection::Malformed);
        }
        Ok(header)
    }

    /// JWT-SVIDs allow only `alg`, `kid` and `typ` (`JWT` or `JOSE`). OAuth
    /// tokens may carry other fields but not `crit`: no extension is
    /// understood here.
    pub(super) fn check_fields(&self, mode: &Mode) -> Result<(), Rejection> {
        let allowed = match mode {
            Mode::Spiffe { .. } => {
                !self.other_fields
                    && self
                        .typ
                        .as_deref()
                        .is_none_or(|t| t == "JWT" || t == "JOSE")
            }
            Mode::OAuth => !self.crit,
        };
        if allowed {
            Ok(())
        } else {
            Err(Rejection::HeaderFieldNotAllowed)
        }
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        let mut alg = None;
        while let Some(name) = map.next_key::<String>()? {
            let slot = match name.as_str() {
                "alg" => &mut alg,
                "kid" => &mut header.kid,
                "typ" => &mut header.typ,
                other => {
                    header.other_fields = true;
                    header.crit |= other == "crit";
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.replace(map.next_value::<String>()?).is_some() {
                return Err(de::Error::custom("repeated header field"));
            }
        }
        header.alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?;
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spiffe() -> Mode {
        Mode::Spiffe {
            trust_domains: vec!["example.org".into()],
        }
    }

    #[test]
    fn reads_alg_kid_typ() {
        let h = Header::parse(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#).unwrap();
        assert_eq!((h.alg.as_str(), h.kid.as_deref()), ("RS256", Some("k1")));
        assert_eq!(h.check_fields(&spiffe()), Ok(()));
        assert_eq!(h.check_fields(&Mode::OAuth), Ok(()));
    }

    #[test]
    fn refuses_malformed_headers() {
        let cases: [&[u8]; 7] = [
            br#"{"alg":"RS256","alg":"none"}"#,
            br#"{"alg":"RS256","kid":"a","kid":"b"}"#,
            br#"{"kid":"a"}"#,
            br#"{"alg":""}"#,
            br#"{"alg":256}"#,
            br#"["RS256"]"#,
            br#"{"alg":"RS256"} trailing"#,
        ];
        for json in cases {
            let got = Header::parse(json).map(|_| ());
            assert_eq!(
                got,
                Err(Rejection::Malformed),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn spiffe_allows_only_alg_kid_typ() {
        for json in [
            r#"{"alg":"RS256","kid":"k","jku":"https://evil"}"#,
            r#"{"alg":"RS256","kid":"k","typ":"at+jwt"}"#,
            r#"{"alg":"RS256","kid":"k","cty":"JWT"}"#,
        ] {
            let h = Header::parse(json.as_bytes()).unwrap();
            assert_eq!(
                h.check_fields(&spiffe()),
                Err(Rejection::HeaderFieldNotAllowed)
            );
        }
        let h = Header::parse(br#"{"alg":"RS256","typ":"JOSE"}"#).unwrap();
        assert_eq!(h.check_fields(&spiffe()), Ok(()));
    }

    #[test]
    fn oauth_refuses_only_crit() {
        let h = Header::parse(br#"{"alg":"RS256","typ":"at+jwt","x5t":"abc"}"#).unwrap();
        assert_eq!(h.check_fields(&Mode::OAuth), Ok(()));
        let h = Header::parse(br#"{"alg":"RS256","crit":["exp"],"exp":1}"#).unwrap();
        assert_eq!(
            h.check_fields(&Mode::OAuth),
            Err(Rejection::HeaderFieldNotAllowed)
        );
    }
}
