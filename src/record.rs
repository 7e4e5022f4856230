//! Record stage: every decision becomes a Prometheus sample, a `tracing`
//! line (allowed calls on `toolgate::decision::allow`, refused ones on
//! `toolgate::decision::deny`) and — with `[audit]` — a line of the
//! tamper-evident decision log ([`crate::audit`]), handed over through
//! [`RequestLog`]; every request's outcome and latency is counted. Never
//! records tokens, secrets or whole claim sets; tool names are bounded
//! labels ([`tools`]); subjects are never labels.

pub mod decision_line;
pub mod gauges;
pub mod request;
pub mod stderr;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::audit::{AdminEntry, AuditLog, Entry};
use crate::decide::{Decision, DecisionInput, Phase, Verdict};
pub use request::RequestLog;
use tools::ToolNames;

/// Latency buckets, in seconds: from 50 µs (a cached decision) to 30 s.
const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0, 30.0,
];

/// The gateway's Prometheus metrics, registered in their own registry, and
/// the decision log when one is configured.
#[derive(Debug, Clone)]
pub struct Recorder {
    registry: Registry,
    requests: IntCounterVec,
    decisions: IntCounterVec,
    upstream_latency: HistogramVec,
    identify_latency: HistogramVec,
    decide_latency: HistogramVec,
    request_latency: HistogramVec,
    auth_failures: IntCounterVec,
    jwks_fetches: IntCounterVec,
    issuer_keys: IntGaugeVec,
    policy_evaluations: IntCounterVec,
    policy_faults: IntCounterVec,
    policy_reloads: IntCounterVec,
    admin_actions: IntCounterVec,
    tools: Arc<ToolNames>,
    audit: Option<AuditLog>,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("static metric definition is valid");
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        &["route"],
    )
    .expect("static metric definition is valid");
    registry
        .register(Box::new(h.clone()))
        .expect("each metric is registered once");
    h
}

impl Recorder {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let issuer_keys = IntGaugeVec::new(
            Opts::new(
                "toolgate_issuer_keys",
                "Usable keys per issuer; 0 means every token from it is refused.",
            ),
            &["issuer"],
        )
        .expect("static metric definition is valid");
        registry
            .register(Box::new(issuer_keys.clone()))
            .expect("each metric is registered once");
        Self {
            requests: counter(
                r,
                "toolgate_requests_total",
                "Requests handled, by route and outcome.",
                &["route", "outcome"],
            ),
            decisions: counter(
                r,
                "toolgate_decisions_total",
                "Policy decisions, by route, phase, tool (known names; others as \"other\"), verdict and reason.",
                &["route", "phase", "tool", "decision", "reason"],
            ),
            upstream_latency: histogram(
                r,
                "toolgate_upstream_first_byte_seconds",
                "Time from forwarding a request to the upstream's response headers.",
            ),
            identify_latency: histogram(
                r,
                "toolgate_identify_seconds",
                "Time spent identifying the caller (token verification or cache hit).",
            ),
            decide_latency: histogram(
                r,
                "toolgate_decide_seconds",
                "Time spent in policy per decided call.",
            ),
            request_latency: histogram(
                r,
                "toolgate_request_duration_seconds",
                "End to end: from the request's arrival to its response headers (identified requests).",
            ),
            auth_failures: counter(
                r,
                "toolgate_auth_failures_total",
                "Callers refused by the identify stage, by route and reason.",
                &["route", "reason"],
            ),
            jwks_fetches: counter(
                r,
                "toolgate_jwks_fetches_total",
                "JWKS fetches, by issuer and result (ok or error).",
                &["issuer", "result"],
            ),
            issuer_keys,
            policy_evaluations: counter(
                r,
                "toolgate_policy_evaluations_total",
                "Policy module evaluations, by module and result (a verdict or a fault kind).",
                &["policy", "result"],
            ),
            policy_faults: counter(
                r,
                "toolgate_policy_faults_total",
                "Policy module faults (each denied its call), by module and kind.",
                &["policy", "kind"],
            ),
            policy_reloads: counter(
                r,
                "toolgate_policy_reloads_total",
                "Policy set reloads, by result (ok, or error: the last good set keeps serving).",
                &["result"],
            ),
            admin_actions: counter(
                r,
                "toolgate_admin_actions_total",
                "Changes requested through the admin API, by action and outcome (ok or an error code).",
                &["action", "outcome"],
            ),
            registry,
            tools: Arc::new(ToolNames::default()),
            audit: None,
        }
        .with_reload_results()
    }

    /// Both reload results exported from the start (at 0), so an alert on
    /// the first failed reload sees it increase.
    fn with_reload_results(self) -> Self {
        for result in ["ok", "error"] {
            self.policy_reloads.with_label_values(&[result]);
        }
        self
    }

    /// Records decisions and events in `audit` too.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The decision log, if configured.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// The tool names metrics may use as labels.
    pub fn tools(&self) -> &ToolNames {
        &self.tools
    }

    /// Whether a call allowed now would be recorded (always, without a
    /// log, or with one that serves on failure).
    pub fn audit_ready(&self) -> bool {
        self.audit
            .as_ref()
            .is_none_or(|a| !a.fail_closed() || a.ready())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one request's outcome (`forwarded`, `refused`, or a problem code).
    pub fn request(&self, route: &str, outcome: &str) {
        self.requests.with_label_values(&[route, outcome]).inc();
    }

    /// Counts a caller the identify stage refused.
    pub fn auth_failure(&self, route: &str, reason: &str) {
        self.auth_failures.with_label_values(&[route, reason]).inc();
    }

    /// Counts a JWKS fetch and records how many keys the issuer now has.
    pub fn jwks_fetch(&self, issuer: &str, result: &str, keys: usize) {
        self.jwks_fetches.with_label_values(&[issuer, result]).inc();
        self.issuer_keys
            .with_label_values(&[issuer])
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    /// Records an issuer's key count (file-based issuers, at load).
    pub fn issuer_keys(&self, issuer: &str, keys: usize) {
        self.issuer_keys
            .with_label_values(&[issuer])
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    pub fn upstream_first_byte(&self, route: &str, elapsed: Duration) {
        self.upstream_latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn identify_latency(&self, route: &str, elapsed: Duration) {
        self.identify_latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn decide_latency(&self, route: &str, elapsed: Duration) {
        self.decide_latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn request_latency(&self, route: &str, elapsed: Duration) {
        self.request_latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts and traces one decision (the decision log's line goes
    /// through [`RequestLog::decision`]).
    pub fn decision(&self, input: &DecisionInput<'_>, decision: &Decision, trace_id: &str) {
        let route = input.route.name.as_str();
        let phase = input.phase.as_str();
        let reason = decision.reason().as_str();
        let tool = self.tools.label(input.tool);
        self.decisions
            .with_label_values(&[route, phase, tool, decision.verdict(), reason])
            .inc();
        for e in decision.evidence.iter() {
            let result = match e.outcome {
                Ok(verdict) => verdict.as_str(),
                Err(fault) => {
                    self.policy_faults
                        .with_label_values(&[&e.module, fault])
                        .inc();
                    fault
                }
            };
            self.policy_evaluations
                .with_label_values(&[&e.module, result])
                .inc();
        }
        trace(input, decision, trace_id);
    }

    /// Counts and traces the decisions of one list's tools (`inputs[i]`
    /// decided `decisions[i]`): the same series and lines as
    /// [`Self::decision`] for each, every series counted once a list.
    pub fn list_decisions(
        &self,
        inputs: &[DecisionInput<'_>],
        decisions: &[Decision],
        trace_id: &str,
    ) {
        let labels = self.tools.labels(inputs.iter().map(|i| i.tool));
        let mut counts: Tally<'_, 5> = Tally::new(1);
        let mut evaluations: Tally<'_, 2> = Tally::new(usize::MAX);
        let mut faults: Tally<'_, 2> = Tally::new(usize::MAX);
        for ((input, decision), tool) in inputs.iter().zip(decisions).zip(labels) {
            counts.add([
                input.route.name.as_str(),
                input.phase.as_str(),
                tool,
                decision.verdict(),
                decision.reason().as_str(),
            ]);
            for e in decision.evidence.iter() {
                let result = match e.outcome {
                    Ok(verdict) => verdict.as_str(),
                    Err(fault) => {
                        faults.add([&e.module, fault]);
                        fault
                    }
                };
                evaluations.add([&e.module, result]);
            }
            trace(input, decision, trace_id);
        }
        counts.count(&self.decisions);
        evaluations.count(&self.policy_evaluations);
        faults.count(&self.policy_faults);
    }

    /// Records a change requested through the admin API in the decision log.
    pub fn admin_event(&self, entry: AdminEntry) {
        if let Some(audit) = &self.audit {
            audit.send(Entry::Admin(Box::new(entry)));
        }
    }

    /// Counts one change requested through the admin API.
    pub fn admin_action(&self, action: &str, outcome: &str) {
        self.admin_actions
            .with_label_values(&[action, outcome])
            .inc();
    }

    /// Counts a policy reload attempt (`ok` or `error`).
    pub fn policy_reload(&self, result: &str) {
        self.policy_reloads.with_label_values(&[result]).inc();
    }
}

/// Label sets seen while recording a list, and how often each.
struct Tally<'a, const N: usize> {
    seen: Vec<([&'a str; N], u64)>,
    /// How many of the newest sets an added one is compared with: a few
    /// sets recur all through a list (a module's verdicts), while a set
    /// naming a tool recurs, if at all, right after itself.
    window: usize,
}

impl<'a, const N: usize> Tally<'a, N> {
    fn new(window: usize) -> Self {
        Self {
            seen: Vec::new(),
            window,
        }
    }

    fn add(&mut self, labels: [&'a str; N]) {
        let window = self.window;
        match self
            .seen
            .iter_mut()
            .rev()
            .take(window)
            .find(|(l, _)| *l == labels)
        {
            Some((_, n)) => *n += 1,
            None => self.seen.push((labels, 1)),
        }
    }

    fn count(self, counters: &IntCounterVec) {
        for (labels, n) in self.seen {
            counters.with_label_values(&labels).inc_by(n);
        }
    }
}

/// The decision's `tracing` line: allowed calls on `toolgate::decision::allow`,
/// refused ones on `toolgate::decision::deny` (so an operator can keep one and
/// drop the other); `tools/list` filtering at debug. Nothing is formatted for
/// a line the filter drops; empty fields are left out.
/// `name@version#hash=outcome` per module, comma-separated: which rule
/// version decided; `None` when no module did.
fn modules_field(evidence: &[crate::decide::Evidence]) -> Option<String> {
    (!evidence.is_empty()).then(|| {
        let mut out = String::with_capacity(64 * evidence.len());
        for (i, e) in evidence.iter().enumerate() {
            let outcome = match e.outcome {
                Ok(v) => v.as_str(),
                Err(fault) => fault,
            };
            if i > 0 {
                out.push(',');
            }
            for part in [&*e.module, "@", &e.version, "#", &e.hash, "=", outcome] {
                out.push_str(part);
            }
        }
        out
    })
}

fn trace(input: &DecisionInput<'_>, decision: &Decision, trace_id: &str) {
    let modules = || modules_field(&decision.evidence);
    macro_rules! line {
        ($target:literal, $level:expr) => {
            if tracing::enabled!(target: $target, $level) {
                let modules = modules();
                tracing::event!(
                    target: $target,
                    $level,
                    route = input.route.name.as_str(),
                    phase = input.phase.as_str(),
                    tool = input.tool,
                    method = input.method,
                    subject = input.identity.subject(),
                    decision = decision.verdict(),
                    reason = decision.reason().as_str(),
                    message = (!decision.message.is_empty()).then_some(decision.message.as_str()),
                    modules = modules.as_deref(),
                    task = decision.task.as_deref(),
                    grant = decision.grant.as_deref(),
                    approval = decision.approval.as_deref(),
                    trace_id = (!trace_id.is_empty()).then_some(trace_id),
                )
            }
        };
    }
    match (decision.verdict, input.phase) {
        (Verdict::Allow, Phase::List) => line!("toolgate::decision::allow", tracing::Level::DEBUG),
        (Verdict::Allow, Phase::Call | Phase::Grant) => {
            line!("toolgate::decision::allow", tracing::Level::INFO)
        }
        (Verdict::Deny | Verdict::NeedsApproval, Phase::List) => {
            line!("toolgate::decision::deny", tracing::Level::DEBUG)
        }
        (Verdict::Deny | Verdict::NeedsApproval, Phase::Call | Phase::Grant) => {
            line!("toolgate::decision::deny", tracing::Level::INFO)
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::decide::Evidence;

    fn evidence(module: &str, outcome: Result<Verdict, &'static str>) -> Evidence {
        Evidence {
            module: Arc::from(module),
            version: Arc::from("0.1.0"),
            hash: Arc::from("dea943f91623"),
            outcome,
            reason: None,
            grant: None,
        }
    }

    #[test]
    fn the_modules_field_names_each_module_version_hash_and_outcome() {
        assert_eq!(modules_field(&[]), None);
        let both = [
            evidence("allowlist", Ok(Verdict::Allow)),
            evidence("trap", Err("deadline")),
        ];
        assert_eq!(
            modules_field(&both).as_deref(),
            Some("allowlist@0.1.0#dea943f91623=allow,trap@0.1.0#dea943f91623=deadline")
        );
    }
}
