//! Decide stage: writes the input document (ABI.md "Input", version 1), or
//! the part of it a module declared. Keys are written as literals and only
//! values are escaped: on a small module's decision the host's encoding is
//! a good part of the cost.

use serde::Serialize;
use serde_json::value::RawValue;

use super::fields::Fields;
use crate::config::RouteKind;
use crate::decide::DecisionInput;
use crate::identify::Identity;

/// What to write of a value: `None` all of it, or only these fields.
type Selection<'f> = Option<&'f Fields>;

/// Whether `key` is wanted under `selection`, and how much of it.
fn wanted<'f>(selection: Selection<'f>, key: &str) -> Option<Selection<'f>> {
    match selection {
        None => Some(None),
        Some(fields) => fields
            .get(key)
            .map(|sub| if sub.is_whole() { None } else { Some(sub) }),
    }
}

/// A JSON object being written: keys are trusted literals.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Writes `"key":` and hands out the buffer for the value.
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// Any serializable value, escaped as serde_json does.
fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing plain data into memory cannot fail; should it, the module
    // reads a malformed document and the call is denied (fail closed).
    let _ = serde_json::to_writer(out, value);
}

fn raw(out: &mut Vec<u8>, raw: Option<&RawValue>, absent: &[u8]) {
    out.extend_from_slice(raw.map_or(absent, |r| r.get().as_bytes()));
}

/// Writes the document for `selection` (`None`: the whole input).
pub(super) fn write(
    input: &DecisionInput<'_>,
    now_ms: &dyn Fn() -> u64,
    selection: Selection<'_>,
    out: &mut Vec<u8>,
) {
    let mut doc = Object::open(out);
    doc.key("version").push(b'1');
    if wanted(selection, "phase").is_some() {
        value(doc.key("phase"), input.phase.as_str());
    }
    if let Some(sub) = wanted(selection, "route") {
        let mut route = Object::open(doc.key("route"));
        if wanted(sub, "name").is_some() {
            value(route.key("name"), &input.route.name);
        }
        if wanted(sub, "kind").is_some() {
            let kind = match input.route.kind {
                RouteKind::Mcp => "mcp",
                RouteKind::Http => "http",
            };
            value(route.key("kind"), kind);
        }
        route.close();
    }
    if let Some(sub) = wanted(selection, "tool") {
        let mut tool = Object::open(doc.key("tool"));
        if wanted(sub, "name").is_some() {
            value(tool.key("name"), input.tool);
        }
        if wanted(sub, "arguments").is_some() {
            value(tool.key("arguments"), input.arguments);
        }
        tool.close();
    }
    if wanted(selection, "method").is_some() {
        value(doc.key("method"), input.method);
    }
    match wanted(selection, "identity") {
        None => {}
        // Whole: as serialized once per token.
        Some(None) => raw(doc.key("identity"), Some(input.identity.wire_json()), b""),
        Some(sub) => identity(doc.key("identity"), input.identity, sub),
    }
    // The task context arrives serialized: sent whole when anything in it is.
    let context = input.context;
    if wanted(selection, "task").is_some() {
        raw(doc.key("task"), context.task.get(), b"null");
    }
    if wanted(selection, "grants").is_some() {
        raw(doc.key("grants"), context.grants.as_deref(), b"[]");
    }
    if wanted(selection, "counters").is_some() {
        raw(doc.key("counters"), context.counters.get(), b"null");
    }
    if wanted(selection, "recent_calls").is_some() {
        raw(doc.key("recent_calls"), context.recent_calls.get(), b"[]");
    }
    if let Some(sub) = wanted(selection, "request") {
        let facts = input.request;
        let mut request = Object::open(doc.key("request"));
        if wanted(sub, "era").is_some() {
            value(request.key("era"), &facts.era);
        }
        if wanted(sub, "protocol_version").is_some() {
            value(request.key("protocol_version"), &facts.protocol_version);
        }
        if wanted(sub, "headers").is_some() {
            value(request.key("headers"), &Headers(&facts.headers));
        }
        request.close();
    }
    if let Some(sub) = wanted(selection, "time") {
        let mut time = Object::open(doc.key("time"));
        if wanted(sub, "unix_ms").is_some() {
            value(time.key("unix_ms"), &now_ms());
        }
        time.close();
    }
    doc.close();
}

/// The selected fields of the identity, as its `Serialize` writes them
/// whole (`identify::Identity`; the tests hold the two to each other, key
/// by key). Values inside `spiffe` and `delegation` are picked too; the
/// rest are sent whole.
fn identity(out: &mut Vec<u8>, identity: &Identity, selection: Selection<'_>) {
    let mut obj = Object::open(out);
    let workload = match identity {
        Identity::Anonymous => {
            if wanted(selection, "kind").is_some() {
                value(obj.key("kind"), "anonymous");
            }
            return obj.close();
        }
        Identity::Workload(workload) => workload,
    };
    if wanted(selection, "kind").is_some() {
        value(obj.key("kind"), "workload");
    }
    if wanted(selection, "subject").is_some() {
        value(obj.key("subject"), &workload.subject);
    }
    if wanted(selection, "issuer").is_some() {
        value(obj.key("issuer"), &workload.issuer);
    }
    match (wanted(selection, "spiffe"), &workload.spiffe) {
        (None, _) => {}
        (Some(_), None) => obj.key("spiffe").extend_from_slice(b"null"),
        (Some(None), Some(id)) => value(obj.key("spiffe"), id),
        (Some(sub), Some(id)) => {
            let mut spiffe = Object::open(obj.key("spiffe"));
            if wanted(sub, "id").is_some() {
                value(spiffe.key("id"), &id.to_string());
            }
            if wanted(sub, "trust_domain").is_some() {
                value(spiffe.key("trust_domain"), &id.trust_domain);
            }
            if wanted(sub, "path").is_some() {
                value(spiffe.key("path"), &id.path);
            }
            spiffe.close();
        }
    }
    if wanted(selection, "audience").is_some() {
        value(obj.key("audience"), &workload.audience);
    }
    if wanted(selection, "scopes").is_some() {
        value(obj.key("scopes"), &workload.scopes);
    }
    if wanted(selection, "expires_at").is_some() {
        value(obj.key("expires_at"), &workload.expires_at);
    }
    if wanted(selection, "claims").is_some() {
        value(obj.key("claims"), &workload.claims);
    }
    if let Some(sub) = wanted(selection, "delegation") {
        let delegation = &workload.delegation;
        let mut picked = Object::open(obj.key("delegation"));
        if wanted(sub, "user").is_some() {
            value(picked.key("user"), &delegation.user);
        }
        if wanted(sub, "agent").is_some() {
            value(picked.key("agent"), &delegation.agent);
        }
        if wanted(sub, "intermediaries").is_some() {
            value(picked.key("intermediaries"), &delegation.intermediaries);
        }
        picked.close();
    }
    if wanted(selection, "task_id").is_some() {
        value(obj.key("task_id"), &workload.task_id);
    }
    obj.close();
}

/// The selected request headers as a JSON object, without copying them.
struct Headers<'a>(&'a [(&'static str, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}
