//! Record stage, on the writer thread: the `decision` line — nearly every
//! line of a busy log — written field by field, the same bytes serde_json
//! writes for it (`tests` compare the two), without serde's flattened-map
//! path and with one vectorizable scan per string instead of a table
//! lookup per byte. Every other kind goes through serde.

use std::borrow::Cow;

use serde_json::Value;

use super::super::line::{
    Arguments, DecisionLine, IdentityLine, LatencyLine, ModuleLine, TaskLine,
};

/// The head of a line: `v`, `seq`, `id`, `ts`.
pub(super) struct Head<'a> {
    pub(super) v: u32,
    pub(super) seq: u64,
    pub(super) id: &'a str,
    pub(super) ts: &'a str,
}

/// How many modules of a line [`Made`] holds parts for.
pub(super) const MADE_MODULES: usize = 8;

/// Parts of a decision line made earlier, byte for byte what this module
/// writes for them (they are made by the same functions: [`identity_json`],
/// [`task_json`], [`module_head`]), kept by the writer per workload, task
/// and loaded module so that most of a busy log's line is copied rather
/// than written field by field. `None`: written here.
#[derive(Debug, Default)]
pub(super) struct Made<'a> {
    pub(super) identity: Option<&'a [u8]>,
    pub(super) task: Option<&'a [u8]>,
    /// Module `i`'s `{"name":…,"version":…,"sha256":…` (no closing brace).
    pub(super) modules: [Option<&'a [u8]>; MADE_MODULES],
}

/// Appends `{"v":…,…,"kind":"decision",…,"prev":"…"}` (no hash, no
/// newline: `chain::seal_line` adds them).
pub(super) fn decision(
    buf: &mut Vec<u8>,
    head: &Head<'_>,
    d: &DecisionLine<'_>,
    made: &Made<'_>,
    prev: &str,
) {
    buf.extend_from_slice(b"{\"v\":");
    int(buf, u64::from(head.v));
    buf.extend_from_slice(b",\"seq\":");
    int(buf, head.seq);
    key_str(buf, "id", head.id);
    key_str(buf, "ts", head.ts);
    buf.extend_from_slice(b",\"kind\":\"decision\"");
    key_str(buf, "phase", &d.phase);
    key_str(buf, "route", &d.route);
    key_str(buf, "method", &d.method);
    key_str(buf, "tool", &d.tool);
    key(buf, "arguments");
    match &d.arguments {
        Arguments::Value(v) => value(buf, v),
        // serde_json's own output, on the request path: valid as it is.
        Arguments::Json(text) => buf.extend_from_slice(text.as_bytes()),
    }
    key(buf, "identity");
    match made.identity {
        Some(json) => buf.extend_from_slice(json),
        None => identity(buf, &d.identity),
    }
    if let Some(task) = &d.task {
        key(buf, "task");
        match made.task {
            Some(json) => buf.extend_from_slice(json),
            None => task_line(buf, task),
        }
    }
    if !d.grants.is_empty() {
        key(buf, "grants");
        str_list(buf, &d.grants);
    }
    opt_str(buf, "approval", d.approval.as_deref());
    opt_str(buf, "approver", d.approver.as_deref());
    if !d.modules.is_empty() {
        key(buf, "modules");
        buf.push(b'[');
        for (i, m) in d.modules.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            match made.modules.get(i).copied().flatten() {
                Some(json) => buf.extend_from_slice(json),
                None => module_head_into(buf, &m.name, &m.version, &m.sha256),
            }
            module_rest(buf, m);
        }
        buf.push(b']');
    }
    key_str(buf, "decision", &d.decision);
    key_str(buf, "reason", &d.reason);
    opt_str(buf, "message", d.message.as_deref());
    key(buf, "latency_us");
    latency(buf, &d.latency_us);
    if let Some(up) = &d.upstream {
        key(buf, "upstream");
        buf.push(b'{');
        let mut first = true;
        if let Some(status) = up.status {
            first_key(buf, &mut first, "status");
            int(buf, u64::from(status));
        }
        if let Some(error) = &up.error {
            first_key(buf, &mut first, "error");
            string(buf, error);
        }
        buf.push(b'}');
    }
    opt_str(buf, "trace_id", d.trace_id.as_deref());
    key_str(buf, "prev", prev);
    buf.push(b'}');
}

/// The `identity` object of a line, for [`Made::identity`].
pub(super) fn identity_json(id: &IdentityLine<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    identity(&mut buf, id);
    buf
}

/// The `task` object of a line, for [`Made::task`].
pub(super) fn task_json(t: &TaskLine<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    task_line(&mut buf, t);
    buf
}

/// A module line's start, for [`Made::modules`].
pub(super) fn module_head(name: &str, version: &str, sha256: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    module_head_into(&mut buf, name, version, sha256);
    buf
}

fn identity(buf: &mut Vec<u8>, id: &IdentityLine<'_>) {
    buf.extend_from_slice(b"{\"subject\":");
    string(buf, &id.subject);
    opt_str(buf, "issuer", id.issuer.as_deref());
    opt_str(buf, "user", id.user.as_deref());
    opt_str(buf, "agent", id.agent.as_deref());
    if !id.chain.is_empty() {
        key(buf, "chain");
        str_list(buf, &id.chain);
    }
    buf.push(b'}');
}

fn task_line(buf: &mut Vec<u8>, t: &TaskLine<'_>) {
    buf.extend_from_slice(b"{\"id\":");
    string(buf, &t.id);
    opt_str(buf, "purpose", t.purpose.as_deref());
    if !t.labels.is_empty() {
        key(buf, "labels");
        buf.push(b'{');
        for (i, (k, v)) in t.labels.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            string(buf, k);
            buf.push(b':');
            string(buf, v);
        }
        buf.push(b'}');
    }
    buf.push(b'}');
}

fn module_head_into(buf: &mut Vec<u8>, name: &str, version: &str, sha256: &str) {
    buf.extend_from_slice(b"{\"name\":");
    string(buf, name);
    key_str(buf, "version", version);
    key_str(buf, "sha256", sha256);
}

/// A module line after its head: verdict, reason, the closing brace.
fn module_rest(buf: &mut Vec<u8>, m: &ModuleLine<'_>) {
    key_str(buf, "verdict", &m.verdict);
    opt_str(buf, "reason", m.reason.as_deref());
    buf.push(b'}');
}

fn latency(buf: &mut Vec<u8>, l: &LatencyLine) {
    buf.extend_from_slice(b"{\"identify\":");
    int(buf, l.identify);
    buf.extend_from_slice(b",\"decide\":");
    int(buf, l.decide);
    if let Some(up) = l.upstream {
        buf.extend_from_slice(b",\"upstream\":");
        int(buf, up);
    }
    buf.extend_from_slice(b",\"total\":");
    int(buf, l.total);
    buf.push(b'}');
}

fn str_list(buf: &mut Vec<u8>, items: &[Cow<'_, str>]) {
    buf.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, s);
    }
    buf.push(b']');
}

/// `,"name":` — every key here follows another member.
fn key(buf: &mut Vec<u8>, name: &str) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// A key inside an object whose members are all optional.
fn first_key(buf: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !std::mem::take(first) {
        buf.push(b',');
    }
    buf.push(b'"');
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\":");
}

fn key_str(buf: &mut Vec<u8>, name: &str, s: &str) {
    key(buf, name);
    string(buf, s);
}

fn opt_str(buf: &mut Vec<u8>, name: &str, s: Option<&str>) {
    if let Some(s) = s {
        key_str(buf, name, s);
    }
}

fn int(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Arguments: any JSON, through serde_json.
fn value(buf: &mut Vec<u8>, v: &Value) {
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, v);
}

/// A JSON string: copied as it is when nothing in it needs escaping (the
/// usual case: ids, names, codes), else escaped by serde_json.
fn string(buf: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        let _ = serde_json::to_writer(&mut *buf, s);
    } else {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    }
}

/// Whether serde_json would escape any byte of `b`: `"`, `\` or a control
/// character below 0x20.
pub(crate) fn needs_escape(b: &[u8]) -> bool {
    any_byte(b, |c| c < 0x20 || c == b'"' || c == b'\\')
}

/// Whether `odd` holds for any byte of `b`. Whole chunks are scanned
/// without an early exit, which the compiler turns into vector compares
/// (an early exit per byte it cannot vectorize).
#[inline]
pub(crate) fn any_byte(b: &[u8], odd: impl Fn(u8) -> bool) -> bool {
    let mut chunks = b.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |any, &c| any | odd(c)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| odd(c))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::super::super::line::{Body, Line, UpstreamLine};
    use super::*;

    fn serde_bytes(head: &Head<'_>, d: &DecisionLine<'_>, prev: &str) -> Vec<u8> {
        let line = Line {
            v: head.v,
            seq: head.seq,
            id: Cow::Borrowed(head.id),
            ts: Cow::Borrowed(head.ts),
            body: Body::Decision(Box::new(d.clone())),
            prev: Cow::Borrowed(prev),
            hash: String::new(),
        };
        serde_json::to_vec(&line).unwrap()
    }

    fn fast_bytes(head: &Head<'_>, d: &DecisionLine<'_>, made: &Made<'_>, prev: &str) -> Vec<u8> {
        let mut buf = b"earlier line\n".to_vec();
        decision(&mut buf, head, d, made, prev);
        buf.split_off(13)
    }

    fn s(text: &str) -> Cow<'static, str> {
        Cow::Owned(text.to_owned())
    }

    /// Strings that need escaping, or not, at every place in a chunk.
    const AWKWARD: [&str; 8] = [
        "",
        "plain",
        "quote \" inside",
        "back\\slash",
        "0123456789abcdef0123456789abcde\n",
        "tab\tand \u{1} and \u{1f}",
        "unicode é — 漢字 🦀 and / and \u{7f}",
        "a long plain string of more than sixteen bytes, with no escapes",
    ];

    fn line(i: usize) -> DecisionLine<'static> {
        let pick = |k: usize| s(AWKWARD[(i + k) % AWKWARD.len()]);
        let some = |k: usize| !(i + k).is_multiple_of(3);
        DecisionLine {
            phase: s("call"),
            route: pick(0),
            method: s("tools/call"),
            tool: pick(1),
            arguments: {
                let v = json!({"text": AWKWARD[i % 8], "n": i, "nested": {"x": [1, null, true]}});
                // Both forms the writer gets: a value (masked) and text.
                if i.is_multiple_of(2) {
                    Arguments::Value(Cow::Owned(v))
                } else {
                    Arguments::Json(Cow::Owned(v.to_string()))
                }
            },
            identity: IdentityLine {
                subject: pick(2),
                issuer: some(1).then(|| pick(3)),
                user: some(2).then(|| pick(4)),
                agent: some(3).then(|| pick(5)),
                chain: if some(4) {
                    vec![pick(6), pick(7)]
                } else {
                    vec![]
                },
            },
            task: some(5).then(|| TaskLine {
                id: pick(1),
                purpose: some(6).then(|| pick(2)),
                labels: Cow::Owned(if some(7) {
                    BTreeMap::from([
                        (
                            AWKWARD[(i + 3) % 8].to_owned(),
                            AWKWARD[(i + 4) % 8].to_owned(),
                        ),
                        ("zz".to_owned(), AWKWARD[(i + 5) % 8].to_owned()),
                    ])
                } else {
                    BTreeMap::new()
                }),
            }),
            grants: if some(8) { vec![pick(3)] } else { vec![] },
            approval: some(9).then(|| pick(4)),
            approver: some(10).then(|| pick(5)),
            modules: (0..i % 3)
                .map(|k| ModuleLine {
                    name: pick(k),
                    version: s("0.1.0"),
                    sha256: s("dea943f91623"),
                    verdict: s("allow"),
                    reason: some(k + 11).then(|| pick(k + 6)),
                })
                .collect(),
            decision: s("allow"),
            reason: s("policy_allow"),
            message: some(12).then(|| pick(7)),
            latency_us: LatencyLine {
                identify: i as u64,
                decide: u64::MAX - i as u64,
                upstream: some(13).then_some(0),
                total: 1_000_000 + i as u64,
            },
            upstream: some(14).then(|| UpstreamLine {
                status: some(15).then_some(200),
                error: some(16).then(|| pick(2)),
            }),
            trace_id: some(17).then(|| pick(0)),
        }
    }

    #[test]
    fn writes_the_same_bytes_as_serde_for_every_shape_of_line() {
        for i in 0..240 {
            let d = line(i);
            let head = Head {
                v: 1,
                seq: i as u64 * 7919,
                id: "01a24935-d7ee-7000-9615-d7f1bd296744",
                ts: AWKWARD[i % 8],
            };
            let prev = AWKWARD[(i + 1) % 8];
            let ours = fast_bytes(&head, &d, &Made::default(), prev);
            let theirs = serde_bytes(&head, &d, prev);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "line {i}"
            );
            // With the parts made beforehand (every one, or only some), the same.
            let identity = identity_json(&d.identity);
            let task = d.task.as_ref().map(task_json);
            let heads: Vec<Vec<u8>> = d
                .modules
                .iter()
                .map(|m| module_head(&m.name, &m.version, &m.sha256))
                .collect();
            let mut made = Made {
                identity: Some(&identity),
                task: task.as_deref(),
                ..Made::default()
            };
            for (k, h) in heads.iter().enumerate() {
                made.modules[k] = (i + k).is_multiple_of(2).then_some(h.as_slice());
            }
            let with_made = fast_bytes(&head, &d, &made, prev);
            assert_eq!(
                String::from_utf8_lossy(&with_made),
                String::from_utf8_lossy(&theirs),
                "line {i}, parts made before"
            );
            // And it reads back as the line it was.
            let back: Line<'static> = serde_json::from_slice(&ours).unwrap();
            assert_eq!(back.body, Body::Decision(Box::new(d)));
        }
    }

    #[test]
    fn the_escape_scan_finds_a_bad_byte_anywhere() {
        for len in 0..48 {
            let plain = vec![b'a'; len];
            assert!(!needs_escape(&plain));
            for at in 0..len {
                for bad in [b'"', b'\\', 0, 0x1f] {
                    let mut b = plain.clone();
                    b[at] = bad;
                    assert!(needs_escape(&b), "len {len} at {at} byte {bad}");
                }
            }
        }
        assert!(!needs_escape("é 漢 \u{7f} /".as_bytes()));
    }
}
