//! `toolgate check`: load a config as `serve` would — parse, validate,
//! build the snapshot (compile policy modules, run their vectors) — and
//! print every problem at once, as text or JSON. Nothing is started, so
//! nothing is logged as if it were: the warnings the build raises are
//! collected and printed once each, as the check's own output.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, ValueEnum};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

use crate::config::{self, Diagnostic, Diagnostics};
use crate::snapshot::Snapshot;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long, short, default_value = "config/toolgate.toml")]
    pub config: PathBuf,
    /// `text`: one `file:line:column: key: problem` line each; `json`: one
    /// document with `ok`, `errors` and `warnings`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// What checking one file found.
#[derive(Debug)]
pub struct Report {
    pub origin: String,
    /// Routes of a config that passed.
    pub routes: Option<usize>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Warning>,
}

/// A warning raised while building the snapshot, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub message: String,
    /// The event's fields (`route`, `policy`, `file`, …), in order.
    pub fields: Vec<(String, String)>,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let report = check(&args.config);
    let text = match args.format {
        Format::Text => text(&report),
        Format::Json => {
            let mut doc = serde_json::to_string_pretty(&json_report(&report)).unwrap_or_default();
            doc.push('\n');
            doc
        }
    };
    // Problems go to stderr as text (a human reads them), JSON to stdout
    // (a program does).
    let written = match (args.format, report.errors.is_empty()) {
        (Format::Text, false) => std::io::stderr().write_all(text.as_bytes()),
        _ => std::io::stdout().write_all(text.as_bytes()),
    };
    match (written, report.errors.is_empty()) {
        (Ok(()), true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Loads and builds `path` the way `serve` does, with its warnings collected.
pub fn check(path: &Path) -> Report {
    crate::install_crypto_provider();
    let origin = path.display().to_string();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let outcome = tracing::subscriber::with_default(subscriber, || {
        let cfg = config::load_file(path)?;
        match Snapshot::build(&cfg, None) {
            Ok(_) => Ok(cfg),
            Err(e) => Err(Diagnostics {
                origin: origin.clone(),
                items: vec![Diagnostic {
                    path: String::new(),
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                }],
            }),
        }
    });
    let warnings = capture.take().into_iter().map(reword).collect();
    match outcome {
        Ok(cfg) => Report {
            origin,
            routes: Some(cfg.routes.len()),
            errors: Vec::new(),
            warnings,
        },
        Err(diags) => Report {
            origin,
            routes: None,
            errors: diags.items,
            warnings,
        },
    }
}

/// The decide stage words its warning for the moment a module goes live;
/// a check makes nothing live.
fn reword(mut warning: Warning) -> Warning {
    if warning
        .message
        .starts_with("policy module has no test vectors")
    {
        warning.message =
            "policy module has no test vectors: nothing tests it before it decides calls".into();
    }
    warning
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    for w in &report.warnings {
        out.push_str(&format!("{}: warning: {}", report.origin, w.message));
        if !w.fields.is_empty() {
            let fields: Vec<String> = w.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(" ({})", fields.join(", ")));
        }
        out.push('\n');
    }
    match report.routes {
        Some(n) => out.push_str(&format!("{}: ok ({n} routes)\n", report.origin)),
        None => {
            let diags = Diagnostics {
                origin: report.origin.clone(),
                items: report.errors.clone(),
            };
            out.push_str(&format!("{diags}\n"));
        }
    }
    out
}

fn json_report(report: &Report) -> serde_json::Value {
    let errors: Vec<_> = report
        .errors
        .iter()
        .map(|d| {
            json!({
                "line": d.line,
                "column": d.column,
                "key": d.path,
                "message": d.message,
            })
        })
        .collect();
    let warnings: Vec<_> = report
        .warnings
        .iter()
        .map(|w| {
            let fields: serde_json::Map<String, serde_json::Value> = w
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({"message": w.message, "fields": fields})
        })
        .collect();
    json!({
        "file": report.origin,
        "ok": report.errors.is_empty(),
        "routes": report.routes,
        "errors": errors,
        "warnings": warnings,
    })
}

// === impl Capture ===

/// A tracing layer that keeps WARN and ERROR events, each once; the rest
/// (e.g. "policy module loaded") is dropped: a check starts nothing.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<Warning>>>);

impl Capture {
    fn take(&self) -> Vec<Warning> {
        self.0
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let warning = Warning {
            message: fields.message,
            fields: fields.others,
        };
        if let Ok(mut all) = self.0.lock()
            && !all.contains(&warning)
        {
            all.push(warning);
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.others.push((field.name().to_owned(), value));
        }
    }
}
