//! The identify stage through the whole gateway: hostile tokens, the
//! verified-token cache, scopes, protected-resource metadata (RFC 9728),
//! JWKS over HTTPS with rotation and failures, session ownership, real MCP
//! clients carrying real tokens, and delegation chains.

mod accept;
mod clients;
mod hostile;
pub(crate) mod jwks;
mod metadata;
mod sessions;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::tokens::{self, Key};
use crate::common::upstream::{self, FakeUpstream};
use crate::common::{self, Reply, TestGateway};

/// `iss` of the SPIFFE-mode issuer (`spire`, trust domain `example.org`).
pub(crate) const SPIRE: &str = "https://spire.test";
/// `iss` of the OAuth-mode issuer (`idp`).
const IDP: &str = "https://idp.test";
/// `server.public_url` of every gateway here.
pub(crate) const PUBLIC: &str = "https://gw.test";
pub(crate) const AGENT: &str = "spiffe://example.org/agent";
const USER: &str = "user:alice";

pub(crate) fn toml_path(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// The `[server]` and `[admin]` tables: port 0 and a fixed public URL, so
/// default audiences and metadata URLs are known in advance.
pub(crate) fn server() -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\npublic_url = \"{PUBLIC}\"\n\
         [admin]\nbind = \"127.0.0.1:0\"\n"
    )
}

/// One `[[routes]]` table that allows every call, with `auth` (the body of
/// its `[routes.auth]` table) when given.
pub(crate) fn route(name: &str, path: &str, upstream: &str, auth: Option<&str>) -> String {
    let mut out = format!(
        "\n[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n\
         default_decision = \"allow\"\n"
    );
    if let Some(auth) = auth {
        out.push_str("[routes.auth]\n");
        out.push_str(auth);
        out.push('\n');
    }
    out
}

/// The metadata URL a route at `path` advertises.
pub(crate) fn metadata_url(path: &str) -> String {
    format!("{PUBLIC}/.well-known/oauth-protected-resource{path}")
}

/// Two file-based issuers and their keys:
/// - `spire`: SPIFFE mode, trust domain `example.org`, keys `spire-ec`
///   (ES256) and `spire-rsa` (RS256) with `use: jwt-svid`, plus `spire-sig`
///   with `use: sig` (skipped: not a JWT-SVID key);
/// - `idp`: OAuth mode, key `idp-ec` (ES256, `use: sig`).
///
/// Both allow at most a 1 h token lifetime.
struct Issuers {
    _dir: TempDir,
    spire: Key,
    spire_rsa: Key,
    spire_sig: Key,
    idp: Key,
    toml: String,
}

impl Issuers {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let spire = Key::es256("spire-ec");
        let spire_rsa = Key::rs256("spire-rsa");
        let spire_sig = Key::es256("spire-sig");
        let idp = Key::es256("idp-ec");
        let spire_file = dir.path().join("spire.json");
        let idp_file = dir.path().join("idp.json");
        write_json(
            &spire_file,
            &tokens::jwks(&[
                (&spire, Some("jwt-svid")),
                (&spire_rsa, Some("jwt-svid")),
                (&spire_sig, Some("sig")),
            ]),
        );
        write_json(&idp_file, &tokens::jwks(&[(&idp, Some("sig"))]));
        let toml = format!(
            "\n[[issuers]]\nname = \"spire\"\nissuer = \"{SPIRE}\"\nmode = \"spiffe\"\n\
             trust_domains = [\"example.org\"]\njwks_file = {}\nmax_lifetime = \"1h\"\n\
             \n[[issuers]]\nname = \"idp\"\nissuer = \"{IDP}\"\nmode = \"oauth\"\n\
             jwks_file = {}\nmax_lifetime = \"1h\"\n",
            toml_path(&spire_file),
            toml_path(&idp_file),
        );
        Self {
            _dir: dir,
            spire,
            spire_rsa,
            spire_sig,
            idp,
            toml,
        }
    }

    /// A valid JWT-SVID for `sub` and `aud`.
    fn svid(&self, sub: &str, aud: &str) -> String {
        self.spire.sign(&tokens::claims(SPIRE, sub, aud))
    }

    /// A valid OAuth access token for `sub` and `aud`, with `extra` claims.
    fn access_token(&self, sub: &str, aud: &str, extra: Value) -> String {
        self.idp
            .sign(&tokens::with(tokens::claims(IDP, sub, aud), extra))
    }
}

fn write_json(path: &PathBuf, value: &Value) {
    std::fs::write(path, serde_json::to_vec(value).expect("json")).expect("write JSON file");
}

/// An upstream answering every JSON-RPC request with an empty tools list.
pub(crate) async fn echo_upstream() -> FakeUpstream {
    FakeUpstream::start(|seen| async move {
        let req: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": req["id"], "result": {"tools": []}}),
        )
    })
    .await
}

fn tools_list(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// POSTs `tools/list` to `url` with `Authorization: Bearer <token>`.
pub(crate) async fn call(url: &str, token: &str) -> Reply {
    let auth = bearer(token);
    common::post_mcp(url, &[("authorization", auth.as_str())], &tools_list(1)).await
}

/// What a refusal by the identify stage must look like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused<'a> {
    status: StatusCode,
    /// The challenge's `error`; `None` for a request without credentials.
    error: Option<&'a str>,
    /// `error.reason` in the body and the metric label.
    reason: &'a str,
    /// The exact `error_description` (and body `error.message`).
    description: &'a str,
    /// For `insufficient_scope`: the challenge's `scope`.
    scope: Option<&'a str>,
}

impl<'a> Refused<'a> {
    /// A 401 `invalid_token`.
    pub(crate) fn token(reason: &'a str, description: &'a str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: Some("invalid_token"),
            reason,
            description,
            scope: None,
        }
    }

    /// A 401 `invalid_request`.
    fn request(reason: &'a str, description: &'a str) -> Self {
        Self {
            error: Some("invalid_request"),
            ..Self::token(reason, description)
        }
    }
}

/// Checks the status, the exact `WWW-Authenticate` challenge (pointing at
/// `metadata`) and the JSON body of a refusal, and that none of `secrets`
/// (the token, its signature, ...) appears anywhere in the answer.
#[track_caller]
pub(crate) fn assert_refused(r: &Reply, metadata: &str, want: Refused<'_>, secrets: &[&str]) {
    let context = format!("want {want:?}, got {} {}", r.status, r.text());
    assert_eq!(r.status, want.status, "{context}");
    let challenge = r
        .headers
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate: {context}"))
        .to_str()
        .expect("ASCII challenge");
    assert_eq!(
        r.headers.get_all("www-authenticate").iter().count(),
        1,
        "one challenge"
    );
    let mut expected = format!("Bearer resource_metadata=\"{metadata}\"");
    match (want.error, want.scope) {
        (None, _) => {}
        (Some(error), None) => expected.push_str(&format!(
            ", error=\"{error}\", error_description=\"{}\"",
            want.description
        )),
        (Some(error), Some(scope)) => expected.push_str(&format!(
            ", error=\"{error}\", scope=\"{scope}\", error_description=\"{}\"",
            want.description
        )),
    }
    assert_eq!(challenge, expected, "{context}");
    let body = r.json();
    let code = if want.status == StatusCode::FORBIDDEN {
        "insufficient_scope"
    } else {
        "unauthenticated"
    };
    assert_eq!(
        body,
        json!({"error": {"code": code, "message": want.description, "reason": want.reason}}),
        "{context}"
    );
    let everything = format!("{challenge}\n{}", r.text());
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(
            !everything.contains(secret),
            "the answer echoes {secret:?}: {everything}"
        );
    }
}

/// The admin listener's `/metrics` text.
async fn metrics(gw: &TestGateway) -> String {
    common::send(Method::GET, &gw.admin_url("/metrics"), &[], Bytes::new())
        .await
        .text()
}

fn auth_failures(reason: &str, route: &str) -> String {
    format!("toolgate_auth_failures_total{{reason=\"{reason}\",route=\"{route}\"}}")
}
