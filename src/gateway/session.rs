//! Identify stage, per request: an authenticated MCP session belongs to the
//! principal that opened it on this route.

use super::*;

impl Gateway {
    /// On an authenticated MCP route, a request naming a session must come
    /// from the principal that opened it. Returns the principal to track.
    /// A refusal answers the id of the request the body holds, if one.
    pub(super) fn check_session(
        &self,
        route: &Route,
        parts: &Parts,
        identity: &Identity,
        understood: &Understood,
    ) -> Result<Option<(String, Option<String>)>, Problem> {
        if route.kind != crate::config::RouteKind::Mcp {
            return Ok(None);
        }
        let Some(principal) = identity.principal() else {
            return Ok(None);
        };
        let session = parts
            .headers
            .get(era::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(id) = &session
            && !self
                .identifier
                .sessions
                .owned_by(&route.name, id, principal)
        {
            let id = match understood {
                Understood::Mcp { envelope, .. } if !envelope.batch => {
                    envelope.messages.first().and_then(|m| m.id.clone())
                }
                Understood::Mcp { .. } | Understood::McpStream | Understood::Http { .. } => None,
            };
            return Err(Problem::SessionNotFound { id });
        }
        Ok(Some((principal.to_owned(), session)))
    }

    /// Binds a session the upstream just opened; forgets one it just ended.
    pub(super) fn track_session(
        &self,
        route: &str,
        method: &http::Method,
        resp: &Response<Body>,
        (principal, asked): (String, Option<String>),
    ) {
        let sessions = &self.identifier.sessions;
        match asked {
            Some(id) if method == http::Method::DELETE && resp.status().is_success() => {
                sessions.unbind(route, &id)
            }
            Some(_) => {}
            None => {
                if let Some(id) = resp
                    .headers()
                    .get(era::SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    sessions.bind(route, id, &principal);
                }
            }
        }
    }
}
