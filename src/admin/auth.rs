//! Admin API, who is calling: a bearer token (compared by its SHA-256, in
//! constant time, against `admin.tokens`) or a client certificate the
//! admin listener verified, whose URI or DNS SAN is in `admin.clients`.
//! The caller's name and role go into every audit record. Tokens are never
//! logged, echoed or kept: only their hashes are.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::error::Error;
use crate::config::{self, Role};
use crate::listener::ClientCert;

/// Prefix of the tokens `toolgate admin-token` generates (easy to spot in a
/// secret scanner).
pub const TOKEN_PREFIX: &str = "tgadm_";
/// Longer bearer values are refused before hashing.
const MAX_TOKEN_LEN: usize = 1024;

/// An authenticated admin caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `cert:<san>` for a client certificate.
    pub actor: String,
    pub role: Role,
}

impl Caller {
    /// Refuses a caller whose role is below `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Error> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden {
                needed,
                actor: self.actor.clone(),
                has: self.role,
            })
        }
    }
}

/// The configured admin credentials, decoded once at start-up.
#[derive(Debug, Default)]
pub struct Credentials {
    tokens: Vec<TokenEntry>,
    clients: Vec<config::AdminClient>,
}

#[derive(Debug)]
struct TokenEntry {
    name: String,
    role: Role,
    sha256: [u8; 32],
}

impl Credentials {
    pub fn new(admin: &config::Admin) -> Self {
        let tokens = admin
            .tokens
            .iter()
            .filter_map(|t| match decode_hex32(&t.sha256) {
                Some(sha256) => Some(TokenEntry {
                    name: t.name.clone(),
                    role: t.role,
                    sha256,
                }),
                None => {
                    // `toolgate check` refuses this; never accept anything for it.
                    tracing::error!(token = %t.name, "admin token hash is not 64 hex digits; the token is ignored");
                    None
                }
            })
            .collect();
        Self {
            tokens,
            clients: admin.clients.clone(),
        }
    }

    /// True when nothing can authenticate: every API call is refused.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.clients.is_empty()
    }

    /// Who is calling. An `Authorization` header, when sent, decides alone;
    /// otherwise the connection's client certificate does.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        client: Option<&ClientCert>,
    ) -> Result<Caller, Error> {
        if self.is_empty() {
            return Err(Error::NoCredentials);
        }
        let mut values = headers.get_all(AUTHORIZATION).iter();
        if let Some(value) = values.next() {
            if values.next().is_some() {
                return Err(Error::InvalidToken("send one Authorization header"));
            }
            let token = value
                .to_str()
                .ok()
                .and_then(bearer)
                .ok_or(Error::Unauthenticated(
                    "the admin API takes `Authorization: Bearer <token>`",
                ))?;
            if token.len() > MAX_TOKEN_LEN {
                return Err(Error::InvalidToken("the token is too long"));
            }
            return self
                .by_token(token)
                .ok_or(Error::InvalidToken("the token matches no admin token"));
        }
        match client {
            Some(cert) => self
                .by_cert(&cert.sans)
                .ok_or_else(|| Error::UnknownClient(cert.sans.join(", "))),
            None => Err(Error::Unauthenticated(
                "send `Authorization: Bearer <admin token>` or a client certificate listed in admin.clients",
            )),
        }
    }

    fn by_token(&self, token: &str) -> Option<Caller> {
        let hash = hash_token(token);
        // Every entry is compared, each in constant time: how long this
        // takes says nothing about which entry (if any) matched.
        let mut found = None;
        for entry in &self.tokens {
            if verify_slices_are_equal(&entry.sha256, &hash).is_ok() && found.is_none() {
                found = Some(Caller {
                    actor: entry.name.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }

    /// The highest role any of the certificate's SANs is mapped to (the
    /// first entry listed among equals).
    fn by_cert(&self, sans: &[String]) -> Option<Caller> {
        let mut best: Option<&config::AdminClient> = None;
        for client in &self.clients {
            let matched = sans.iter().any(|san| san_matches(&client.san, san));
            if matched && best.is_none_or(|b| client.role > b.role) {
                best = Some(client);
            }
        }
        best.map(|c| Caller {
            actor: format!("cert:{}", c.san),
            role: c.role,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    let visible = token.bytes().all(|b| b.is_ascii_graphic());
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && visible).then_some(token)
}

/// A configured SAN against one the certificate carries: URIs (SPIFFE IDs)
/// exactly, DNS names without regard to ASCII case.
pub fn san_matches(configured: &str, presented: &str) -> bool {
    if configured.contains(':') {
        configured == presented
    } else {
        configured.eq_ignore_ascii_case(presented)
    }
}

/// SHA-256 of a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// SHA-256 of a token as the lowercase hex `admin.tokens[].sha256` holds.
pub fn hash_token_hex(token: &str) -> String {
    crate::store::model::hex(&hash_token(token))
}

/// A fresh admin token: 256 random bits, base64url, `tgadm_` first.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(format!("{TOKEN_PREFIX}{body}"))
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
