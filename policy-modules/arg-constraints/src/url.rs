//! `url_hosts`: a URL argument must be `http(s)` to an allowed host.
//!
//! The parse is strict on purpose: anything two URL parsers might read
//! differently (userinfo, backslashes, whitespace, percent-encoding or
//! non-ASCII in the host, numeric hosts in short or octal form) is refused
//! rather than guessed at, so the host checked is the host fetched.

/// One `url_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// `api.github.com`, or an IP literal (`10.0.0.5`, `[::1]`).
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: any name below it, not the
    /// name itself, and never an IP literal.
    Below(String),
}

/// A URL's host, lower-case, without brackets or a trailing dot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Host {
    name: String,
    is_ip: bool,
}

impl HostPattern {
    /// Reads a config entry.
    pub(crate) fn parse(entry: &str) -> Result<Self, String> {
        let mut entry = entry.to_ascii_lowercase();
        if entry.contains('/') {
            return Err(format!("{entry:?}: list a host name, not a URL"));
        }
        if entry.contains(':') && !entry.starts_with('[') {
            // A bare IPv6 address; URLs always bracket it.
            entry = format!("[{entry}]");
        }
        if let Some(suffix) = entry.strip_prefix("*.") {
            let host = parse_host(suffix).map_err(|e| format!("{entry:?}: {e}"))?;
            if host.is_ip {
                return Err(format!("{entry:?}: a wildcard cannot cover IP addresses"));
            }
            return Ok(Self::Below(format!(".{}", host.name)));
        }
        let host = parse_host(&entry).map_err(|e| format!("{entry:?}: {e}"))?;
        Ok(Self::Exact(host.name))
    }

    /// Whether the pattern allows this host.
    pub(crate) fn allows(&self, host: &Host) -> bool {
        match self {
            Self::Exact(name) => *name == host.name,
            Self::Below(suffix) => {
                !host.is_ip
                    && host.name.len() > suffix.len()
                    && host.name.ends_with(suffix.as_str())
            }
        }
    }
}

/// The host of an absolute `http`/`https` URL.
pub(crate) fn host_of(url: &str) -> Result<Host, String> {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("URL contains whitespace or control characters".into());
    }
    if url.contains('\\') {
        return Err("URL contains a backslash".into());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "URL is not absolute (scheme://host)".to_owned())?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("URL scheme {scheme:?} is not http or https"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("URL contains userinfo (user@host)".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (v6, after) = bracketed
                .split_once(']')
                .ok_or_else(|| "URL has an unclosed IPv6 bracket".to_owned())?;
            check_port(after.strip_prefix(':'), after.is_empty())?;
            format!("[{v6}]")
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            check_port(port, port.is_none())?;
            host.to_owned()
        }
    };
    parse_host(&host.to_ascii_lowercase())
}

/// A port, if present, is 1–5 digits.
fn check_port(port: Option<&str>, absent: bool) -> Result<(), String> {
    match port {
        None if absent => Ok(()),
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err("URL has an invalid port".into()),
    }
}

/// Checks a lower-case host: a DNS name, dotted-decimal IPv4 or `[IPv6]`.
fn parse_host(host: &str) -> Result<Host, String> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("host is not an IPv6 address".into());
        }
        return Ok(Host {
            name: format!("[{v6}]"),
            is_ip: true,
        });
    }
    // DNS treats `example.com.` as `example.com`.
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err("URL has no host".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err("host has characters other than letters, digits, '.' and '-'".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err("host has an empty label".into());
    }
    // WHATWG URL parsers read a host whose last label is numeric as IPv4,
    // in any of several forms (`2130706433`, `0x7f.1`, `0177.0.0.1`).
    let last = labels.last().copied().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    if numeric {
        let canonical = labels.len() == 4
            && labels
                .iter()
                .all(|l| l.parse::<u8>().is_ok() && (l.len() == 1 || !l.starts_with('0')));
        if !canonical {
            return Err("host is an IPv4 address in a non-canonical form".into());
        }
    }
    Ok(Host {
        name: name.to_owned(),
        is_ip: numeric,
    })
}

#[cfg(test)]
mod tests;
