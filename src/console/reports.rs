//! Operator console, denials and drift — TO BE FILLED with the decision-log
//! reports of issue 9 (denials by tool, reason, subject and label over
//! time; unused grants; links from a denial to its decision record and
//! from a grant to its trace). The navigation entry, the route
//! (`GET /console/reports`), the template (`templates/console/reports.html`)
//! and the page frame are in place: read the reports through the admin API
//! as `session.operator` (like `tasks.rs` does), add their rows to
//! [`ReportsPage`] and render them as tables and simple CSS bar charts (no
//! inline styles: the CSP forbids them; use classes from `console.css`).

use askama::Template;
use http::{Response, StatusCode};

use super::page::{self, Chrome};
use super::session::Session;
use super::{Ctx, Error};
use crate::Body;

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    chrome: Chrome,
}

/// `GET /console/reports`.
pub(crate) fn page(ctx: &Ctx, session: &Session) -> Result<Response<Body>, Error> {
    let page = ReportsPage {
        chrome: Chrome::new(ctx, session, "reports"),
    };
    page::html(StatusCode::OK, &page)
}
