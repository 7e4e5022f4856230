//! Admin API, reading the decision log: `GET /v1/decisions` (search) and
//! `GET /v1/reports/{denials,drift,grants/ID}`, each one scan of the
//! verified log off the async threads (see `audit::report`).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::error::Error;
use super::routes::Reply;
use crate::audit::report::{self, Denials, Drift, Params, Search, Trace};
use crate::gateway::Gateway;

/// Which report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Denials,
    Drift,
    Trace(String),
}

pub(super) async fn decisions(gw: &Arc<Gateway>, query: Option<&str>) -> Result<Reply, Error> {
    // Without a log there is nothing to search, whatever was asked: the
    // same answer as the reports.
    let dirs = dirs(gw)?;
    let params = Params::from_query(query, &Search::PARAMS).map_err(from)?;
    let search = Search::parse(&params, now()).map_err(from)?;
    blocking(move || {
        let found = search.run(&dirs)?;
        Ok(search.json(&found))
    })
    .await
}

pub(super) async fn report(
    gw: &Arc<Gateway>,
    kind: Kind,
    query: Option<&str>,
) -> Result<Reply, Error> {
    let dirs = dirs(gw)?;
    match kind {
        Kind::Denials => {
            let params = Params::from_query(query, &Denials::PARAMS).map_err(from)?;
            let denials = Denials::parse(&params, now()).map_err(from)?;
            blocking(move || Ok(denials.json(&denials.run(&dirs)?))).await
        }
        Kind::Drift => {
            let params = Params::from_query(query, &Drift::PARAMS).map_err(from)?;
            let drift = Drift::parse(&params, now()).map_err(from)?;
            blocking(move || drift.run(&dirs)).await
        }
        Kind::Trace(id) => {
            let params = Params::from_query(query, &Trace::PARAMS).map_err(from)?;
            let trace = Trace::parse(&id, &params).map_err(from)?;
            blocking(move || trace.run(&dirs)).await
        }
    }
}

fn now() -> i64 {
    i64::try_from(crate::audit::now_ms()).unwrap_or(i64::MAX)
}

fn dirs(gw: &Gateway) -> Result<Vec<PathBuf>, Error> {
    gw.recorder()
        .audit()
        .map(|a| vec![a.dir().to_path_buf()])
        .ok_or(Error::NoDecisionLog)
}

async fn blocking<F>(scan: F) -> Result<Reply, Error>
where
    F: FnOnce() -> Result<Value, report::Error> + Send + 'static,
{
    tokio::task::spawn_blocking(scan)
        .await
        .map_err(|e| Error::Internal(format!("the report task failed: {e}")))?
        .map(Reply::ok)
        .map_err(from)
}

fn from(e: report::Error) -> Error {
    match e {
        report::Error::Param(m) => Error::Invalid(m),
        report::Error::UnknownGrant(_) => Error::NotFound(e.to_string()),
        report::Error::Log(_) => Error::DecisionLog(e.to_string()),
    }
}
