//! `toolgate admin-token`: a new admin API bearer token and the
//! `[[admin.tokens]]` block that admits it (toolgate keeps only the
//! token's SHA-256), or `--hash` for the hash of a token read from stdin.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use clap::Args;

use crate::admin::auth;

#[derive(Debug, Args)]
pub struct AdminTokenArgs {
    /// The token's name: the actor in audit records (letters, digits, '-', '_', '.').
    #[arg(long, required_unless_present = "hash")]
    pub name: Option<String>,
    /// What the token may do; each role includes the ones before it.
    #[arg(long, value_parser = ["viewer", "operator", "admin"], required_unless_present = "hash")]
    pub role: Option<String>,
    /// Read a token from stdin and print its SHA-256 (with --name and
    /// --role, as a config block) instead of making a new one.
    #[arg(long)]
    pub hash: bool,
}

pub fn run(args: AdminTokenArgs) -> ExitCode {
    match output(&args) {
        Ok(text) => match std::io::stdout().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn output(args: &AdminTokenArgs) -> Result<String, String> {
    if let Some(name) = &args.name
        && !valid_name(name)
    {
        return Err(format!(
            "--name {name:?}: use letters, digits, '-', '_' and '.' only"
        ));
    }
    if args.hash {
        let mut input = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut input)
            .map_err(|e| format!("reading the token from stdin: {e}"))?;
        let token = input.trim();
        if token.is_empty() {
            return Err("no token on stdin".into());
        }
        let hash = auth::hash_token_hex(token);
        return Ok(match (&args.name, &args.role) {
            (Some(name), Some(role)) => block(name, role, &hash),
            _ => format!("{hash}\n"),
        });
    }
    let (Some(name), Some(role)) = (&args.name, &args.role) else {
        return Err("--name and --role are required".into());
    };
    let token = auth::generate_token().map_err(|e| format!("no randomness from the OS: {e}"))?;
    let hash = auth::hash_token_hex(&token);
    // The token first and alone on its line: `| head -1` takes it.
    Ok(format!(
        "{token}\n\n\
         # The token above is shown once: store it now (a secret manager, or \
         TOOLGATE_ADMIN_TOKEN for the CLI).\n\
         # toolgate keeps only its SHA-256. Add this to the config and restart:\n\
         {}",
        block(name, role, &hash)
    ))
}

fn block(name: &str, role: &str, hash: &str) -> String {
    format!("[[admin.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_comes_with_its_config_block() {
        let args = AdminTokenArgs {
            name: Some("ci-bot".into()),
            role: Some("operator".into()),
            hash: false,
        };
        let text = output(&args).unwrap();
        let token = text.lines().next().unwrap();
        assert!(token.starts_with(auth::TOKEN_PREFIX), "{text}");
        let block = &text[text.find("[[admin.tokens]]").unwrap()..];
        let parsed: toml::Value = toml::from_str(block).unwrap();
        let entry = &parsed["admin"]["tokens"][0];
        assert_eq!(entry["name"].as_str(), Some("ci-bot"));
        assert_eq!(entry["role"].as_str(), Some("operator"));
        assert_eq!(
            entry["sha256"].as_str(),
            Some(auth::hash_token_hex(token).as_str())
        );
        assert_eq!(text.matches(token).count(), 1, "printed once");
    }

    #[test]
    fn names_are_checked() {
        let args = AdminTokenArgs {
            name: Some("a\"b".into()),
            role: Some("admin".into()),
            hash: false,
        };
        assert!(output(&args).is_err());
    }
}
