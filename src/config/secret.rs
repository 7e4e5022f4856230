//! Start-up stage: where secrets come from. A secret is named in config, never
//! written in it: `{ env = "NAME" }`, `{ file = "path" }` or `"${NAME}"`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

/// A reference to a secret value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

/// A resolved secret. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret from a literal, for tests.
    #[cfg(test)]
    pub fn for_tests(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl SecretRef {
    /// Reads the secret now. Errors name the source, never the value.
    pub fn resolve(&self) -> Result<Secret, String> {
        let value = match self {
            Self::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
        };
        let value = value.trim_end_matches(['\r', '\n']).to_owned();
        if value.is_empty() {
            return Err(format!("secret from {self:?} is empty"));
        }
        Ok(Secret(value))
    }

    pub(crate) fn anchor(&mut self, base: &Path) {
        if let Self::File(path) = self {
            *path = super::paths::anchored(base, path);
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Table(Table),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    env: Option<String>,
    file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(text) => text
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
                .filter(|name| valid_env_name(name))
                .map(|name| Self::Env(name.to_owned()))
                .ok_or_else(|| {
                    D::Error::custom(
                        "secrets are never written inline: use \"${ENV_VAR}\", \
                         { env = \"ENV_VAR\" } or { file = \"path\" }",
                    )
                }),
            Raw::Table(Table {
                env: Some(name),
                file: None,
            }) if valid_env_name(&name) => Ok(Self::Env(name)),
            Raw::Table(Table {
                env: None,
                file: Some(path),
            }) => Ok(Self::File(path)),
            Raw::Table(_) => Err(D::Error::custom(
                "a secret needs exactly one of `env` (a variable name) or `file`",
            )),
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}
