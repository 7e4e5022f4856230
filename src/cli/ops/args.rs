//! Operator CLI, the command line: `task`, `grant` and `approval`
//! subcommands and the connection options they share. Values are checked
//! here only as far as the shape goes; the admin API applies the rules.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::store::Constraint;

/// `task`, `grant` and `approval`: tasks, grants and approvals through the
/// admin API (flattened into the top-level command).
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Tasks: list, show, create, complete, cancel (admin API).
    Task {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Just-in-time grants: list, show, create, revoke (admin API).
    Grant {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// Calls parked for a human: list, show, approve, deny (admin API).
    Approval {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ApprovalCommand,
    },
}

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Admin API options")]
pub struct AdminArgs {
    /// Base URL of the admin listener.
    #[arg(
        long,
        global = true,
        env = "TOOLGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9901"
    )]
    pub admin_url: String,
    /// Admin bearer token (prefer the environment or --token-file: command
    /// lines are visible to other users). Never printed.
    #[arg(
        long,
        global = true,
        env = "TOOLGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// File holding the admin token (trailing newline ignored); wins over
    /// --token and TOOLGATE_ADMIN_TOKEN.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificates to trust for an https admin URL (default: system roots).
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for an admin listener that
    /// authenticates by certificate (`admin.clients`); needs --key.
    #[arg(long, global = true, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, global = true, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Print the API's JSON answer as-is (pretty) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TaskCommand {
    /// List tasks.
    List {
        /// Only this agent's tasks (its SPIFFE ID or `sub`).
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, value_parser = ["active", "completed", "cancelled", "expired"])]
        state: Option<String>,
    },
    /// One task with its grants, approvals and activity.
    Show {
        #[arg(value_parser = parse_id)]
        id: String,
    },
    /// Create a task for an agent.
    Create {
        /// The agent's subject (SPIFFE ID or token `sub`).
        #[arg(long)]
        agent: String,
        /// Why the task exists.
        #[arg(long)]
        purpose: String,
        /// The user the agent acts for.
        #[arg(long)]
        on_behalf_of: Option<String>,
        /// The `iss` the agent's tokens must come from.
        #[arg(long)]
        issuer: Option<String>,
        /// A label `key=value`; repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Lifetime, e.g. 30m, 2h, 1d (default: tasks.default_ttl).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<String>,
    },
    /// Complete a task: every grant in it ends.
    Complete {
        #[arg(value_parser = parse_id)]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a task: every grant in it ends.
    Cancel {
        #[arg(value_parser = parse_id)]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum GrantCommand {
    /// List grants.
    List {
        /// Only this task's grants.
        #[arg(long)]
        task: Option<String>,
        /// Only this agent's grants.
        #[arg(long)]
        agent: Option<String>,
        /// Only grants usable now.
        #[arg(long)]
        live: bool,
    },
    /// One grant.
    Show {
        #[arg(value_parser = parse_id)]
        id: String,
    },
    /// Issue a grant in a task.
    #[command(group(ArgGroup::new("expiry").required(true).args(["ttl", "expires_at"])))]
    Create {
        /// The task the grant belongs to (and whose agent it is for).
        #[arg(long, value_parser = parse_id)]
        task: String,
        /// Tool name or glob (`*`, `?`).
        #[arg(long)]
        tool: String,
        /// Only on this route (default: any).
        #[arg(long)]
        route: Option<String>,
        /// An argument constraint as JSON, e.g. '{"pointer":"/repo","equals":"a/b"}'; repeatable.
        #[arg(long = "constraint", value_parser = parse_constraint)]
        constraints: Vec<Constraint>,
        /// Lifetime, e.g. 15m, 1h30m, 1d.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<String>,
        /// Expiry: RFC 3339 (e.g. 2026-05-01T17:00:00Z) or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<u64>,
        /// Not usable before this: RFC 3339 or Unix seconds.
        #[arg(long, value_parser = parse_time)]
        not_before: Option<u64>,
        /// How many calls it allows (default: unlimited until expiry).
        #[arg(long)]
        max_uses: Option<u64>,
        /// Why the grant is issued.
        #[arg(long)]
        reason: String,
    },
    /// Revoke one grant, every grant of a task, or every grant of an agent.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "task", "agent"])))]
    Revoke {
        /// The grant to revoke.
        #[arg(value_parser = parse_id)]
        id: Option<String>,
        /// Revoke every grant of this task instead.
        #[arg(long, value_parser = parse_id)]
        task: Option<String>,
        /// Revoke every grant of this agent (in all its tasks) instead.
        #[arg(long)]
        agent: Option<String>,
        /// Why (kept on the grant and in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ApprovalCommand {
    /// List approvals.
    List {
        #[arg(long, value_parser = ["pending", "approved", "denied", "expired"])]
        state: Option<String>,
        /// Only this task's approvals.
        #[arg(long)]
        task: Option<String>,
        /// Only approvals this agent's calls asked for.
        #[arg(long)]
        agent: Option<String>,
    },
    /// One approval, with the call's arguments.
    Show {
        #[arg(value_parser = parse_id)]
        id: String,
    },
    /// Approve: creates a grant scoped to the parked call.
    Approve {
        #[arg(value_parser = parse_id)]
        id: String,
        /// Lifetime of the grant, e.g. 5m (default: approvals.grant_ttl).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<String>,
        /// How many calls the grant allows.
        #[arg(long)]
        max_uses: Option<u64>,
        /// Why it was approved.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny: the parked call is refused with the reason.
    Deny {
        #[arg(value_parser = parse_id)]
        id: String,
        #[arg(long)]
        reason: String,
    },
}

pub(super) fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

pub(super) fn parse_constraint(text: &str) -> Result<Constraint, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "not a constraint ({e}); expected e.g. {{\"pointer\":\"/path\",\"prefix\":\"/tmp/\"}} \
             with one of equals, one_of, glob, regex, range, prefix"
        )
    })
}

/// A duration as the admin API reads it (checked here so a typo is a
/// usage error before anything is sent); sent on as written.
pub(super) fn parse_duration(text: &str) -> Result<String, String> {
    crate::config::duration::parse(text).map(|_| text.trim().to_owned())
}

/// RFC 3339 or Unix seconds, as Unix seconds (what the admin API takes).
pub(super) fn parse_time(text: &str) -> Result<u64, String> {
    crate::config::timestamp::parse_unix_seconds(text)
}

/// A task, grant or approval id as the gateway makes them (letters,
/// digits, `_`, `-`): a placeholder copied from the docs, or anything else,
/// is refused here with a message rather than sent percent-encoded.
pub(super) fn parse_id(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.contains('\u{2026}') || text.contains("...") {
        return Err(format!(
            "{text:?} is a placeholder: use a real id (`toolgate task list`, `grant list` \
             and `approval list` show them)"
        ));
    }
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "{text:?} is not an id: ids are letters, digits, '_' and '-', e.g. \
             task_d1edcff6506e4cc6af2e9db92edb3d60"
        ));
    }
    Ok(text.to_owned())
}
