//! `toolgate audit tail|search|denials|drift|trace DIR`: the admin API's
//! reports read straight from a log directory (the same parameters and
//! errors, `audit::report`), printed as tables or, with `--json`, as the
//! API's JSON.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::audit::report::{self, Denials, Drift, Params, Search, Trace};

/// Where the log is and how to print.
#[derive(Debug, Args)]
pub struct Common {
    /// The log directory (`[audit] dir`) or its files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print the admin API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct Window {
    /// RFC 3339, or a duration before now (`1h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339, or a duration before now; default now.
    #[arg(long)]
    until: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    window: Window,
    #[arg(long)]
    route: Option<String>,
    #[arg(long)]
    tool: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    #[arg(long)]
    task: Option<String>,
    /// allow, deny or needs_approval.
    #[arg(long)]
    decision: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    /// A record id.
    #[arg(long)]
    id: Option<String>,
    /// At most this many (1–1000, default 100).
    #[arg(long)]
    limit: Option<String>,
    /// Only records before this seq (the `next_before` of a page).
    #[arg(long)]
    before: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    common: Common,
    /// How many (default 20).
    #[arg(long, short = 'n', default_value = "20")]
    lines: String,
    /// Keep printing new decisions as they are written.
    #[arg(long, short = 'f')]
    follow: bool,
}

#[derive(Debug, Args)]
pub struct DenialsArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    window: Window,
    /// Comma-separated: tool, subject, issuer, route, reason, class, hour, label:NAME.
    #[arg(long)]
    by: Option<String>,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    window: Window,
    /// Grants living longer than this are long-lived (default 24h).
    #[arg(long)]
    long: Option<String>,
    /// Underused: at most this percent of max_uses used (default 25).
    #[arg(long)]
    underuse: Option<String>,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    common: Common,
    /// The grant id.
    #[arg(long, required = true)]
    grant: String,
}

fn params(pairs: &[(&str, &Option<String>)], allowed: &[&str]) -> Result<Params, report::Error> {
    Params::new(
        pairs
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone()))),
        allowed,
    )
}

fn now() -> i64 {
    i64::try_from(crate::audit::now_ms()).unwrap_or(i64::MAX)
}

fn finish(result: Result<String, report::Error>) -> ExitCode {
    match result {
        Ok(text) => match write!(std::io::stdout(), "{text}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("audit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn out(json: bool, value: &Value, table: impl FnOnce(&Value) -> String) -> String {
    if json {
        format!("{value:#}\n")
    } else {
        table(value)
    }
}

pub fn search(a: &SearchArgs) -> ExitCode {
    finish((|| {
        let p = params(
            &[
                ("since", &a.window.since),
                ("until", &a.window.until),
                ("route", &a.route),
                ("tool", &a.tool),
                ("subject", &a.subject),
                ("task", &a.task),
                ("decision", &a.decision),
                ("reason", &a.reason),
                ("id", &a.id),
                ("limit", &a.limit),
                ("before", &a.before),
            ],
            &Search::PARAMS,
        )?;
        let s = Search::parse(&p, now())?;
        let v = s.json(&s.run(&a.common.paths)?);
        Ok(out(a.common.json, &v, |v| decisions_table(&v["decisions"])))
    })())
}

pub fn tail(a: &TailArgs) -> ExitCode {
    let first = (|| {
        let p = params(&[("limit", &Some(a.lines.clone()))], &Search::PARAMS)?;
        let s = Search::parse(&p, now())?;
        let mut found = s.run(&a.common.paths)?;
        found.reverse();
        Ok::<_, report::Error>(found)
    })();
    let found = match first {
        Ok(f) => f,
        Err(e) => return finish(Err(e)),
    };
    let print = |records: &[crate::audit::read::Record]| {
        let rows: Vec<Value> = records.iter().map(report::record_json).collect();
        let text = if a.common.json {
            rows.iter().map(|r| format!("{r}\n")).collect()
        } else {
            decisions_table(&Value::Array(rows))
        };
        write!(std::io::stdout(), "{text}").and_then(|()| std::io::stdout().flush())
    };
    if print(&found).is_err() {
        return ExitCode::FAILURE;
    }
    if !a.follow {
        return ExitCode::SUCCESS;
    }
    let mut last = found.last().map_or(0, |r| r.seq);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut new = Vec::new();
        let read = report::scan_from(&a.common.paths, last, |r| new.push(r.clone()));
        if let Err(e) = read {
            return finish(Err(e));
        }
        if let Some(r) = new.last() {
            last = r.seq;
        }
        if print(&new).is_err() {
            return ExitCode::FAILURE;
        }
    }
}

pub fn denials(a: &DenialsArgs) -> ExitCode {
    finish((|| {
        let p = params(
            &[
                ("since", &a.window.since),
                ("until", &a.window.until),
                ("by", &a.by),
            ],
            &Denials::PARAMS,
        )?;
        let d = Denials::parse(&p, now())?;
        let v = d.json(&d.run(&a.common.paths)?);
        Ok(out(a.common.json, &v, |v| {
            let by: Vec<&str> = v["by"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut head: Vec<&str> = by.clone();
            head.extend(["denied", "share", "approval", "policy", "fault"]);
            let rows = v["groups"].as_array().into_iter().flatten().map(|g| {
                let mut row: Vec<String> = by.iter().map(|k| cell(&g["key"][*k])).collect();
                row.push(cell(&g["denied"]));
                row.push(format!(
                    "{:.1}%",
                    g["share"].as_f64().unwrap_or(0.0) * 100.0
                ));
                row.extend(["approval", "policy", "fault"].iter().map(|k| cell(&g[*k])));
                row
            });
            let mut text = table(&head, rows);
            text.push_str(&format!(
                "{} of {} calls refused ({} approval path, {} policy, {} fault)\n",
                v["total"]["denied"],
                v["calls"],
                v["total"]["approval"],
                v["total"]["policy"],
                v["total"]["fault"]
            ));
            text
        }))
    })())
}

pub fn drift(a: &DriftArgs) -> ExitCode {
    finish((|| {
        let p = params(
            &[
                ("since", &a.window.since),
                ("until", &a.window.until),
                ("long", &a.long),
                ("underuse", &a.underuse),
            ],
            &Drift::PARAMS,
        )?;
        let v = Drift::parse(&p, now())?.run(&a.common.paths)?;
        Ok(out(a.common.json, &v, |v| {
            let mut text = String::new();
            let grants = [
                "grant", "tool", "task", "source", "uses", "max_uses", "expires",
            ];
            for (title, key, cols) in [
                ("Unused grants", "unused_grants", &grants[..]),
                ("Underused grants", "underused_grants", &grants[..]),
                ("Long-lived grants", "long_lived_grants", &grants[..]),
                (
                    "Tasks open past their purpose's p90",
                    "overdue_tasks",
                    &["task", "purpose", "open_ms", "p90_ms", "completed"][..],
                ),
                (
                    "Allowed tools not called",
                    "unused_tools",
                    &["subject", "tool", "allowed_by"][..],
                ),
            ] {
                text.push_str(&format!("{title}:\n"));
                let rows = v[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| cols.iter().map(|c| cell(&r[*c])).collect());
                text.push_str(&table(cols, rows));
                text.push('\n');
            }
            text
        }))
    })())
}

pub fn trace(a: &TraceArgs) -> ExitCode {
    finish((|| {
        let v = Trace::parse(&a.grant, &Params::default())?.run(&a.common.paths)?;
        Ok(out(a.common.json, &v, |v| {
            let c = &v["created"];
            let mut text = format!(
                "grant {}: tool {} ({} by {}, reason {}), approval {}, approvers {}\nevidence: {}\n\n",
                cell(&v["grant"]),
                cell(&c["tool"]),
                cell(&c["source"]),
                cell(&c["granted_by"]),
                cell(&c["reason"]),
                cell(&v["approval"]),
                cell(&v["approvers"]),
                cell(&c["evidence"])
            );
            for (title, key) in [
                ("Parked calls", "parked_calls"),
                ("Approval events", "approval_events"),
                ("Grant events", "grant_events"),
                ("Admin actions", "admin_actions"),
            ] {
                text.push_str(&format!("{title}:\n"));
                let rows = v[key].as_array().into_iter().flatten().map(|r| {
                    [
                        "seq", "ts", "kind", "event", "action", "actor", "decision", "reason",
                    ]
                    .iter()
                    .map(|k| cell(&r[*k]))
                    .collect()
                });
                text.push_str(&table(
                    &[
                        "seq", "ts", "kind", "event", "action", "actor", "decision", "reason",
                    ],
                    rows,
                ));
                text.push('\n');
            }
            text.push_str("Uses:\n");
            text.push_str(&decisions_table(&v["uses"]));
            text
        }))
    })())
}

fn decisions_table(rows: &Value) -> String {
    let head = [
        "seq", "ts", "route", "tool", "subject", "task", "decision", "reason",
    ];
    let rows = rows.as_array().into_iter().flatten().map(|r| {
        vec![
            cell(&r["seq"]),
            cell(&r["ts"]),
            cell(&r["route"]),
            cell(&r["tool"]),
            cell(&r["identity"]["subject"]),
            cell(&r["task"]["id"]),
            cell(&r["decision"]),
            cell(&r["reason"]),
        ]
    });
    table(&head, rows)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell.
fn table(head: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut text = line(head.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        text.push_str(&line(row));
    }
    text
}
