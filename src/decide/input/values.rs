//! Decide stage: the values form of the input (policy-modules/ABI.md
//! "Values form") — each declared field's value in declaration order, for
//! modules that asked for it. The common fields are written straight from
//! the decision input; any other is read from the document trimmed to it.

use serde_json::Value;

use super::fields::Fields;
use super::wire;
use crate::config::RouteKind;
use crate::decide::DecisionInput;
use crate::identify::Identity;

/// The first bytes of the values form: a zero byte (no JSON document starts
/// with one), then the form's version.
const HEADER: [u8; 2] = [0, 1];
/// Most fields a module may ask for in the values form.
pub(super) const MAX_FIELDS: usize = 32;

const ABSENT: u8 = 0;
const NULL: u8 = 1;
const STRING: u8 = 2;
const JSON: u8 = 3;

/// Where one declared field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Leaf {
    Version,
    Phase,
    RouteName,
    RouteKind,
    ToolName,
    Method,
    IdentityKind,
    IdentitySubject,
    IdentityIssuer,
    IdentityTrustDomain,
    IdentityPath,
    ToolArguments,
    Grants,
    TimeUnixMs,
    /// Anything else: read from the document trimmed to this one field.
    Other {
        pointer: String,
        fields: Fields,
    },
}

impl Leaf {
    /// The source of the value at `pointer` (whose unescaped steps are `steps`).
    pub(super) fn resolve(pointer: &str, steps: &[String], fields: Fields) -> Self {
        let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
        match steps.as_slice() {
            ["version"] => Self::Version,
            ["phase"] => Self::Phase,
            ["route", "name"] => Self::RouteName,
            ["route", "kind"] => Self::RouteKind,
            ["tool", "name"] => Self::ToolName,
            ["method"] => Self::Method,
            ["identity", "kind"] => Self::IdentityKind,
            ["identity", "subject"] => Self::IdentitySubject,
            ["identity", "issuer"] => Self::IdentityIssuer,
            ["identity", "spiffe", "trust_domain"] => Self::IdentityTrustDomain,
            ["identity", "spiffe", "path"] => Self::IdentityPath,
            ["tool", "arguments"] => Self::ToolArguments,
            ["grants"] => Self::Grants,
            ["time", "unix_ms"] => Self::TimeUnixMs,
            _ => Self::Other {
                pointer: pointer.to_owned(),
                fields,
            },
        }
    }
}

/// Writes the values form of `input` for `leaves`.
pub(super) fn write(
    input: &DecisionInput<'_>,
    now_ms: &dyn Fn() -> u64,
    leaves: &[Leaf],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&HEADER);
    let workload = match input.identity {
        Identity::Anonymous => None,
        Identity::Workload(workload) => Some(&**workload),
    };
    let spiffe = workload.and_then(|w| w.spiffe.as_ref());
    for leaf in leaves {
        match leaf {
            Leaf::Version => entry(out, JSON, b"1"),
            Leaf::Phase => string(out, Some(input.phase.as_str())),
            Leaf::RouteName => string(out, Some(&input.route.name)),
            Leaf::RouteKind => string(
                out,
                Some(match input.route.kind {
                    RouteKind::Mcp => "mcp",
                    RouteKind::Http => "http",
                }),
            ),
            Leaf::ToolName => string(out, Some(input.tool)),
            Leaf::Method => string(out, Some(input.method)),
            Leaf::IdentityKind => string(
                out,
                Some(if workload.is_some() {
                    "workload"
                } else {
                    "anonymous"
                }),
            ),
            Leaf::IdentitySubject => string(out, workload.map(|w| w.subject.as_str())),
            Leaf::IdentityIssuer => string(out, workload.map(|w| w.issuer.as_str())),
            Leaf::IdentityTrustDomain => string(out, spiffe.map(|s| s.trust_domain.as_str())),
            Leaf::IdentityPath => string(out, spiffe.map(|s| s.path.as_str())),
            Leaf::ToolArguments => value(out, Some(input.arguments)),
            // The task's grants as the document carries them: already JSON.
            Leaf::Grants => entry(
                out,
                JSON,
                input
                    .context
                    .grants
                    .as_deref()
                    .map_or("[]", |g| g.get())
                    .as_bytes(),
            ),
            Leaf::TimeUnixMs => entry(out, JSON, itoa::Buffer::new().format(now_ms()).as_bytes()),
            Leaf::Other { pointer, fields } => {
                let mut doc = Vec::new();
                wire::write(input, now_ms, Some(fields), &mut doc);
                // The host's own JSON always parses; if it did not, the
                // field reads as absent and the module decides without it.
                let doc: Value = serde_json::from_slice(&doc).unwrap_or_default();
                value(out, doc.pointer(pointer));
            }
        }
    }
}

/// The values form of a whole input document (a test vector's): the value
/// at each pointer, or absent.
pub(super) fn encode(input: &Value, pointers: &[String]) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    for pointer in pointers {
        value(&mut out, input.pointer(pointer));
    }
    out
}

fn value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        None => out.push(ABSENT),
        Some(Value::Null) => out.push(NULL),
        Some(Value::String(s)) => entry(out, STRING, s.as_bytes()),
        Some(other) => entry(out, JSON, other.to_string().as_bytes()),
    }
}

/// A string field; `None` when there is nothing at its pointer.
fn string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(ABSENT),
        Some(text) => entry(out, STRING, text.as_bytes()),
    }
}

fn entry(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    // Inputs are far below 4 GiB (request bodies are capped); saturating
    // keeps a malformed length from wrapping into a short one.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.push(tag);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}
