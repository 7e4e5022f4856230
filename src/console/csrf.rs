//! Operator console, whether a change comes from the console's own page:
//! the browser must say the request is same-origin (`Sec-Fetch-Site`, or
//! failing that an `Origin` equal to the listener's own), and the form must
//! carry the session's synchronizer token (compared in constant time). A
//! request that says neither where it comes from is refused: fail closed.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use http::header::{HOST, ORIGIN};
use http::request::Parts;

use super::Error;

/// The header modern browsers send on every request.
const FETCH_SITE: &str = "sec-fetch-site";

/// Checks a change: same origin, and `sent` equal to `expected`.
pub(crate) fn check(
    head: &Parts,
    tls: bool,
    sent: Option<&str>,
    expected: &str,
) -> Result<(), Error> {
    same_origin(head, tls)?;
    token(sent, expected)
}

/// The request comes from a page of this listener.
pub(crate) fn same_origin(head: &Parts, tls: bool) -> Result<(), Error> {
    let site = head
        .headers
        .get(FETCH_SITE)
        .map(|v| v.to_str().unwrap_or(""));
    let origin = head.headers.get(ORIGIN).map(|v| v.to_str().unwrap_or(""));
    if let Some(site) = site
        && site != "same-origin"
    {
        return Err(Error::Csrf(
            "the request did not come from a console page (Sec-Fetch-Site)",
        ));
    }
    match origin {
        Some(origin) if Some(origin.to_ascii_lowercase()) != own_origin(head, tls) => {
            Err(Error::Csrf("the request's Origin is not this console's"))
        }
        Some(_) => Ok(()),
        None if site.is_some() => Ok(()),
        None => Err(Error::Csrf(
            "the request says neither its Origin nor Sec-Fetch-Site; the console takes changes only from its own pages",
        )),
    }
}

/// The form's token against the session's.
pub(crate) fn token(sent: Option<&str>, expected: &str) -> Result<(), Error> {
    let sent = sent.ok_or(Error::Csrf(
        "the form carries no CSRF token; reload the page",
    ))?;
    verify_slices_are_equal(sent.as_bytes(), expected.as_bytes())
        .map_err(|_| Error::Csrf("the form's CSRF token is not this session's; reload the page"))
}

/// `http[s]://host[:port]` of this listener as the browser sees it.
fn own_origin(head: &Parts, tls: bool) -> Option<String> {
    let host = head
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| head.uri.authority().map(|a| a.as_str().to_owned()))?;
    let scheme = if tls { "https" } else { "http" };
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}
