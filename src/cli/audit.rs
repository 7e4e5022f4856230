//! `toolgate audit verify FILE|DIR…`: reads a decision log back and checks
//! every line's hash, the chain between lines and files, and the newest
//! file against `HEAD`; names the first bad line. `tail`, `search`,
//! `denials`, `drift` and `trace` read it as reports (`reports`).

pub mod reports;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a decision log: files or directories (all their log files).
    Verify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The newest call decisions; `--follow` keeps printing new ones.
    Tail(reports::TailArgs),
    /// Call decisions matching filters, newest first.
    Search(reports::SearchArgs),
    /// Denials grouped (`--by tool,reason,label:team,hour…`), with shares.
    Denials(reports::DenialsArgs),
    /// Unused, underused and long-lived grants; overdue tasks; unused tools.
    Drift(reports::DriftArgs),
    /// How a grant was created, and every call that used it.
    Trace(reports::TraceArgs),
}

pub fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Tail(args) => reports::tail(&args),
        AuditCommand::Search(args) => reports::search(&args),
        AuditCommand::Denials(args) => reports::denials(&args),
        AuditCommand::Drift(args) => reports::drift(&args),
        AuditCommand::Trace(args) => reports::trace(&args),
        AuditCommand::Verify { paths } => match crate::audit::read::verify(&paths) {
            Ok(s) => {
                let range = match (s.first_seq, s.last_seq) {
                    (Some(a), Some(b)) => format!(", seq {a}..{b}"),
                    _ => String::new(),
                };
                let head = if s.head_checked {
                    ", newest file matches HEAD"
                } else {
                    ", HEAD not checked (not beside the newest file given)"
                };
                let unfinished = match s.unfinished_bytes {
                    0 => String::new(),
                    n => format!(
                        "; then {n} bytes of a line HEAD does not record yet \
                         (being written, or cut short by a crash), not verified"
                    ),
                };
                let line = format!(
                    "ok: {} lines in {} files{range}{head}{unfinished}",
                    s.lines, s.files
                );
                match writeln!(std::io::stdout(), "{line}") {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::FAILURE,
                }
            }
            Err(e) => {
                eprintln!("audit verify: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
