//! Policy modules built from `policy-modules/` for wasm32, once per test
//! run. Cargo caches the build, so only a change to a module rebuilds it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policy-modules")
}

/// Builds the named module crates (release, wasm32) and returns the path
/// of each `.wasm`, in order. Concurrent callers share one build at a time.
pub fn build(crates: &[&str]) -> Vec<PathBuf> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    let _guard = LOCK
        .get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace())
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        // The outer `cargo test` exports its own settings; the module build has its own.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    for c in crates {
        cmd.args(["-p", c]);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building policy modules {crates:?} failed (is the wasm32-unknown-unknown target installed?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crates
        .iter()
        .map(|c| {
            workspace()
                .join("target/wasm32-unknown-unknown/release")
                .join(format!("{}.wasm", c.replace('-', "_")))
        })
        .collect()
}

/// A module's vectors file.
pub fn vectors(name: &str) -> PathBuf {
    workspace().join(name).join("vectors.json")
}
