//! Decide stage, before activation: the on-disk cache of compiled policy
//! modules, and why it can be trusted (SECURITY.md, "Compiled-module
//! cache").
//!
//! A compiled module is native code: loading one that someone else wrote
//! would run their code inside the gateway, under the real module's name.
//! So the cache is trusted no further than this:
//!
//! - **Its folder** is `policy_limits.cache_dir`, or per user
//!   `$XDG_CACHE_HOME/toolgate/modules` (`~/.cache/toolgate/modules`); never
//!   a shared temp folder. It is created `0700`, and refused when it is owned
//!   by another user or writable by group or others — a configured folder
//!   refuses the policy set (say what is wrong, fail closed), the default
//!   one only turns the cache off.
//! - **Every entry is authenticated** before wasmtime sees it: the file
//!   carries an HMAC-SHA256 over its name and compiled bytes, under a key
//!   kept outside the cache (`$XDG_STATE_HOME/toolgate/module-cache.key`,
//!   `~/.local/state/toolgate/…`, `0600`, same ownership checks; without a
//!   usable place, a key for this process only). The file is read into
//!   memory once, checked, and deserialized from that memory, so it cannot
//!   change between the check and the load. An entry that fails the check is
//!   recompiled from the module and overwritten, never run.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use wasmtime::{Engine, Module};

/// What an entry starts with: format and version.
const MAGIC: &[u8; 8] = b"TGCWASM1";
/// HMAC-SHA256 tag length.
const TAG: usize = 32;
/// Bytes of a key file.
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("policy_limits.cache_dir {path}: {why}")]
    Folder { path: PathBuf, why: String },
}

/// An opened, checked cache folder and the key its entries are signed with.
#[derive(Debug)]
pub struct ModuleCache {
    dir: PathBuf,
    key: hmac::Key,
}

/// Why an entry was not loaded (logged; the module is then recompiled).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error("it was not written by this gateway (no valid signature)")]
    Unsigned,
    #[error("wasmtime refused it: {0}")]
    Deserialize(String),
}

impl ModuleCache {
    /// The configured folder (refused with the reason if unsafe), or the
    /// per-user default (`None` if there is none or it is unsafe).
    pub fn open(configured: Option<&Path>) -> Result<Option<Self>, Error> {
        let dir = match configured {
            Some(dir) => {
                prepare_folder(dir).map_err(|why| Error::Folder {
                    path: dir.to_path_buf(),
                    why,
                })?;
                dir.to_path_buf()
            }
            None => {
                let Some(dir) = default_dir() else {
                    return Ok(None);
                };
                if let Err(why) = prepare_folder(&dir) {
                    tracing::warn!(dir = %dir.display(), "not caching compiled policy modules: {why}");
                    return Ok(None);
                }
                dir
            }
        };
        let key = load_or_create_key(default_key_path().as_deref());
        Ok(key.map(|key| Self { dir, key }))
    }

    /// A cache in `dir` whose entries are signed with the key in `key_file`
    /// (created if missing).
    pub fn at(dir: &Path, key_file: &Path) -> Result<Option<Self>, Error> {
        prepare_folder(dir).map_err(|why| Error::Folder {
            path: dir.to_path_buf(),
            why,
        })?;
        let key = load_or_create_key(Some(key_file));
        Ok(key.map(|key| Self {
            dir: dir.to_path_buf(),
            key,
        }))
    }

    /// Where the entry named `name` lives.
    pub fn entry(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The compiled module stored as `name`, if its signature holds.
    /// `Ok(None)`: no such entry.
    pub fn load(&self, engine: &Engine, name: &str) -> Result<Option<Module>, Refused> {
        let bytes = match fs::read(self.entry(name)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Refused::Read(e)),
        };
        let compiled = self.verified(name, &bytes).ok_or(Refused::Unsigned)?;
        deserialize(engine, compiled).map(Some)
    }

    /// Stores `module` as `name`, signed; written whole, then renamed in.
    pub fn store(&self, module: &Module, name: &str) -> Result<(), String> {
        let compiled = module.serialize().map_err(|e| format!("{e:#}"))?;
        let tag = hmac::sign(&self.key, &signed_text(name, &compiled));
        let path = self.entry(name);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| e.to_string())?;
        file.write_all(MAGIC)
            .and_then(|()| file.write_all(tag.as_ref()))
            .and_then(|()| file.write_all(&compiled))
            .and_then(|()| file.sync_all())
            .map_err(|e| e.to_string())?;
        fs::rename(&tmp, &path).map_err(|e| e.to_string())
    }

    /// The compiled bytes of an entry whose tag verifies.
    fn verified<'b>(&self, name: &str, bytes: &'b [u8]) -> Option<&'b [u8]> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (tag, compiled) = rest.split_at_checked(TAG)?;
        hmac::verify(&self.key, &signed_text(name, compiled), tag).ok()?;
        Some(compiled)
    }
}

/// What the tag covers: the entry's name (module hash and engine), so a
/// signed entry cannot be copied under another module's name, and the code.
fn signed_text(name: &str, compiled: &[u8]) -> Vec<u8> {
    let mut text = Vec::with_capacity(name.len() + 1 + compiled.len());
    text.extend_from_slice(name.as_bytes());
    text.push(0);
    text.extend_from_slice(compiled);
    text
}

/// Loads compiled code this gateway signed.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, compiled: &[u8]) -> Result<Module, Refused> {
    // SAFETY: wasmtime requires that the bytes come from `Module::serialize`
    // of a compatible engine. These bytes carry an HMAC under a key only
    // this gateway's user can read, checked (constant time) over exactly
    // these bytes in memory, so they are what `ModuleCache::store` wrote;
    // the entry name binds the engine's compatibility hash, and wasmtime
    // checks its own header as well.
    unsafe { Module::deserialize(engine, compiled) }
        .map_err(|e| Refused::Deserialize(format!("{e:#}")))
}

/// `$XDG_CACHE_HOME/toolgate/modules`, or `~/.cache/toolgate/modules`.
fn default_dir() -> Option<PathBuf> {
    per_user("XDG_CACHE_HOME", ".cache").map(|d| d.join("toolgate").join("modules"))
}

/// `$XDG_STATE_HOME/toolgate/module-cache.key`, or `~/.local/state/…`.
fn default_key_path() -> Option<PathBuf> {
    per_user("XDG_STATE_HOME", ".local/state").map(|d| d.join("toolgate").join("module-cache.key"))
}

fn per_user(xdg: &str, under_home: &str) -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os(xdg).and_then(absolute).or_else(|| {
        std::env::var_os("HOME")
            .and_then(absolute)
            .map(|h| h.join(under_home))
    })
}

/// Creates `dir` (and missing parents) `0700` and checks it is this
/// user's alone.
fn prepare_folder(dir: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    let meta = fs::metadata(dir).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_dir() {
        return Err("is not a folder".into());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "is owned by uid {}, not by this gateway's user (uid {me}); give the gateway its own folder",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by others (mode {:o}); make it 0700 (chmod 700)",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// The signing key from `path` (created if missing); where that fails, a
/// key for this process only (the cache then helps only until a restart).
/// `None` without randomness: no key could be secret, so no cache.
fn load_or_create_key(path: Option<&Path>) -> Option<hmac::Key> {
    if let Some(path) = path {
        match read_or_create_key(path) {
            Ok(key) => return Some(hmac::Key::new(hmac::HMAC_SHA256, &key)),
            Err(why) => {
                tracing::warn!(key = %path.display(), "compiled policy modules are cached for this process only: {why}");
            }
        }
    }
    let mut key = [0u8; KEY_LEN];
    match getrandom::fill(&mut key) {
        Ok(()) => Some(hmac::Key::new(hmac::HMAC_SHA256, &key)),
        Err(e) => {
            tracing::warn!(error = %e, "no randomness for a cache key: compiled policy modules are not cached");
            None
        }
    }
}

fn read_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], String> {
    if let Some(parent) = path.parent() {
        prepare_folder(parent).map_err(|why| format!("{}: {why}", parent.display()))?;
    }
    match read_key(path) {
        Ok(Some(key)) => return Ok(key),
        Ok(None) => {}
        Err(why) => return Err(why),
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness for a key: {e}"))?;
    // Written aside, then linked in: never a half-written key, and of two
    // processes racing, both end with the one that won.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(path)?.ok_or_else(|| format!("{} vanished", path.display()))
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// The key in `path`, `None` if there is no such file, or why it is unfit.
fn read_key(path: &Path) -> Result<Option<[u8; KEY_LEN]>, String> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{} must belong to uid {me} and be readable by it alone (0600)",
            path.display()
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| format!("{} is not a {KEY_LEN}-byte key", path.display()))
}

#[cfg(test)]
mod tests;
