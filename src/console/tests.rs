//! Operator console: socket-free tests. The console runs in front of the
//! real admin API (`admin::Admin`: its credentials, role table, handlers)
//! over a real gateway and in-memory store; requests are built by hand.

mod flows;
mod units;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::json;

use super::{Api, Console};
use crate::gateway::Gateway;
use crate::listener::{ClientCert, ConnInfo};
use crate::store::{Approval, Task};

pub(super) const ADMIN: &str = "tgadm_unit-admin";
pub(super) const OPERATOR: &str = "tgadm_unit-operator";
pub(super) const VIEWER: &str = "tgadm_unit-viewer";
pub(super) const ORIGIN: &str = "http://console.test";
pub(super) const CERT_SAN: &str = "spiffe://example.org/oncall";

/// A console over a real admin API and gateway.
pub(super) struct Fixture {
    pub(super) console: Arc<Console>,
    pub(super) api: Arc<crate::admin::Admin>,
    pub(super) gateway: Arc<Gateway>,
    pub(super) tls: bool,
}

/// One answer, read whole.
pub(super) struct Page {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) text: String,
}

impl Page {
    pub(super) fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `name=value` of the `Set-Cookie` for `name`.
    pub(super) fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of the first hidden `csrf` input.
    pub(super) fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.text[at..].split('"').next().unwrap().to_owned()
    }
}

/// A signed-in browser: its cookie and its session's CSRF token.
pub(super) struct Signed {
    pub(super) cookie: String,
    pub(super) csrf: String,
}

impl Fixture {
    pub(super) fn new() -> Self {
        crate::install_crypto_provider();
        let hash = crate::admin::auth::hash_token_hex;
        let text = format!(
            "[admin]\nbind = \"127.0.0.1:0\"\n\
             [[admin.tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
             [[admin.tokens]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\n\
             [[admin.tokens]]\nname = \"watcher\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [[routes]]\nname = \"tools\"\npath = \"/tools\"\nupstream = \"http://127.0.0.1:9\"\n",
            hash(ADMIN),
            hash(OPERATOR),
            hash(VIEWER),
        );
        let mut config = crate::config::load_str(&text, "console-test", Path::new("."))
            .unwrap_or_else(|d| panic!("{d}"));
        // As if the listener had mTLS (`check` wants its CA file for this):
        // the listener's verifier is not under test here.
        config.admin.clients.push(crate::config::AdminClient {
            san: CERT_SAN.into(),
            role: crate::config::Role::Operator,
        });
        let snapshot = crate::snapshot::Snapshot::build(&config, None).expect("snapshot");
        let recorder = crate::record::Recorder::new();
        let tasks =
            crate::tasks::Tasks::open(&config.tasks, &config.approvals, recorder.registry())
                .expect("store");
        let gateway = Gateway::new(snapshot, recorder, tasks);
        let api = crate::admin::Admin::new(Arc::clone(&gateway), &config.admin);
        Self {
            console: Console::new(),
            api,
            gateway,
            tls: false,
        }
    }

    /// Sends a request; `cert` is the connection's client certificate.
    pub(super) async fn send(&self, req: Request<Full<Bytes>>, cert: Option<&str>) -> Page {
        let mut req = req;
        if let Some(san) = cert {
            req.extensions_mut().insert(ClientCert {
                sans: vec![san.to_owned()].into(),
            });
        }
        let conn = ConnInfo {
            remote: SocketAddr::from(([127, 0, 0, 1], 40000)),
            tls: self.tls,
        };
        let api: Arc<dyn Api> = Arc::clone(&self.api) as Arc<dyn Api>;
        let resp: Response<crate::Body> =
            super::handle(Arc::clone(&self.console), api, req, conn).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        Page {
            status: parts.status,
            headers: parts.headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(super) async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut req = Request::get(format!("{ORIGIN}{path}")).header(header::HOST, "console.test");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Full::new(Bytes::new())).unwrap(), None)
            .await
    }

    /// A form POST as a browser on the console's own page sends it.
    pub(super) async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> Page {
        self.post_with(
            path,
            cookie,
            form,
            &[("origin", ORIGIN), ("sec-fetch-site", "same-origin")],
            None,
        )
        .await
    }

    pub(super) async fn post_with(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
        cert: Option<&str>,
    ) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = Request::post(format!("{ORIGIN}{path}"))
            .header(header::HOST, "console.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Full::new(Bytes::from(body))).unwrap(), cert)
            .await
    }

    /// Signs in with `token` the way the browser does.
    pub(super) async fn sign_in(&self, token: &str) -> Signed {
        let form = self.get("/console/signin", None).await;
        let pre = form
            .set_cookie("toolgate_console_signin")
            .expect("form cookie");
        let pre = pre.split(';').next().unwrap().to_owned();
        let done = self
            .post(
                "/console/signin",
                Some(&pre),
                &[
                    ("csrf", &form.csrf()),
                    ("method", "token"),
                    ("token", token),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
        let cookie = done.set_cookie("toolgate_console").expect("session cookie");
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let inbox = self.get("/console/inbox", Some(&cookie)).await;
        assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text);
        Signed {
            csrf: inbox.csrf(),
            cookie,
        }
    }

    /// A task and a call parked in it for approval, as the call path parks.
    pub(super) fn parked(&self, tool: &str) -> (Task, Approval) {
        let snapshot = self.gateway.snapshot();
        let caps = crate::tasks::Caps {
            tasks: &snapshot.tasks,
            approvals: &snapshot.approvals,
        };
        let tasks = self.gateway.tasks();
        let task = tasks
            .create_task(
                caps,
                serde_json::from_value(json!({
                    "agent": "spiffe://example.org/agent/triage",
                    "purpose": "triage the inbox",
                    "on_behalf_of": "alice@example.org",
                }))
                .unwrap(),
                "root",
            )
            .unwrap();
        let (approval, _) = tasks
            .park_call(
                caps,
                &task,
                "tools",
                tool,
                &json!({"repo": "acme/app"}),
                "deleting needs a human",
            )
            .unwrap();
        (task, approval)
    }
}
