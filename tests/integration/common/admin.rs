//! Admin API helpers: the admin token `TestGateway` configures by default,
//! token tables for configs, a gateway whose `Gateway` the test can reach
//! (to park approvals as the call path would), and authenticated requests.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use toolgate::gateway::Gateway;
use toolgate::server::{self, Running};

use super::{Reply, send};

/// The admin-role token every `TestGateway` without its own `[admin]` accepts.
pub const ADMIN_TOKEN: &str = "tgadm_integration-test-admin-token-000000000000";
pub const OPERATOR_TOKEN: &str = "tgadm_integration-test-operator-token-0000000";
pub const VIEWER_TOKEN: &str = "tgadm_integration-test-viewer-token-000000000";

/// A config needs a route; these tests never call it.
pub const UNUSED_ROUTE: &str =
    "[[routes]]\nname = \"tools\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:9/mcp\"\n";

/// One `[[admin.tokens]]` table.
pub fn token_table(name: &str, role: &str, token: &str) -> String {
    let hash = toolgate::admin::auth::hash_token_hex(token);
    format!("[[admin.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n")
}

/// What `TestGateway` adds under the `[admin]` it writes itself.
pub fn default_tokens() -> String {
    token_table("test-admin", "admin", ADMIN_TOKEN)
}

/// The three roles' tokens, named after their roles.
pub fn role_tokens() -> String {
    [
        token_table("viewer", "viewer", VIEWER_TOKEN),
        token_table("operator", "operator", OPERATOR_TOKEN),
        token_table("admin", "admin", ADMIN_TOKEN),
    ]
    .concat()
}

/// A gateway started from exactly `config` (plus listeners on port 0 unless
/// it has its own `[server]`), with its `Gateway` in reach.
pub struct AdminGateway {
    running: Option<Running>,
    pub admin: SocketAddr,
    pub gateway: Arc<Gateway>,
}

impl AdminGateway {
    /// `admin` is the `[admin]` table's body (and its sub-tables after it);
    /// `rest` the remaining config (routes, tasks, …).
    pub async fn start(admin: &str, rest: &str) -> Self {
        let mut text =
            format!("[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n{rest}\n");
        if !rest.contains("[[routes]]") {
            text.push_str(UNUSED_ROUTE);
        }
        text.push_str(&format!("[admin]\nbind = \"127.0.0.1:0\"\n{admin}"));
        let config =
            toolgate::config::load_str(&text, "admin-test.toml", std::path::Path::new("."))
                .unwrap_or_else(|d| panic!("test config is invalid:\n{d}\n---\n{text}"));
        let running = server::start(&config).await.expect("gateway starts");
        Self {
            admin: running.admin_addr.expect("admin listener on"),
            gateway: Arc::clone(&running.gateway),
            running: Some(running),
        }
    }

    /// With the three role tokens and nothing else.
    pub async fn with_roles() -> Self {
        Self::start(&role_tokens(), "").await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// A request with `token` (if any) and a JSON body (if any).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        call(&self.url(path), method, token, body).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
}

impl Drop for AdminGateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// A request to any admin URL with `token` (if any) and a JSON body (if any).
pub async fn call(url: &str, method: Method, token: Option<&str>, body: Option<&Value>) -> Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    let body = body.map_or_else(Bytes::new, |b| {
        Bytes::from(serde_json::to_vec(b).expect("json"))
    });
    send(method, url, &headers, body).await
}

/// Asserts an admin error answer: status and `error.code`.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], code, "{}", reply.text());
}
