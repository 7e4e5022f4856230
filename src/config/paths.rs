//! Start-up stage: every file path in a config is relative to the config
//! file's folder, never to the working directory. [`resolve`] is the one
//! place that knows every path field; the test next to it names each one.

use std::path::{Path, PathBuf};

use super::Config;

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;

/// `path` as the config means it: absolute paths stay, relative ones are
/// joined to `base` (the config file's folder).
pub(crate) fn anchored(base: &Path, path: &Path) -> PathBuf {
    if path.is_relative() {
        base.join(path)
    } else {
        path.to_path_buf()
    }
}

/// Every path in `config` (files, the store, the module cache, secrets read
/// from files) resolved against `base`.
pub(super) fn resolve(mut config: Config, base: &Path) -> Config {
    let fix = |p: &mut PathBuf| *p = anchored(base, p);
    let fix_opt = |p: Option<&mut PathBuf>| {
        if let Some(p) = p {
            fix(p);
        }
    };
    if let Some(tls) = config.server.tls.as_mut() {
        fix(&mut tls.cert_file);
        fix(&mut tls.key_file);
    }
    if let Some(tls) = config.admin.tls.as_mut() {
        fix(&mut tls.cert_file);
        fix(&mut tls.key_file);
        fix_opt(tls.client_ca_file.as_mut());
    }
    for issuer in &mut config.issuers {
        fix_opt(issuer.jwks_file.as_mut());
        fix_opt(issuer.jwks_ca_file.as_mut());
        if let Some(secret) = issuer.hs_secret.as_mut() {
            secret.anchor(base);
        }
    }
    fix_opt(config.policy_limits.cache_dir.as_mut());
    for policy in &mut config.policies {
        fix(&mut policy.module);
        fix_opt(policy.vectors.as_mut());
    }
    for route in &mut config.routes {
        fix_opt(route.upstream_ca_file.as_mut());
        if let Some(auth) = route.upstream_auth.as_mut() {
            auth.value.anchor(base);
        }
    }
    fix_opt(config.tasks.store.as_mut());
    if let Some(audit) = config.audit.as_mut() {
        fix(&mut audit.dir);
        if let Some(key) = audit.hash_key.as_mut() {
            key.anchor(base);
        }
    }
    if let Some(key) = config.approvals.state_key.as_mut() {
        key.anchor(base);
    }
    if let Some(hook) = config.approvals.webhook.as_mut() {
        fix_opt(hook.ca_file.as_mut());
        if let Some(secret) = hook.secret.as_mut() {
            secret.anchor(base);
        }
    }
    config
}
