//! Operator console, who is signed in: sessions held server-side under
//! random 256-bit ids, named by an HttpOnly, SameSite=Strict cookie (Secure
//! on a TLS listener) that expires with the session. A session signed in by
//! client certificate is good only on connections presenting that
//! certificate's SANs again. The id is the only thing the browser holds.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use cookie::{Cookie, SameSite};
use dashmap::DashMap;
use http::HeaderMap;
use http::header::COOKIE;

use super::api::Operator;
use super::{Ctx, Error};
use crate::store::Millis;
use crate::store::model::now_ms;
use crate::tasks::millis;

/// The session cookie.
pub(crate) const COOKIE_NAME: &str = "toolgate_console";
/// The sign-in form's own token cookie (against login CSRF).
pub(crate) const SIGNIN_COOKIE: &str = "toolgate_console_signin";
/// How long a session lasts from sign-in. A constant for now; a config
/// field (e.g. `admin.console_session_ttl`) is the lead's call.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a sign-in form stays usable.
pub(crate) const SIGNIN_TTL: Duration = Duration::from_secs(600);
/// At most this many live sessions; the oldest goes first.
const MAX_SESSIONS: usize = 1024;

/// One signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) operator: Operator,
    /// The synchronizer token every change must carry.
    pub(crate) csrf: String,
    pub(crate) expires_at_ms: Millis,
    /// Signed in by client certificate: its SANs, needed on every request.
    pub(crate) cert: Option<Arc<[String]>>,
}

/// A one-shot message for the next page (what the last change did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

#[derive(Debug)]
struct Entry {
    session: Session,
    flash: Option<Flash>,
}

/// The live sessions. Lookups hand out copies; no guard outlives a call.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: DashMap<String, Entry>,
}

impl Sessions {
    /// Opens a session for `operator` at `now`.
    pub(crate) fn open(
        &self,
        operator: Operator,
        cert: Option<Arc<[String]>>,
        now: Millis,
    ) -> Result<Session, Error> {
        self.map.retain(|_, e| e.session.expires_at_ms > now);
        if self.map.len() >= MAX_SESSIONS {
            let oldest = self
                .map
                .iter()
                .min_by_key(|e| e.session.expires_at_ms)
                .map(|e| e.key().clone());
            if let Some(id) = oldest {
                self.map.remove(&id);
            }
        }
        let session = Session {
            id: random_token()?,
            operator,
            csrf: random_token()?,
            expires_at_ms: now.saturating_add(millis(SESSION_TTL)),
            cert,
        };
        self.map.insert(
            session.id.clone(),
            Entry {
                session: session.clone(),
                flash: None,
            },
        );
        Ok(session)
    }

    /// The session named `id`, if it is live at `now` (an expired one is
    /// dropped).
    pub(crate) fn get(&self, id: &str, now: Millis) -> Option<Session> {
        let session = self.map.get(id).map(|e| e.session.clone())?;
        if session.expires_at_ms <= now {
            self.map.remove(id);
            return None;
        }
        Some(session)
    }

    pub(crate) fn close(&self, id: &str) {
        self.map.remove(id);
    }

    pub(crate) fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(mut entry) = self.map.get_mut(id) {
            entry.flash = Some(flash);
        }
    }

    pub(crate) fn take_flash(&self, id: &str) -> Option<Flash> {
        self.map.get_mut(id).and_then(|mut e| e.flash.take())
    }
}

/// The request's live session, checked against its connection.
pub(crate) fn current(ctx: &Ctx) -> Option<Session> {
    let id = cookie_value(&ctx.head.headers, COOKIE_NAME)?;
    let session = ctx.console.sessions.get(&id, now_ms())?;
    match &session.cert {
        None => Some(session),
        Some(sans) => {
            let same = ctx.client().is_some_and(|c| c.sans == *sans);
            same.then_some(session)
        }
    }
}

/// A cookie's value from the request's `Cookie` headers (the first one of
/// that name).
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/console`,
/// Secure on TLS; `ttl` zero removes the cookie.
pub(crate) fn set_cookie(name: &str, value: &str, ttl: Duration, tls: bool) -> String {
    let max_age = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    Cookie::build((name, value))
        .path(super::PREFIX)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(tls)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
        .to_string()
}

/// 256 random bits, base64url: session ids and CSRF tokens.
pub(crate) fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| Error::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
