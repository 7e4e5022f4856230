//! Start-up stage: parse a config file section by section so that one bad
//! route does not hide the errors of the next, then run the semantic checks.
//! Every problem becomes a [`Diagnostic`] with a line and column.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Admin, Config, Issuer, Limits, Policy, Route, Server, validate};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the document, e.g. `routes[1].upstream` (empty for syntax errors).
    pub path: String,
    /// 1-based line and column, when known.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in one file, in document order.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub origin: String,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            write!(f, "{}:{}:{}: ", self.origin, d.line, d.column)?;
            if !d.path.is_empty() {
                write!(f, "{}: ", d.path)?;
            }
            writeln!(f, "{}", d.message)?;
        }
        write!(f, "{} error(s) in {}", self.items.len(), self.origin)
    }
}

impl std::error::Error for Diagnostics {}

/// Reads and checks a config file. Relative paths inside it are resolved
/// against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    let origin = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| Diagnostics {
        origin: origin.clone(),
        items: vec![Diagnostic {
            path: String::new(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
        }],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&source, &origin, &base)
}

/// Parses and checks config text; `base_dir` anchors relative file paths.
pub fn load_str(source: &str, origin: &str, base_dir: &Path) -> Result<Config, Diagnostics> {
    let mut sink = Sink {
        source,
        items: Vec::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(source);
    for e in syntax {
        sink.at(e.span(), "", e.message());
    }
    if !sink.items.is_empty() {
        // The document's structure is unreliable past a syntax error.
        return Err(sink.finish(origin));
    }
    let root = root.into_inner();
    // Where each parsed route stands in the document: a route that failed to
    // parse is skipped, and later errors must still name the right table.
    let mut positions: Vec<usize> = Vec::new();
    let mut issuer_positions: Vec<usize> = Vec::new();
    let mut policy_positions: Vec<usize> = Vec::new();
    let mut config = Config {
        server: Server::default(),
        admin: Admin::default(),
        limits: Limits::default(),
        issuers: Vec::new(),
        policy_limits: super::PolicyLimits::default(),
        policies: Vec::new(),
        routes: Vec::new(),
        tasks: super::Tasks::default(),
        approvals: super::Approvals::default(),
        audit: None,
    };
    for (key, value) in root.iter() {
        match key.get_ref().as_ref() {
            "server" => sink.section(value, "server").map(|v| config.server = v),
            "admin" => sink.section(value, "admin").map(|v| config.admin = v),
            "limits" => sink.section(value, "limits").map(|v| config.limits = v),
            "tasks" => sink.section(value, "tasks").map(|v| config.tasks = v),
            "approvals" => sink
                .section(value, "approvals")
                .map(|v| config.approvals = v),
            "audit" => sink.section(value, "audit").map(|v| config.audit = Some(v)),
            "policy_limits" => sink
                .section(value, "policy_limits")
                .map(|v| config.policy_limits = v),
            "policies" => tables::<Policy>(value, "policies", &mut sink).map(|(v, at)| {
                config.policies = v;
                policy_positions = at;
            }),
            "issuers" => tables::<Issuer>(value, "issuers", &mut sink).map(|(v, at)| {
                config.issuers = v;
                issuer_positions = at;
            }),
            "routes" => tables::<Route>(value, "routes", &mut sink).map(|(v, at)| {
                config.routes = v;
                positions = at;
            }),
            other => {
                sink.at(
                    Some(key.span()),
                    other,
                    "unknown top-level key (expected one of: server, admin, limits, issuers, policy_limits, policies, routes, tasks, approvals, audit)",
                );
                None
            }
        };
    }
    let declared = root
        .get("routes")
        .is_some_and(|r| !matches!(r.get_ref(), DeValue::Array(a) if a.is_empty()));
    if !declared {
        sink.at(
            Some(0..0),
            "routes",
            "no routes: add at least one [[routes]] table",
        );
    }
    // A key that did not parse is not reported again as missing or wrong
    // by the checks of what remains.
    let failed: Vec<String> = sink.items.iter().map(|d| d.path.clone()).collect();
    // Names are checked on the document itself, so that a table that did
    // not parse still counts: its duplicate is not hidden behind its errors.
    for (array, field, what) in [
        ("routes", "name", "route name"),
        ("routes", "path", "route path"),
        ("issuers", "name", "issuer name"),
        ("policies", "name", "policy name"),
    ] {
        duplicates(&root, array, field, what, &mut sink);
    }
    let config = super::paths::resolve(config, base_dir);
    let resolve = |path: &str| locate(&root, path);
    let at = validate::Positions {
        routes: positions,
        issuers: issuer_positions,
        policies: policy_positions,
    };
    validate::check(&config, &at, &mut |path, message| {
        if !failed.iter().any(|f| under(path, f)) {
            let span = resolve(path);
            sink.at(span, path, &message);
        }
    });
    if sink.items.is_empty() {
        Ok(config)
    } else {
        Err(sink.finish(origin))
    }
}

/// An array of tables (`[[routes]]`, `[[issuers]]`), each parsed on its own;
/// also returns where each parsed table stands in the document.
fn tables<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    key: &str,
    sink: &mut Sink<'_>,
) -> Option<(Vec<T>, Vec<usize>)> {
    let DeValue::Array(items) = value.get_ref() else {
        sink.at(
            Some(value.span()),
            key,
            &format!("must be an array of tables: write each as [[{key}]]"),
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(parsed) = sink.section::<T>(item, &format!("{key}[{i}]")) {
            out.push(parsed);
            positions.push(i);
        }
    }
    Some((out, positions))
}

/// Reports every table of `array` whose `field` repeats an earlier one's.
fn duplicates(root: &DeTable<'_>, array: &str, field: &str, what: &str, sink: &mut Sink<'_>) {
    let Some(DeValue::Array(items)) = root.get(array).map(Spanned::get_ref) else {
        return;
    };
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some((_, value)) = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get_key_value(field))
        else {
            continue;
        };
        let Some(text) = value.get_ref().as_str() else {
            continue;
        };
        let text = text.trim_end_matches('/');
        let text = if text.is_empty() { "/" } else { text };
        match seen.iter().find(|(s, _)| s == text) {
            Some((_, first)) => sink.at(
                Some(value.span()),
                &format!("{array}[{i}].{field}"),
                &format!("duplicate {what} {text:?} (also {array}[{first}])"),
            ),
            None => seen.push((text.to_owned(), i)),
        }
    }
}

/// Whether `path` is `parent` or lies under it (`routes[1]` holds
/// `routes[1].name`, not `routes[10]`).
fn under(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Finds the span of a dotted path such as `routes[2].upstream_auth.value`,
/// falling back to the nearest enclosing item that exists.
fn locate(root: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let mut table = root;
    let mut found = None;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(item) = table.get(name) else {
            return found;
        };
        let mut item = item;
        if let (Some(i), DeValue::Array(arr)) = (index, item.get_ref()) {
            match arr.get(i) {
                Some(el) => item = el,
                None => return Some(item.span()),
            }
        }
        found = Some(item.span());
        match item.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return found,
        }
    }
    found
}

struct Sink<'s> {
    source: &'s str,
    items: Vec<Diagnostic>,
}

impl Sink<'_> {
    fn at(&mut self, span: Option<Range<usize>>, path: &str, message: &str) {
        let (line, column) = span.map_or((0, 0), |s| line_col(self.source, s.start));
        self.items.push(Diagnostic {
            path: path.to_owned(),
            line,
            column,
            message: message.trim().to_owned(),
        });
    }

    /// Parses one section, reporting each of its problems.
    fn section<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
    ) -> Option<T> {
        let parsed = super::peel::section::<T>(value, path);
        for p in parsed.problems {
            self.at(p.span, &p.path, &p.message);
        }
        parsed.value
    }

    fn finish(mut self, origin: &str) -> Diagnostics {
        self.items.sort_by_key(|d| (d.line, d.column));
        Diagnostics {
            origin: origin.to_owned(),
            items: self.items,
        }
    }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
