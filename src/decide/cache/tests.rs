use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::decide::engine::PolicyEngine;

const REAL: &str = r#"(module (func (export "real")))"#;
const PLANTED: &str = r#"(module (func (export "planted")))"#;
const NAME: &str = "0123abcd-engine.cwasm";

fn exports(module: &Module) -> Vec<String> {
    module.exports().map(|e| e.name().to_owned()).collect()
}

fn cache(dir: &Path, key: &str) -> ModuleCache {
    ModuleCache::at(&dir.join("cache"), &dir.join(key))
        .expect("usable folder")
        .expect("a key")
}

#[test]
fn a_signed_entry_loads_back() {
    let engine = PolicyEngine::global().expect("engine");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), "k");
    let compiled = Module::new(&engine.engine, REAL).unwrap();
    cache.store(&compiled, NAME).unwrap();
    let loaded = cache.load(&engine.engine, NAME).unwrap().expect("present");
    assert_eq!(exports(&loaded), ["real"]);
    assert!(
        cache
            .load(&engine.engine, "absent.cwasm")
            .unwrap()
            .is_none()
    );
    let mode = fs::metadata(cache.entry(NAME))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_planted_entry_is_refused_and_the_real_module_compiled() {
    let engine = PolicyEngine::global().expect("engine");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), "k");
    let planted = Module::new(&engine.engine, PLANTED).unwrap();
    // As wasmtime wrote it (no signature), and signed with another key.
    fs::write(cache.entry(NAME), planted.serialize().unwrap()).unwrap();
    assert!(matches!(
        cache.load(&engine.engine, NAME),
        Err(Refused::Unsigned)
    ));
    super::ModuleCache::at(&dir.path().join("cache"), &dir.path().join("other-key"))
        .unwrap()
        .unwrap()
        .store(&planted, NAME)
        .unwrap();
    assert!(matches!(
        cache.load(&engine.engine, NAME),
        Err(Refused::Unsigned)
    ));
    // Compiling through the cache runs the real module and heals the entry.
    let module = engine
        .compile(REAL.as_bytes(), "0123abcd", Some(&cache))
        .unwrap();
    assert_eq!(exports(&module), ["real"]);
}

#[test]
fn a_changed_byte_or_a_copy_under_another_name_is_refused() {
    let engine = PolicyEngine::global().expect("engine");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), "k");
    let compiled = Module::new(&engine.engine, PLANTED).unwrap();
    cache.store(&compiled, "other-engine.cwasm").unwrap();
    // A genuine entry of another module, copied under this module's name.
    fs::copy(cache.entry("other-engine.cwasm"), cache.entry(NAME)).unwrap();
    assert!(matches!(
        cache.load(&engine.engine, NAME),
        Err(Refused::Unsigned)
    ));
    // One flipped byte in the code.
    let mut bytes = fs::read(cache.entry("other-engine.cwasm")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(cache.entry("other-engine.cwasm"), bytes).unwrap();
    assert!(matches!(
        cache.load(&engine.engine, "other-engine.cwasm"),
        Err(Refused::Unsigned)
    ));
}

#[test]
fn folders_are_created_private_and_refused_when_shared() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("a/b");
    prepare_folder(&fresh).unwrap();
    let mode = fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let refused = ModuleCache::open(Some(&shared)).expect_err("refused");
    assert!(
        refused.to_string().contains("writable by others"),
        "{refused}"
    );
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o775)).unwrap();
    assert!(ModuleCache::open(Some(&shared)).is_err(), "group-writable");

    // Owned by someone else (only root can hand a folder to another user).
    if rustix::process::geteuid().is_root() {
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let refused = ModuleCache::open(Some(&theirs)).expect_err("refused");
        assert!(
            refused.to_string().contains("owned by uid 65534"),
            "{refused}"
        );
    }
}

#[test]
fn a_key_others_can_read_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let first = read_or_create_key(&key).unwrap();
    assert_eq!(read_or_create_key(&key).unwrap(), first, "kept");
    let mode = fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(read_key(&key).is_err());
}

#[test]
fn the_default_folder_is_per_user_not_the_temp_dir() {
    if let Some(dir) = default_dir() {
        assert!(!dir.starts_with(std::env::temp_dir()), "{}", dir.display());
        assert!(dir.ends_with("toolgate/modules"));
    }
    if let Some(key) = default_key_path() {
        let cache = default_dir().unwrap_or_default();
        assert!(!key.starts_with(&cache), "the key lives outside the cache");
    }
}
