//! Start-up stage unit tests: every path field of the config resolves
//! against the config file's folder.

use std::path::Path;

use super::resolve;
use crate::config::Config;

/// Every path field, as `(key, TOML that sets it to rel/<key>)`.
const FIELDS: &[(&str, &str)] = &[
    (
        "server.tls.cert_file",
        "[server.tls]\ncert_file = \"rel/server.tls.cert_file\"\nkey_file = \"rel/server.tls.key_file\"\n",
    ),
    ("server.tls.key_file", ""),
    (
        "admin.tls.cert_file",
        "[admin.tls]\ncert_file = \"rel/admin.tls.cert_file\"\nkey_file = \"rel/admin.tls.key_file\"\nclient_ca_file = \"rel/admin.tls.client_ca_file\"\n",
    ),
    ("admin.tls.key_file", ""),
    ("admin.tls.client_ca_file", ""),
    (
        "issuers[].jwks_file",
        "[[issuers]]\nname = \"i\"\nissuer = \"i\"\njwks_file = \"rel/issuers[].jwks_file\"\njwks_ca_file = \"rel/issuers[].jwks_ca_file\"\nhs_secret = { file = \"rel/issuers[].hs_secret\" }\n",
    ),
    ("issuers[].jwks_ca_file", ""),
    ("issuers[].hs_secret", ""),
    (
        "policy_limits.cache_dir",
        "[policy_limits]\ncache_dir = \"rel/policy_limits.cache_dir\"\n",
    ),
    (
        "policies[].module",
        "[[policies]]\nname = \"p\"\nmodule = \"rel/policies[].module\"\nvectors = \"rel/policies[].vectors\"\n",
    ),
    ("policies[].vectors", ""),
    (
        "routes[].upstream_ca_file",
        "[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"https://x\"\nupstream_ca_file = \"rel/routes[].upstream_ca_file\"\n[routes.upstream_auth]\nvalue = { file = \"rel/routes[].upstream_auth.value\" }\n",
    ),
    ("routes[].upstream_auth.value", ""),
    ("tasks.store", "[tasks]\nstore = \"rel/tasks.store\"\n"),
    (
        "approvals.state_key",
        "[approvals]\nstate_key = { file = \"rel/approvals.state_key\" }\n",
    ),
    (
        "approvals.webhook.ca_file",
        "[approvals.webhook]\nurl = \"https://h\"\nca_file = \"rel/approvals.webhook.ca_file\"\nsecret = { file = \"rel/approvals.webhook.secret\" }\n",
    ),
    ("approvals.webhook.secret", ""),
    (
        "audit.dir",
        "[audit]\ndir = \"rel/audit.dir\"\nhash_key = { file = \"rel/audit.hash_key\" }\n",
    ),
    ("audit.hash_key", ""),
];

#[test]
fn every_path_field_resolves_against_the_config_folder() {
    let text: String = FIELDS.iter().map(|(_, toml)| *toml).collect();
    let config: Config = toml::from_str(&text).unwrap();
    let resolved = format!("{:?}", resolve(config, Path::new("/etc/toolgate")));
    for (key, _) in FIELDS {
        assert!(
            resolved.contains(&format!("/etc/toolgate/rel/{key}")),
            "{key} is not resolved against the config folder: {resolved}"
        );
    }
    // Nothing is left relative to the working directory.
    assert!(!resolved.contains("\"rel/"), "{resolved}");
    assert!(!resolved.contains(":rel/"), "{resolved}");
    // Absolute paths stay as they are.
    let config: Config = toml::from_str("[tasks]\nstore = \"/var/lib/t.redb\"\n").unwrap();
    let resolved = resolve(config, Path::new("/etc/toolgate"));
    assert_eq!(
        resolved.tasks.store.as_deref(),
        Some(Path::new("/var/lib/t.redb"))
    );
}

/// A path field added to the config model must be added to [`resolve`]
/// and to [`FIELDS`]: the declarations are counted here.
#[test]
fn the_list_of_path_fields_is_complete() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = vec![std::fs::read_to_string(dir.join("config.rs")).unwrap()];
    for entry in std::fs::read_dir(dir.join("config")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with("_tests.rs") {
            sources.push(std::fs::read_to_string(path).unwrap());
        }
    }
    let declared = sources
        .iter()
        .flat_map(|s| s.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("pub ") && !l.starts_with("pub fn"))
        .filter(|l| {
            ["PathBuf,", "PathBuf>,", "SecretRef,", "SecretRef>,"]
                .iter()
                .any(|t| l.ends_with(t))
        })
        .count();
    assert_eq!(declared, FIELDS.len(), "path fields declared vs tested");
}
