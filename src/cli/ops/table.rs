//! Operator CLI, output building blocks: aligned tables, `key: value`
//! blocks, relative and absolute times. Every cell is made safe for a
//! terminal: agents choose some of these strings (tool names, arguments).

use std::fmt::Write as _;

use crate::store::Millis;

/// Longest a table cell gets before it is cut with `…`.
const MAX_CELL: usize = 48;

/// Columns of text, each as wide as its widest cell, two spaces apart.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| truncate(&clean(&c), MAX_CELL))
                .collect(),
        );
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, one line per row after the header line; trailing spaces trimmed.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned; `None` values are left out.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    lines: Vec<(&'static str, String)>,
}

impl Fields {
    pub(crate) fn add(&mut self, key: &'static str, value: impl Into<String>) {
        self.lines.push((key, clean(&value.into())));
    }

    pub(crate) fn add_opt(&mut self, key: &'static str, value: Option<impl Into<String>>) {
        if let Some(v) = value {
            self.add(key, v);
        }
    }

    pub(crate) fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.lines {
            let _ = writeln!(out, "{:<w$}  {value}", format!("{key}:"), w = width + 1);
        }
        out
    }
}

/// `at` relative to `now`: `"in 14m"`, `"3m ago"`, `"now"`.
pub(crate) fn relative(at: Millis, now: Millis) -> String {
    if at.abs_diff(now) < 1000 {
        return "now".to_owned();
    }
    if at > now {
        format!("in {}", span((at - now) / 1000))
    } else {
        format!("{} ago", span((now - at) / 1000))
    }
}

/// A span of seconds in at most two units: `45s`, `14m`, `2h5m`, `3d4h`.
pub(crate) fn span(secs: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;
    let two = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu}{small}{su}")
        }
    };
    match secs {
        s if s < MIN => format!("{s}s"),
        s if s < HOUR => format!("{}m", s / MIN),
        s if s < DAY => two(s / HOUR, "h", s % HOUR / MIN, "m"),
        s => two(s / DAY, "d", s % DAY / HOUR, "h"),
    }
}

/// `2026-01-02T15:04:05Z (in 14m)`.
pub(crate) fn when(at: Millis, now: Millis) -> String {
    format!(
        "{} ({})",
        crate::config::timestamp::rfc3339(at),
        relative(at, now)
    )
}

/// Control characters (escape sequences, newlines) shown escaped, never
/// sent to the terminal.
pub(crate) fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
