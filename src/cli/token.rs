//! `toolgate token mint`: dev tokens for the demo, tests and local agents.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, Subcommand};
use jsonwebtoken::Algorithm;

use crate::config::duration;
use crate::identify::mint::{self, Mint};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a signed JWT (by default with the published dev key: dev only).
    Mint(MintArgs),
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// `sub`: a SPIFFE ID for SPIFFE-mode issuers, e.g. spiffe://toolgate.dev/agent/me.
    #[arg(long)]
    pub sub: String,
    /// `aud`: the route's URL, e.g. http://127.0.0.1:8080/mcp.
    #[arg(long)]
    pub aud: String,
    /// Lifetime, e.g. 10m or 1h.
    #[arg(long, default_value = "1h", value_parser = duration::parse)]
    pub ttl: std::time::Duration,
    /// `iss`.
    #[arg(long, default_value = mint::DEV_ISSUER)]
    pub iss: String,
    /// Acting party (RFC 8693 `act`), current first; repeat for a chain.
    #[arg(long = "act")]
    pub actors: Vec<String>,
    /// Extra claim `name=value` (JSON values are kept as JSON); repeatable.
    #[arg(long = "claim", value_parser = parse_claim)]
    pub claims: Vec<(String, String)>,
    /// PEM private key; default: the dev key in config/dev/ (compiled in).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// `kid` header; default: the dev key's id when signing with the dev key.
    #[arg(long)]
    pub kid: Option<String>,
    /// Signing algorithm, e.g. ES256, RS256, PS256, EdDSA.
    #[arg(long, default_value = "ES256", value_parser = parse_alg)]
    pub alg: Algorithm,
}

pub fn run(command: TokenCommand) -> ExitCode {
    match command {
        TokenCommand::Mint(args) => mint(args),
    }
}

fn mint(args: MintArgs) -> ExitCode {
    let kid = match (&args.kid, &args.key) {
        (Some(kid), _) => Some(kid.clone()),
        (None, None) => Some(mint::DEV_KID.to_owned()),
        (None, Some(_)) => None,
    };
    let request = Mint {
        issuer: args.iss,
        subject: args.sub,
        audience: args.aud,
        ttl: args.ttl,
        actors: args.actors,
        claims: args.claims,
        algorithm: args.alg,
        kid,
    };
    let signed = match &args.key {
        Some(path) => request.sign_with_file(path),
        None => request.sign(mint::DEV_KEY_PEM.as_bytes()),
    };
    match signed {
        Ok(token) => match writeln!(std::io::stdout(), "{token}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_claim(text: &str) -> Result<(String, String), String> {
    mint::parse_claim(text).map_err(|e| e.to_string())
}

fn parse_alg(text: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(text).map_err(|_| format!("unknown algorithm {text:?}"))
}
