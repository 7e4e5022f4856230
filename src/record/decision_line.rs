//! Record stage: the format of the per-call decision lines
//! (`toolgate::decision::*`), the one `tracing` line every call writes. It
//! writes what tracing-subscriber's own text and JSON formats write for
//! them — the same bytes, compared in `tests` — with one scan per field
//! value instead of `Debug`-formatting it character by character and
//! painting styles that are off. Any other line, a field that is not a
//! string (or is a `message`), or a terminal that takes colours goes to
//! tracing-subscriber's formatter unchanged.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target prefix of the lines written here.
const TARGET: &str = "toolgate::decision";

/// The event format: decision lines here, the rest by `inner`.
#[derive(Debug)]
pub struct DecisionLines<F> {
    inner: F,
    json: bool,
}

impl<F> DecisionLines<F> {
    /// Decision lines in the text format, the rest by `inner` (the text
    /// format of tracing-subscriber, `fmt::format()`).
    pub fn text(inner: F) -> Self {
        Self { inner, json: false }
    }

    /// Decision lines in the JSON format (flattened fields), the rest by
    /// `inner` (`fmt::format().json().flatten_event(true)`).
    pub fn json(inner: F) -> Self {
        Self { inner, json: true }
    }
}

thread_local! {
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N, F> FormatEvent<S, N> for DecisionLines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ours = meta.target().starts_with(TARGET)
            && !writer.has_ansi_escapes()
            && ctx.lookup_current().is_none()
            && event.parent().is_none();
        if ours {
            let written = SCRATCH.try_with(|scratch| {
                let Ok(mut line) = scratch.try_borrow_mut() else {
                    return None;
                };
                line.clear();
                self.line(&mut line, meta.level(), meta.target(), event)
                    .then(|| writer.write_str(&line))
            });
            if let Ok(Some(result)) = written {
                #[cfg(test)]
                tests::FAST.with(|n| n.set(n.get() + 1));
                return result;
            }
        }
        self.inner.format_event(ctx, writer, event)
    }
}

impl<F> DecisionLines<F> {
    /// Writes the line into `out`; false (and `out` left to be cleared) if
    /// the event has a field this format does not write.
    fn line(&self, out: &mut String, level: &Level, target: &str, event: &Event<'_>) -> bool {
        // The timestamp (digits, `-`, `:`, `.`, `T`, `Z`) needs no escaping.
        if self.json {
            out.push_str("{\"timestamp\":\"");
        }
        if SystemTime.format_time(&mut Writer::new(out)).is_err() {
            return false;
        }
        if self.json {
            out.push_str("\",\"level\":\"");
            out.push_str(level.as_str());
            out.push('"');
        } else {
            out.push(' ');
            out.push_str(level_text(level));
            out.push(' ');
            out.push_str(target);
            out.push_str(": ");
        }
        let mut fields = Fields {
            out,
            json: self.json,
            first: true,
            ok: true,
        };
        event.record(&mut fields);
        if !fields.ok {
            return false;
        }
        if self.json {
            out.push_str(",\"target\":");
            json_str(out, target);
            out.push('}');
        }
        out.push('\n');
        true
    }
}

/// The level as the text format pads it.
fn level_text(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// Writes an event's string fields; anything else marks it not ours.
struct Fields<'o> {
    out: &'o mut String,
    json: bool,
    first: bool,
    ok: bool,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if !self.ok || name == "message" || name.starts_with("r#") || name.starts_with("log.") {
            self.ok = false;
            return;
        }
        if self.json {
            self.out.push(',');
            json_str(self.out, name);
            self.out.push(':');
            json_str(self.out, value);
        } else {
            if !std::mem::take(&mut self.first) {
                self.out.push(' ');
            }
            self.out.push_str(name);
            self.out.push('=');
            debug_str(self.out, value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {
        self.ok = false;
    }
}

/// `value` as `{:?}` writes it: quoted, copied as it is when it holds only
/// printable ASCII other than `"` and `\`.
fn debug_str(out: &mut String, value: &str) {
    if plain_ascii(value.as_bytes()) {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Whether every byte of `b` is printable ASCII other than `"` and `\`
/// (`{:?}` copies such a string as it is).
fn plain_ascii(b: &[u8]) -> bool {
    !crate::audit::any_byte(b, |c| !(0x20..0x7f).contains(&c) || c == b'"' || c == b'\\')
}

/// `value` as a JSON string, as serde_json writes it (the decision log's
/// escape scan decides whether it can be copied as it is).
fn json_str(out: &mut String, value: &str) {
    if !crate::audit::json_needs_escape(value.as_bytes()) {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else if let Ok(quoted) = serde_json::to_string(value) {
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    thread_local! {
        /// Lines this thread wrote by the fast path.
        pub(super) static FAST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(data)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// Values that are plain, need escaping in one format, or in both.
    const VALUES: [&str; 7] = [
        "open",
        "spiffe://toolgate.dev/agent/bench",
        "it's \"quoted\" and back\\slashed",
        "line\nbreak\tand \u{1b}[31m escape",
        "unicode é — 漢字 🦀",
        "del \u{7f} and zero-width \u{200b} joiner",
        "",
    ];

    /// Emits decision-like events (and one not ours) under a subscriber.
    fn emit() {
        for (i, v) in VALUES.iter().enumerate() {
            let other = VALUES[(i + 1) % VALUES.len()];
            let maybe = (i % 2 == 0).then_some(other);
            tracing::info!(
                target: "toolgate::decision::allow",
                route = *v,
                phase = "call",
                tool = other,
                decision = "allow",
                task = maybe,
                trace_id = (i % 3 == 0).then_some("4bf92f3577b34da6a3ce929d0e0e4736"),
            );
            tracing::debug!(target: "toolgate::decision::deny", route = *v, message = other);
            tracing::warn!(target: "toolgate::decision::deny", route = *v, count = i);
            tracing::info!(target: "toolgate::gateway", route = *v, "not a decision");
        }
    }

    fn output(json: bool, ours: bool) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_writer(buf.clone())
            .with_ansi(false);
        if json {
            let builder = builder.json().flatten_event(true);
            if ours {
                let format = tracing_subscriber::fmt::format().json().flatten_event(true);
                tracing::subscriber::with_default(
                    builder.event_format(DecisionLines::json(format)).finish(),
                    emit,
                );
            } else {
                tracing::subscriber::with_default(builder.finish(), emit);
            }
        } else if ours {
            let format = tracing_subscriber::fmt::format();
            tracing::subscriber::with_default(
                builder.event_format(DecisionLines::text(format)).finish(),
                emit,
            );
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        without_times(&text)
    }

    /// The output with every timestamp (`2026-12-06T03:25:04.123456Z`)
    /// replaced by `T`: the two formatters read the clock at different
    /// times. Counts them too, one a line.
    fn without_times(text: &str) -> String {
        const SHAPE: &[u8; 27] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
        let fits = |w: &[u8]| {
            w.iter().zip(SHAPE).all(|(c, s)| match s {
                b'd' => c.is_ascii_digit(),
                s => c == s,
            })
        };
        let b = text.as_bytes();
        let (mut out, mut at) = (Vec::new(), 0);
        while at < b.len() {
            if b.len() - at >= 27 && fits(&b[at..at + 27]) {
                out.push(b'T');
                at += 27;
            } else {
                out.push(b[at]);
                at += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decision_lines_are_the_bytes_tracing_subscriber_writes() {
        for json in [false, true] {
            let theirs = output(json, false);
            let before = FAST.with(std::cell::Cell::get);
            let ours = output(json, true);
            // Every first event of a round is ours: string fields only.
            assert_eq!(FAST.with(std::cell::Cell::get) - before, VALUES.len());
            for (a, b) in theirs.lines().zip(ours.lines()) {
                assert_eq!(a, b, "json: {json}");
            }
            assert_eq!(theirs, ours, "json: {json}");
        }
    }

    #[test]
    fn the_fast_path_takes_string_fields_only() {
        let mut out = String::new();
        debug_str(&mut out, "a\"b");
        assert_eq!(out, "\"a\\\"b\"");
        out.clear();
        json_str(&mut out, "tab\t");
        assert_eq!(out, "\"tab\\t\"");
    }

    #[test]
    fn debug_strings_match_debug_formatting_wherever_the_odd_byte_falls() {
        let base = "spiffe://toolgate.dev/agent/x-0123456789";
        for odd in ["\"", "\\", "\t", "\u{7f}", "é", "\n"] {
            for at in [0, 1, 15, 16, 17, 31, 32, base.len()] {
                let value = format!("{}{odd}{}", &base[..at], &base[at..]);
                let mut out = String::new();
                debug_str(&mut out, &value);
                assert_eq!(out, format!("{value:?}"), "{odd:?} at {at}");
            }
        }
        let mut out = String::new();
        debug_str(&mut out, base);
        assert_eq!(out, format!("{base:?}"));
    }
}
