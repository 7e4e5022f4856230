//! Decide stage, approvals through the protocol (2026-07-28): the
//! `requestState` toolgate hands a client whose call policy parked for a
//! human. It is signed (HMAC-SHA256) and binds the caller, the route, the
//! call (tool and arguments), the approval and an expiry; it carries, and
//! gives back untouched on the retry, whatever of an upstream's own round
//! trip the parked call held (`requestState`, `inputResponses`). Each state
//! is good for one retry.

use aws_lc_rs::{digest, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::Millis;
use crate::store::model::argument_digest;

/// How every toolgate approval state begins; anything else is an upstream's.
pub(crate) const PREFIX: &str = "tgapproval.v1.";
/// The `inputRequests` key of toolgate's approval elicitation.
pub(crate) const INPUT_KEY: &str = "toolgate_approval";
/// Most spent states remembered (until their expiry) to refuse replays.
const MAX_SPENT: usize = 100_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("the approval requestState is malformed")]
    Malformed,
    #[error("the approval requestState was not signed by this gateway")]
    Forged,
    #[error("the approval requestState has expired")]
    Expired,
    #[error("the approval requestState belongs to another caller")]
    OtherCaller,
    #[error("the approval requestState belongs to another call")]
    OtherCall,
    #[error("the approval requestState was already used")]
    Replayed,
    #[error("too many approval requestStates are in use; retry later")]
    Full,
}

/// What one state says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Claims {
    /// SHA-256 of the caller's principal.
    caller: String,
    /// SHA-256 of route, tool and argument digest.
    call: String,
    pub(crate) approval: String,
    /// Expiry, Unix milliseconds.
    exp: Millis,
    nonce: String,
    /// The upstream's `requestState` the parked call carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_state: Option<Value>,
    /// The `inputResponses` the parked call carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_responses: Option<Value>,
}

/// The call a state is made for or presented with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound<'a> {
    pub(crate) owner: &'a str,
    pub(crate) route: &'a str,
    pub(crate) tool: &'a str,
    pub(crate) arguments: &'a Value,
}

impl Bound<'_> {
    fn caller(&self) -> String {
        sha256(self.owner.as_bytes())
    }

    fn call(&self) -> String {
        let digest = argument_digest(self.arguments);
        sha256(format!("{}\n{}\n{digest}", self.route, self.tool).as_bytes())
    }
}

/// Signs and checks approval states; remembers the spent ones.
#[derive(Debug)]
pub(crate) struct ApprovalStates {
    /// Used when the config names no key.
    generated: hmac::Key,
    spent: DashMap<String, Millis>,
}

impl Default for ApprovalStates {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        if rand::fill(&mut secret).is_err() {
            // Never a fixed key: one no one can know is as good as refusing.
            tracing::error!("no randomness for the approval state key; states will not verify");
        }
        Self {
            generated: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            spent: DashMap::new(),
        }
    }
}

impl ApprovalStates {
    fn key(&self, configured: Option<&[u8]>) -> hmac::Key {
        match configured {
            Some(secret) => hmac::Key::new(hmac::HMAC_SHA256, secret),
            None => self.generated.clone(),
        }
    }

    /// A state for `bound`, parked as `approval`, good until `exp`.
    pub(crate) fn seal(
        &self,
        configured: Option<&[u8]>,
        bound: Bound<'_>,
        approval: &str,
        exp: Millis,
        upstream: (Option<Value>, Option<Value>),
    ) -> String {
        let mut nonce = [0u8; 16];
        let _ = rand::fill(&mut nonce);
        let claims = Claims {
            caller: bound.caller(),
            call: bound.call(),
            approval: approval.to_owned(),
            exp,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            upstream_state: upstream.0,
            upstream_responses: upstream.1,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let tag = hmac::sign(&self.key(configured), payload.as_bytes());
        format!("{PREFIX}{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks a state presented with `bound` at `now` and spends it.
    pub(crate) fn open(
        &self,
        configured: Option<&[u8]>,
        state: &str,
        bound: Bound<'_>,
        now: Millis,
    ) -> Result<Claims, Error> {
        let rest = state.strip_prefix(PREFIX).ok_or(Error::Malformed)?;
        let (payload, tag) = rest.split_once('.').ok_or(Error::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Error::Malformed)?;
        hmac::verify(&self.key(configured), payload.as_bytes(), &tag).map_err(|_| Error::Forged)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Error::Malformed)?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| Error::Malformed)?;
        if claims.exp <= now {
            return Err(Error::Expired);
        }
        if claims.caller != bound.caller() {
            return Err(Error::OtherCaller);
        }
        if claims.call != bound.call() {
            return Err(Error::OtherCall);
        }
        self.spend(&claims, now)?;
        Ok(claims)
    }

    fn spend(&self, claims: &Claims, now: Millis) -> Result<(), Error> {
        if self.spent.len() >= MAX_SPENT {
            self.spent.retain(|_, exp| *exp > now);
            if self.spent.len() >= MAX_SPENT {
                return Err(Error::Full);
            }
        }
        match self.spent.entry(claims.nonce.clone()) {
            dashmap::Entry::Occupied(_) => Err(Error::Replayed),
            dashmap::Entry::Vacant(slot) => {
                slot.insert(claims.exp);
                Ok(())
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bound<'a>(owner: &'a str, arguments: &'a Value) -> Bound<'a> {
        Bound {
            owner,
            route: "tools",
            tool: "delete",
            arguments,
        }
    }

    #[test]
    fn a_state_opens_once_for_its_caller_and_call_before_it_expires() {
        let states = ApprovalStates::default();
        let args = json!({"path": "/tmp/x"});
        let up = (
            Some(json!("upstream-state")),
            Some(json!({"k": {"action": "accept"}})),
        );
        let sealed = states.seal(None, bound("alice", &args), "appr_1", 1_000, up.clone());
        assert!(sealed.starts_with(PREFIX));

        let other_args = json!({"path": "/etc"});
        assert_eq!(
            states.open(None, &sealed, bound("bob", &args), 10),
            Err(Error::OtherCaller)
        );
        assert_eq!(
            states.open(None, &sealed, bound("alice", &other_args), 10),
            Err(Error::OtherCall)
        );
        assert_eq!(
            states.open(None, &sealed, bound("alice", &args), 1_000),
            Err(Error::Expired)
        );
        let claims = states
            .open(None, &sealed, bound("alice", &args), 10)
            .unwrap();
        assert_eq!(claims.approval, "appr_1");
        assert_eq!((claims.upstream_state, claims.upstream_responses), up);
        assert_eq!(
            states.open(None, &sealed, bound("alice", &args), 11),
            Err(Error::Replayed)
        );
    }

    #[test]
    fn forged_and_malformed_states_are_refused() {
        let states = ApprovalStates::default();
        let args = json!({});
        let sealed = states.seal(None, bound("alice", &args), "appr_1", 1_000, (None, None));
        let (payload, tag) = sealed
            .strip_prefix(PREFIX)
            .unwrap()
            .split_once('.')
            .unwrap();
        // Another expiry under the old signature.
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["exp"] = json!(u64::MAX);
        let forged = format!(
            "{PREFIX}{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert_eq!(
            states.open(None, &forged, bound("alice", &args), 10),
            Err(Error::Forged)
        );
        // Signed with another gateway's key.
        let other =
            ApprovalStates::default().seal(None, bound("alice", &args), "a", 1_000, (None, None));
        assert_eq!(
            states.open(None, &other, bound("alice", &args), 10),
            Err(Error::Forged)
        );
        // A configured key is not the generated one.
        let key = [7u8; 32];
        let with_key = states.seal(Some(&key), bound("alice", &args), "a", 1_000, (None, None));
        assert_eq!(
            states.open(None, &with_key, bound("alice", &args), 10),
            Err(Error::Forged)
        );
        assert!(
            states
                .open(Some(&key), &with_key, bound("alice", &args), 10)
                .is_ok()
        );
        for bad in [
            "",
            "tgapproval.v1.",
            "tgapproval.v1.x",
            "tgapproval.v1.x.!!",
            "other",
        ] {
            assert_eq!(
                states.open(None, bad, bound("alice", &args), 10),
                Err(Error::Malformed),
                "{bad:?}"
            );
        }
    }
}
