//! The caller as the decide stage sees it (`input.identity`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::nullable;

/// Who is calling, tagged by `kind`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    /// No credential was verified (routes without `auth`).
    #[default]
    Anonymous,
    /// A verified workload token (JWT-SVID or OAuth access token). Boxed:
    /// it is large, and anonymous callers should not pay for it.
    Workload(Box<Workload>),
}

impl Identity {
    /// The subject as decision logs show it: `"anonymous"` for anonymous callers.
    pub fn subject(&self) -> &str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Workload(workload) => &workload.subject,
        }
    }

    /// The workload, unless the caller is anonymous.
    pub fn workload(&self) -> Option<&Workload> {
        match self {
            Self::Anonymous => None,
            Self::Workload(workload) => Some(workload),
        }
    }

    /// The SPIFFE trust domain, for workloads of SPIFFE-mode issuers.
    pub fn trust_domain(&self) -> Option<&str> {
        let spiffe = self.workload()?.spiffe.as_ref()?;
        Some(&spiffe.trust_domain)
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Workload {
    /// `sub`.
    #[serde(deserialize_with = "nullable")]
    pub subject: String,
    /// `iss`.
    #[serde(deserialize_with = "nullable")]
    pub issuer: String,
    /// `sub` as a SPIFFE ID (SPIFFE-mode issuers only).
    pub spiffe: Option<Spiffe>,
    /// `aud`.
    #[serde(deserialize_with = "nullable")]
    pub audience: Vec<String>,
    /// The token's scopes.
    #[serde(deserialize_with = "nullable")]
    pub scopes: Vec<String>,
    /// `exp`, unix seconds.
    #[serde(deserialize_with = "nullable")]
    pub expires_at: u64,
    /// The claims the issuer's rules select (never the whole set).
    #[serde(deserialize_with = "nullable")]
    pub claims: Map<String, Value>,
    /// Who acts for whom (RFC 8693 `act`).
    #[serde(deserialize_with = "nullable")]
    pub delegation: Delegation,
    /// The task named by the token, if the issuer has a task claim.
    pub task_id: Option<String>,
}

/// A SPIFFE ID split into its parts.
///
/// Reads both `{"trust_domain": …, "path": …}` (ABI.md) and the URI string
/// `"spiffe://td/path"`, so a host that sends either works.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SpiffeRepr")]
pub struct Spiffe {
    /// E.g. `example.org`.
    pub trust_domain: String,
    /// Empty, or `/seg/seg…`.
    pub path: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SpiffeRepr {
    Uri(String),
    Parts {
        trust_domain: String,
        #[serde(default, deserialize_with = "nullable")]
        path: String,
    },
}

impl TryFrom<SpiffeRepr> for Spiffe {
    type Error = String;

    fn try_from(repr: SpiffeRepr) -> Result<Self, String> {
        match repr {
            SpiffeRepr::Parts { trust_domain, path } => Ok(Self { trust_domain, path }),
            SpiffeRepr::Uri(uri) => {
                let rest = uri
                    .strip_prefix("spiffe://")
                    .ok_or_else(|| "identity.spiffe is not a spiffe:// URI".to_owned())?;
                let (trust_domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                Ok(Self {
                    trust_domain: trust_domain.to_owned(),
                    path: path.to_owned(),
                })
            }
        }
    }
}

/// The RFC 8693 `act` chain of a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Delegation {
    /// The party acted for (the token's `sub` when `act` is present).
    pub user: Option<String>,
    /// The current actor (`act.sub`).
    pub agent: Option<String>,
    /// Earlier actors, most recent first.
    #[serde(deserialize_with = "nullable")]
    pub intermediaries: Vec<String>,
}
