//! Identify stage: the claims of a token whose signature verified, checked
//! against the issuer's rules and turned into a `Workload`.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::super::spiffe::SpiffeId;
use super::super::{Delegation, Workload};
use super::{Identity, Mode, Rejection, Rules};

/// Most `act` levels accepted: the agent and seven earlier actors.
const MAX_DELEGATION_DEPTH: usize = 8;

/// Parses the payload once. A repeated top-level claim makes it malformed.
pub(super) fn parse(json: &[u8]) -> Result<Map<String, Value>, Rejection> {
    let mut de = serde_json::Deserializer::from_slice(json);
    de.deserialize_map(ClaimsVisitor)
        .and_then(|claims| de.end().map(|()| claims))
        .map_err(|_| Rejection::Malformed)
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut claims = Map::new();
        while let Some((name, value)) = map.next_entry::<String, Value>()? {
            if claims.insert(name, value).is_some() {
                return Err(de::Error::custom("repeated claim"));
            }
        }
        Ok(claims)
    }
}

/// Checks the claims in a fixed order and builds the identity.
pub(super) fn identity(
    mut claims: Map<String, Value>,
    rules: &Rules,
    audience: &str,
    now: u64,
) -> Result<Identity, Rejection> {
    let leeway = rules.leeway.as_secs();
    let exp = numeric_date(&claims, "exp")?.ok_or(Rejection::MissingExp)?;
    if now >= exp.saturating_add(leeway) {
        return Err(Rejection::Expired);
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(Rejection::NotYetValid);
    }
    match claims.get("iss") {
        None => return Err(Rejection::MissingIssuer),
        Some(Value::String(iss)) if *iss == rules.issuer => {}
        Some(_) => return Err(Rejection::WrongIssuer),
    }
    let audiences = audiences(claims.get("aud"))?;
    if !audiences.iter().any(|aud| aud == audience) {
        return Err(Rejection::WrongAudience);
    }
    if let Some(max) = rules.max_lifetime {
        let start = numeric_date(&claims, "iat")?.map_or(now, |iat| iat.min(now));
        if exp.saturating_sub(start) > max.as_secs() {
            return Err(Rejection::LifetimeTooLong);
        }
    }
    if let Some(name) = rules
        .required_claims
        .iter()
        .find(|name| claims.get(name.as_str()).is_none_or(Value::is_null))
    {
        return Err(Rejection::MissingClaim(name.clone()));
    }
    let subject = match claims.get("sub") {
        None => String::new(),
        Some(Value::String(sub)) => sub.clone(),
        Some(_) => return Err(Rejection::InvalidClaim("sub".into())),
    };
    let spiffe = match &rules.mode {
        Mode::Spiffe { trust_domains } => {
            let id = SpiffeId::workload(&subject).map_err(Rejection::BadSpiffeId)?;
            if !trust_domains.contains(&id.trust_domain) {
                return Err(Rejection::TrustDomainNotAllowed);
            }
            Some(id)
        }
        Mode::OAuth if subject.is_empty() => return Err(Rejection::MissingSubject),
        Mode::OAuth => None,
    };
    let delegation = delegation(claims.get("act"), &subject)?;
    let scopes = scopes(&claims)?;
    let task_id = match &rules.task_claim {
        None => None,
        Some(name) => match claims.get(name.as_str()) {
            None | Some(Value::Null) => None,
            Some(Value::String(task)) => Some(task.clone()),
            Some(_) => return Err(Rejection::InvalidClaim(name.clone())),
        },
    };
    let issuer = rules.issuer.clone();
    let mut selected = Map::new();
    for name in &rules.selected_claims {
        if let Some(value) = claims.remove(name.as_str()) {
            selected.insert(name.clone(), value);
        }
    }
    Ok(Identity::Workload(Arc::new(Workload {
        subject,
        issuer,
        spiffe,
        audience: audiences,
        scopes,
        expires_at: exp,
        claims: selected,
        delegation,
        task_id,
        derived: Default::default(),
    })))
}

/// A NumericDate: non-negative seconds, fractions dropped.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Rejection> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    });
    seconds
        .map(Some)
        .ok_or_else(|| Rejection::InvalidClaim(name.into()))
}

fn audiences(aud: Option<&Value>) -> Result<Vec<String>, Rejection> {
    let invalid = || Rejection::InvalidClaim("aud".into());
    match aud {
        None => Err(Rejection::MissingAudience),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(many)) if many.is_empty() => Err(Rejection::MissingAudience),
        Some(Value::Array(many)) => many
            .iter()
            .map(|aud| aud.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// `scope` (space-separated) wins; otherwise `scp`, an array or a string.
fn scopes(claims: &Map<String, Value>) -> Result<Vec<String>, Rejection> {
    let split = |s: &str| s.split_whitespace().map(str::to_owned).collect();
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) => Ok(split(scope)),
        (Some(_), _) => Err(Rejection::InvalidClaim("scope".into())),
        (None, None) => Ok(Vec::new()),
        (None, Some(Value::String(scp))) => Ok(split(scp)),
        (None, Some(Value::Array(items))) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Rejection::InvalidClaim("scp".into()))
            })
            .collect(),
        (None, Some(_)) => Err(Rejection::InvalidClaim("scp".into())),
    }
}

/// RFC 8693 `act`: each level an object with a non-empty string `sub`,
/// optionally nesting the previous actor in its own `act`.
fn delegation(act: Option<&Value>, subject: &str) -> Result<Delegation, Rejection> {
    let Some(mut level) = act else {
        return Ok(Delegation::default());
    };
    let mut actors = Vec::new();
    loop {
        let Value::Object(object) = level else {
            return Err(Rejection::BadDelegation);
        };
        match object.get("sub") {
            Some(Value::String(actor)) if !actor.is_empty() => actors.push(actor.clone()),
            _ => return Err(Rejection::BadDelegation),
        }
        if actors.len() > MAX_DELEGATION_DEPTH {
            return Err(Rejection::BadDelegation);
        }
        match object.get("act") {
            None => break,
            Some(next) => level = next,
        }
    }
    let mut actors = actors.into_iter();
    Ok(Delegation {
        user: Some(subject.to_owned()),
        agent: actors.next(),
        intermediaries: actors.collect(),
    })
}
