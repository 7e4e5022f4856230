//! Admin API, what is loaded: the active policy modules, and the reload
//! triggers — the policy set alone, or the whole config file (which the
//! `serve` loop re-reads as it does on SIGHUP).

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;

use super::error::Error;
use super::routes::Reply;
use crate::gateway::Gateway;

pub(super) fn list(gw: &Arc<Gateway>) -> Reply {
    let modules: Vec<_> = gw
        .snapshot()
        .policy
        .modules()
        .iter()
        .map(|m| json!({"name": &*m.name, "version": &*m.version, "sha256": m.hash}))
        .collect();
    Reply::ok(json!({ "policies": modules, "last_reload": gw.last_policy_reload() }))
}

pub(super) async fn reload(gw: &Arc<Gateway>, actor: String) -> Result<Reply, Error> {
    let modules = crate::decide::reload::reload(gw, crate::decide::reload::Trigger::Api(actor))
        .await
        .map_err(Error::PolicyReload)?;
    Ok(Reply::ok(json!({"reloaded": true, "modules": modules})))
}

/// Accepted, not done: the `serve` loop reloads (and logs the outcome).
pub(super) fn reload_config(gw: &Arc<Gateway>) -> Result<Reply, Error> {
    if !gw.request_config_reload() {
        return Err(Error::ReloadUnavailable);
    }
    Ok(Reply {
        status: StatusCode::ACCEPTED,
        ..Reply::ok(json!({"reload": "requested"}))
    })
}
