//! Identify stage: OAuth 2.0 Protected Resource Metadata (RFC 9728). Each
//! route with `auth` is a protected resource; its metadata lives at
//! `/.well-known/oauth-protected-resource` + the route's path, and every 401
//! points there through `WWW-Authenticate: Bearer resource_metadata="…"`.

use serde_json::{Value, json};

use crate::snapshot::Snapshot;

pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata document for the route whose path follows the well-known prefix.
pub fn document(snapshot: &Snapshot, path: &str) -> Option<Value> {
    let route_path = path.strip_prefix(WELL_KNOWN)?;
    let route_path = if route_path.is_empty() {
        "/"
    } else {
        route_path
    };
    let route = snapshot.routes().iter().find(|r| {
        r.prefix == route_path.trim_end_matches('/') || (r.prefix.is_empty() && route_path == "/")
    })?;
    let auth = route.auth.as_ref()?;
    let mut doc = json!({
        "resource": auth.audience,
        "authorization_servers": auth.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": route.name,
    });
    if !auth.scopes.is_empty() {
        doc["scopes_supported"] = json!(auth.scopes);
    }
    Some(doc)
}
