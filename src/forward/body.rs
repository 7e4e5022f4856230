//! Forward stage: response bodies on their way back. Every upstream body is
//! watched for idle silence; bodies that policy must inspect (`tools/list`
//! results, batches with refused elements) are edited message by message —
//! SSE streams event by event as they arrive, never buffered whole.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use crate::BoxError;
use crate::mcp::sse;

/// Decides which tools of a `tools/list` result a caller may see: one
/// answer per tool, in order, for the whole list at once (policy decides a
/// list together, and may wait for a slow module off the async threads).
pub trait ToolFilter: Send + Sync {
    fn keep<'a>(&'a self, tools: &'a [Value]) -> Kept<'a>;
}

/// What [`ToolFilter::keep`] answers, once decided.
pub type Kept<'a> = Pin<Box<dyn Future<Output = Vec<bool>> + Send + 'a>>;

/// Watches each message of an answer as it passes: a notification the
/// caller may not see is dropped, results are noted or edited.
pub trait MessageWatch: Send + Sync {
    /// False drops the message (never a response: those always pass).
    fn pass(&self, message: &Value) -> bool;
    /// Edits a message that passed, in place; true if it changed.
    fn edit(&self, _message: &mut Value) -> bool {
        false
    }
    /// True if JSON answers (not only streams) must be read for it.
    fn reads_json(&self) -> bool;
}

/// What the gateway must change in an upstream's answer.
#[derive(Default)]
pub struct ResponseEdit {
    /// Ids of `tools/list` requests whose results are filtered.
    pub list_ids: Vec<Value>,
    /// Filter every `tools/list`-shaped result whatever its id (streams
    /// that may replay answers, such as a resumed GET stream).
    pub any_list_result: bool,
    pub filter: Option<Arc<dyn ToolFilter>>,
    /// Messages the gateway answered itself (refused batch elements),
    /// added to the upstream's answer.
    pub extra: Vec<Value>,
    /// Sees every message of the answer (2026-07-28 requests, and legacy
    /// ones about MCP tasks).
    pub watch: Option<Arc<dyn MessageWatch>>,
}

impl std::fmt::Debug for ResponseEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseEdit")
            .field("list_ids", &self.list_ids)
            .field("extra", &self.extra.len())
            .field("watch", &self.watch.is_some())
            .finish_non_exhaustive()
    }
}

impl ResponseEdit {
    pub fn is_noop(&self) -> bool {
        !self.inspects() && self.extra.is_empty() && self.watch.is_none()
    }

    /// True when the answer must reach the gateway readable (uncompressed).
    pub fn reads(&self) -> bool {
        self.inspects() || self.watch.is_some()
    }

    /// True when a JSON answer must be read whole before it is passed on.
    pub fn reads_json(&self) -> bool {
        self.inspects()
            || !self.extra.is_empty()
            || self.watch.as_ref().is_some_and(|w| w.reads_json())
    }

    /// Lets the watch see one message; false if it must be dropped.
    fn passes(&self, message: &Value) -> bool {
        self.watch.as_ref().is_none_or(|w| w.pass(message))
    }

    /// True when some answers must be read and filtered.
    pub fn inspects(&self) -> bool {
        self.filter.is_some() && (self.any_list_result || !self.list_ids.is_empty())
    }

    /// Filters one JSON-RPC message, or each message of a batch, in place;
    /// true if anything changed.
    pub async fn apply(&self, message: &mut Value) -> bool {
        match message {
            Value::Array(items) => {
                // Every element, no short-circuit: each list must be filtered.
                let before = items.len();
                items.retain(|m| self.passes(m));
                let mut changed = items.len() != before;
                for m in items {
                    changed |= self.apply_one(m).await;
                }
                changed
            }
            single => self.apply_one(single).await,
        }
    }

    async fn apply_one(&self, message: &mut Value) -> bool {
        let watched = self.watch.as_ref().is_some_and(|w| w.edit(message));
        watched | self.filter_list(message).await
    }

    async fn filter_list(&self, message: &mut Value) -> bool {
        let Some(filter) = &self.filter else {
            return false;
        };
        let Some(id) = message.get("id") else {
            return false;
        };
        // Ids are compared by value, leniently: an upstream answering "1"
        // for request 1 (clients accept that) must not escape the filter.
        if !self.any_list_result && !self.list_ids.iter().any(|l| same_id(l, id)) {
            return false;
        }
        let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) else {
            return false;
        };
        let mut changed = false;
        if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
            let before = tools.len();
            let kept = filter.keep(tools).await;
            // An answer missing (never expected) hides its tool.
            let mut kept = kept.into_iter();
            tools.retain(|_| kept.next().unwrap_or(false));
            changed = tools.len() != before;
        }
        changed | keep_private(result)
    }
}

/// The longest a caller may keep a list filtered for it (`ttlMs`): grants
/// expire and policies reload, so a caller's view is only good so long.
pub const MAX_PRIVATE_TTL_MS: u64 = 30_000;

/// A result filtered for one caller is that caller's alone: where it carries
/// 2026-07-28 cache hints, `cacheScope` becomes `"private"` (never shared
/// across authorization contexts) and `ttlMs` is capped. An interim
/// `input_required` result carries no hints and is left as it is; a result
/// without hints is immediately stale already. True if anything changed.
fn keep_private(result: &mut serde_json::Map<String, Value>) -> bool {
    if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
        return false;
    }
    if !result.contains_key("cacheScope") && !result.contains_key("ttlMs") {
        return false;
    }
    let mut changed = false;
    if result.get("cacheScope").and_then(Value::as_str) != Some("private") {
        result.insert("cacheScope".into(), Value::from("private"));
        changed = true;
    }
    let ttl = result.get("ttlMs").and_then(Value::as_u64);
    let capped = ttl.map_or(0, |t| t.min(MAX_PRIVATE_TTL_MS));
    if ttl != Some(capped) {
        // Absent, negative, fractional or too long: the capped value.
        result.insert("ttlMs".into(), Value::from(capped));
        changed = true;
    }
    changed
}

pin_project! {
    /// Ends a response body with an error when the upstream stays silent too long.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        sleep: Pin<Box<Sleep>>,
        idle: Duration,
    }
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(idle)),
            idle,
        }
    }
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(frame)) => {
                this.sleep.as_mut().reset(Instant::now() + *this.idle);
                Poll::Ready(Some(frame.map_err(Into::into)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.sleep.as_mut().poll(cx));
                tracing::warn!(
                    idle_ms = this.idle.as_millis() as u64,
                    "upstream stream idle timeout"
                );
                Poll::Ready(Some(Err("upstream stream idle timeout".into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One event being filtered (its tools decided), and its bytes once done.
type Filtering = Pin<Box<dyn Future<Output = Result<Option<Bytes>, BoxError>> + Send>>;

pin_project! {
    /// Edits an SSE stream event by event: extra messages first, then each
    /// upstream event as soon as it is complete, filtered where it answers a
    /// `tools/list`. Events keep their order: one being filtered holds back
    /// the ones after it.
    pub struct SseEdit<B> {
        #[pin]
        inner: B,
        parser: sse::Parser,
        edit: Arc<ResponseEdit>,
        queue: VecDeque<Bytes>,
        // Complete upstream events not yet edited.
        events: VecDeque<sse::Event>,
        filtering: Option<Filtering>,
        done: bool,
    }
}

impl<B> SseEdit<B> {
    pub fn new(inner: B, edit: Arc<ResponseEdit>, max_event: usize) -> Self {
        let queue = edit
            .extra
            .iter()
            .map(|m| sse::Event::message(&m.to_string()))
            .collect();
        Self {
            inner,
            parser: sse::Parser::new(max_event),
            edit,
            queue,
            events: VecDeque::new(),
            filtering: None,
            done: false,
        }
    }
}

impl<B> HttpBody for SseEdit<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(bytes) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if let Some(filtering) = this.filtering.as_mut() {
                let edited = ready!(filtering.as_mut().poll(cx));
                *this.filtering = None;
                if let Some(bytes) = edited? {
                    this.queue.push_back(bytes);
                }
                continue;
            }
            if let Some(event) = this.events.pop_front() {
                match edit_event(this.edit, event)? {
                    Edited::Done(Some(bytes)) => this.queue.push_back(bytes),
                    Edited::Done(None) => {}
                    Edited::Filter(message, event) => {
                        let edit = Arc::clone(this.edit);
                        *this.filtering = Some(Box::pin(filter_event(edit, message, event)));
                    }
                }
                continue;
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                None => {
                    *this.done = true;
                    if !this.parser.remainder().is_empty() {
                        tracing::debug!("upstream SSE stream ended inside an event; dropped it");
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.events.extend(this.parser.push(&data)?),
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
            }
        }
    }
}

/// True if two JSON-RPC ids name the same request, compared leniently.
pub fn same_id(a: &Value, b: &Value) -> bool {
    fn key(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
        }
    }
    a == b || key(a).is_some_and(|k| Some(k) == key(b))
}

/// An event after its first look: done (`None`: a watched message the
/// watch drops leaves no event behind), or a message whose tools must be
/// decided first.
enum Edited {
    Done(Option<Bytes>),
    Filter(Value, sse::Event),
}

/// An event that must be inspected but cannot be read ends the stream:
/// it might be a `tools/list` answer, and that is never shown unfiltered.
fn edit_event(edit: &ResponseEdit, event: sse::Event) -> Result<Edited, BoxError> {
    if !edit.reads() {
        return Ok(Edited::Done(Some(event.raw)));
    }
    let Some(data) = event.data.as_deref().filter(|d| !d.trim().is_empty()) else {
        return Ok(Edited::Done(Some(event.raw)));
    };
    let mut message = serde_json::from_str::<Value>(data).map_err(|e| -> BoxError {
        tracing::warn!(error = %e, "unreadable SSE event in an inspected stream; cutting it");
        "an upstream event that must be filtered is not valid JSON".into()
    })?;
    if !message.is_array() && !edit.passes(&message) {
        return Ok(Edited::Done(None));
    }
    if !edit.inspects() {
        // No list to decide: the edit is done at once.
        if let Some(changed) = edit.apply(&mut message).now_or_never() {
            return Ok(Edited::Done(Some(rewritten(changed, &message, event))));
        }
    }
    Ok(Edited::Filter(message, event))
}

/// The event with its edited message, or as it came if nothing changed.
fn rewritten(changed: bool, message: &Value, event: sse::Event) -> Bytes {
    if changed {
        event.with_data(&message.to_string())
    } else {
        event.raw
    }
}

/// Applies the edit to one event's message: the event as it came if
/// nothing changed.
async fn filter_event(
    edit: Arc<ResponseEdit>,
    mut message: Value,
    event: sse::Event,
) -> Result<Option<Bytes>, BoxError> {
    let changed = edit.apply(&mut message).await;
    Ok(Some(rewritten(changed, &message, event)))
}

/// Applies an edit to a whole JSON answer. A batch request is always
/// answered with an array, extras included; a single one never has extras.
pub async fn edit_json(edit: &ResponseEdit, answer: Option<Value>, batch: bool) -> Value {
    let mut messages = match answer {
        Some(Value::Array(items)) => items,
        Some(mut single) if !batch => {
            // A single answer is a response: the watch notes it, never drops it.
            edit.passes(&single);
            edit.apply(&mut single).await;
            return single;
        }
        Some(single) => vec![single],
        None => Vec::new(),
    };
    messages.retain(|m| edit.passes(m));
    for m in &mut messages {
        edit.apply(m).await;
    }
    messages.extend(edit.extra.iter().cloned());
    Value::Array(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use serde_json::json;

    struct HideSecret;
    impl ToolFilter for HideSecret {
        fn keep<'a>(&'a self, tools: &'a [Value]) -> Kept<'a> {
            let kept = tools.iter().map(|t| t["name"] != "secret").collect();
            Box::pin(async move {
                // Decided later, as a slow module's answer would be.
                tokio::task::yield_now().await;
                kept
            })
        }
    }

    fn edit() -> Arc<ResponseEdit> {
        Arc::new(ResponseEdit {
            list_ids: vec![json!(2)],
            any_list_result: false,
            filter: Some(Arc::new(HideSecret)),
            extra: vec![json!({"jsonrpc":"2.0","id":9,"result":{"isError":true}})],
            watch: None,
        })
    }

    #[tokio::test]
    async fn sse_edit_filters_matching_list_results_and_passes_the_rest() {
        let list =
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo"},{"name":"secret"}]}}"#;
        let other = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"secret"}]}}"#;
        let chunks = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from("event: message\ndata: "))),
            Ok(Frame::data(Bytes::from(format!(
                "{list}\n\nevent: message\ndata: {other}\n\n"
            )))),
        ];
        let body = SseEdit::new(
            StreamBody::new(futures_util::stream::iter(chunks)),
            edit(),
            1024,
        );
        let out = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|s| !s.is_empty()).collect();
        assert_eq!(events.len(), 3, "{text}");
        assert!(events[0].contains("\"id\":9"), "extra first: {text}");
        assert!(
            events[1].contains("echo") && !events[1].contains("secret"),
            "{text}"
        );
        assert!(events[2].contains("secret"), "other ids untouched: {text}");
    }

    #[tokio::test]
    async fn json_edit_merges_extras_into_a_batch() {
        let e = edit();
        let out = edit_json(
            &e,
            Some(json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"secret"}]}})),
            true,
        )
        .await;
        assert_eq!(out.as_array().unwrap().len(), 2);
        assert_eq!(out[0]["result"]["tools"], json!([]));
        let out = edit_json(&e, None, true).await;
        assert_eq!(out[0]["id"], 9);
    }

    #[tokio::test]
    async fn filtered_results_are_kept_private_with_a_capped_ttl() {
        let e = edit();
        let answer = |result: Value| json!({"jsonrpc":"2.0","id":2,"result":result});
        let mut m = answer(json!({"tools":[],"cacheScope":"public","ttlMs":3_600_000}));
        assert!(e.apply(&mut m).await);
        assert_eq!(m["result"]["cacheScope"], "private");
        assert_eq!(m["result"]["ttlMs"], MAX_PRIVATE_TTL_MS);
        // A scope without a ttl, a bad ttl: private and immediately stale.
        for ttl in [json!(null), json!(-5), json!(1.5), json!("9")] {
            let mut m = answer(json!({"tools":[],"cacheScope":"public","ttlMs":ttl}));
            assert!(e.apply(&mut m).await, "{ttl}");
            assert_eq!(m["result"]["ttlMs"], 0, "{ttl}");
        }
        // Already private and short: untouched.
        let mut m = answer(json!({"tools":[],"cacheScope":"private","ttlMs":10}));
        assert!(!e.apply(&mut m).await);
        // No hints (legacy era) and interim results: nothing added.
        for result in [
            json!({"tools":[]}),
            json!({"resultType":"input_required","cacheScope":"public","ttlMs":5}),
        ] {
            let mut m = answer(result.clone());
            assert!(!e.apply(&mut m).await);
            assert_eq!(m["result"], result);
        }
        // Another request's answer is not the gateway's to touch.
        let mut m = json!({"jsonrpc":"2.0","id":3,"result":{"cacheScope":"public","ttlMs":9}});
        assert!(!e.apply(&mut m).await);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_ends_a_silent_stream() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        let mut body = IdleTimeout::new(StreamBody::new(Box::pin(stream)), Duration::from_secs(5));
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("idle"));
    }
}
