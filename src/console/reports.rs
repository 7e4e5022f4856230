//! Operator console, denials and drift: the decision-log reports read
//! through the admin API as the signed-in operator — refusals by tool,
//! reason, subject, a task label and hour of day (tables with CSS bars,
//! split into approval path and policy), the newest refusals (each linked
//! to its decision record), unused and underused grants (each linked to its
//! trace) and tasks open past their purpose's usual span.

use std::collections::BTreeMap;

use askama::Template;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::Value;

use super::page::{self, Chrome};
use super::session::Session;
use super::{Ctx, Error, api};
use crate::Body;

/// One group of a denial report, with its bar's width class (0–20, in 5% steps
/// of the largest group).
#[derive(Debug)]
pub(crate) struct Bar {
    pub(crate) key: String,
    pub(crate) denied: u64,
    pub(crate) share: String,
    pub(crate) approval: u64,
    pub(crate) policy: u64,
    pub(crate) width: u64,
}

/// One grouping shown.
#[derive(Debug)]
pub(crate) struct Chart {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) bars: Vec<Bar>,
}

/// A row of a plain table: its cells, and where its first cell links.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) link: String,
    pub(crate) cells: Vec<String>,
}

/// A table of grants.
#[derive(Debug)]
pub(crate) struct GrantTable {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    pub(crate) rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    chrome: Chrome,
    since: String,
    label: String,
    calls: u64,
    denied: u64,
    approval: u64,
    policy: u64,
    charts: Vec<Chart>,
    recent: Vec<Row>,
    grant_tables: Vec<GrantTable>,
    overdue: Vec<Row>,
}

#[derive(Template)]
#[template(path = "console/report_record.html")]
struct RecordPage {
    chrome: Chrome,
    title: String,
    json: String,
}

/// `GET /console/reports?since=24h&label=team`.
pub(crate) async fn page(ctx: &Ctx, session: &Session) -> Result<Response<Body>, Error> {
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(ctx.head.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let since = query
        .get("since")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "24h".into());
    let label = query
        .get("label")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "team".into());
    let enc = |pairs: &[(&str, &str)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let mut charts = Vec::new();
    let mut totals = Value::Null;
    for (id, by, title) in [
        ("by-tool", "tool".to_owned(), "By tool".to_owned()),
        ("by-reason", "reason".to_owned(), "By reason".to_owned()),
        ("by-subject", "subject".to_owned(), "By subject".to_owned()),
        (
            "by-label",
            format!("label:{label}"),
            format!("By task label {label}"),
        ),
        (
            "by-hour",
            "hour".to_owned(),
            "By hour of day (UTC)".to_owned(),
        ),
    ] {
        let path = format!(
            "/v1/reports/denials?{}",
            enc(&[("since", &since), ("by", &by)])
        );
        let report: Value = api::read(get(ctx, session, &path).await)?;
        let groups = report["groups"].as_array().cloned().unwrap_or_default();
        let max = groups
            .iter()
            .filter_map(|g| g["denied"].as_u64())
            .max()
            .unwrap_or(1)
            .max(1);
        let bars = groups
            .iter()
            .map(|g| {
                let denied = g["denied"].as_u64().unwrap_or(0);
                Bar {
                    key: g["key"][by.as_str()].as_str().unwrap_or("-").to_owned(),
                    denied,
                    share: format!("{:.1}%", g["share"].as_f64().unwrap_or(0.0) * 100.0),
                    approval: g["approval"].as_u64().unwrap_or(0),
                    policy: g["policy"].as_u64().unwrap_or(0),
                    width: (denied * 20).div_ceil(max),
                }
            })
            .collect();
        charts.push(Chart {
            id: id.to_owned(),
            title,
            bars,
        });
        totals = report;
    }
    let mut recent = Vec::new();
    for decision in ["deny", "needs_approval"] {
        let path = format!(
            "/v1/decisions?{}",
            enc(&[("since", &since), ("decision", decision), ("limit", "20")])
        );
        let found: Value = api::read(get(ctx, session, &path).await)?;
        for d in found["decisions"].as_array().into_iter().flatten() {
            recent.push((
                d["seq"].as_u64().unwrap_or(0),
                Row {
                    link: format!("/console/reports/decisions/{}", text(&d["id"])),
                    cells: ["ts", "route", "tool", "decision", "reason"]
                        .iter()
                        .map(|k| text(&d[*k]))
                        .chain([text(&d["identity"]["subject"])])
                        .collect(),
                },
            ));
        }
    }
    recent.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    let drift: Value = api::read(
        get(
            ctx,
            session,
            &format!("/v1/reports/drift?{}", enc(&[("since", &since)])),
        )
        .await,
    )?;
    let grants = |key: &str| -> Vec<Row> {
        drift[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| Row {
                link: format!("/console/reports/grants/{}", text(&g["grant"])),
                cells: [
                    "grant", "tool", "task", "source", "uses", "max_uses", "expires",
                ]
                .iter()
                .map(|k| text(&g[*k]))
                .collect(),
            })
            .collect()
    };
    let overdue = drift["overdue_tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Row {
            link: format!("/console/tasks/{}", text(&t["task"])),
            cells: ["task", "purpose", "created", "open_ms", "p90_ms"]
                .iter()
                .map(|k| text(&t[*k]))
                .collect(),
        })
        .collect();
    let page = ReportsPage {
        chrome: Chrome::new(ctx, session, "reports"),
        calls: totals["calls"].as_u64().unwrap_or(0),
        denied: totals["total"]["denied"].as_u64().unwrap_or(0),
        approval: totals["total"]["approval"].as_u64().unwrap_or(0),
        policy: totals["total"]["policy"].as_u64().unwrap_or(0),
        since,
        label,
        charts,
        recent: recent.into_iter().map(|(_, r)| r).take(20).collect(),
        grant_tables: vec![
            GrantTable {
                id: "unused-grants",
                title: "Grants not used in this window",
                rows: grants("unused_grants"),
            },
            GrantTable {
                id: "underused-grants",
                title: "Grants used far below their limit",
                rows: grants("underused_grants"),
            },
        ],
        overdue,
    };
    page::html(StatusCode::OK, &page)
}

/// `GET /console/reports/decisions/{id}`: one decision record.
pub(crate) async fn decision(
    ctx: &Ctx,
    session: &Session,
    id: &str,
) -> Result<Response<Body>, Error> {
    let path = format!(
        "/v1/decisions?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("id", id)
            .finish()
    );
    let found: Value = api::read(get(ctx, session, &path).await)?;
    let record = found["decisions"][0].clone();
    if record.is_null() {
        return Err(Error::from(api::Answer {
            status: StatusCode::NOT_FOUND,
            body: serde_json::json!({"error": {"code": "not_found", "message": "no such decision record"}}),
        }));
    }
    record_page(ctx, session, format!("Decision {id}"), &record)
}

/// `GET /console/reports/grants/{id}`: a grant's trace.
pub(crate) async fn trace(ctx: &Ctx, session: &Session, id: &str) -> Result<Response<Body>, Error> {
    let path = format!("/v1/reports/grants/{id}");
    let trace: Value = api::read(get(ctx, session, &path).await)?;
    record_page(ctx, session, format!("Trace of grant {id}"), &trace)
}

fn record_page(
    ctx: &Ctx,
    session: &Session,
    title: String,
    value: &Value,
) -> Result<Response<Body>, Error> {
    let page = RecordPage {
        chrome: Chrome::new(ctx, session, "reports"),
        title,
        json: serde_json::to_string_pretty(value).unwrap_or_default(),
    };
    page::html(StatusCode::OK, &page)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn get(ctx: &Ctx, session: &Session, path: &str) -> api::Answer {
    ctx.api
        .call(&session.operator, Method::GET, path, Bytes::new())
        .await
}
