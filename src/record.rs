//! Record stage: every decision becomes a log line on the
//! `toolgate::decision` target and a Prometheus sample; every request's
//! outcome is counted. Never records tokens, secrets or whole claim sets.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::decide::{Decision, DecisionInput};

/// The gateway's Prometheus metrics, registered in their own registry.
#[derive(Debug, Clone)]
pub struct Recorder {
    registry: Registry,
    requests: IntCounterVec,
    decisions: IntCounterVec,
    upstream_latency: HistogramVec,
    auth_failures: IntCounterVec,
    jwks_fetches: IntCounterVec,
    issuer_keys: IntGaugeVec,
    policy_evaluations: IntCounterVec,
    policy_reloads: IntCounterVec,
    admin_actions: IntCounterVec,
}

impl Recorder {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "toolgate_requests_total",
                "Requests handled, by route and outcome.",
            ),
            &["route", "outcome"],
        )
        .expect("static metric definition is valid");
        let decisions = IntCounterVec::new(
            Opts::new(
                "toolgate_decisions_total",
                "Policy decisions, by route, phase, verdict and reason.",
            ),
            &["route", "phase", "decision", "reason"],
        )
        .expect("static metric definition is valid");
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "toolgate_upstream_first_byte_seconds",
                "Time from forwarding a request to the upstream's response headers.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["route"],
        )
        .expect("static metric definition is valid");
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "toolgate_auth_failures_total",
                "Callers refused by the identify stage, by route and reason.",
            ),
            &["route", "reason"],
        )
        .expect("static metric definition is valid");
        let jwks_fetches = IntCounterVec::new(
            Opts::new(
                "toolgate_jwks_fetches_total",
                "JWKS fetches, by issuer and result (ok or error).",
            ),
            &["issuer", "result"],
        )
        .expect("static metric definition is valid");
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
        let policy_evaluations = IntCounterVec::new(
            Opts::new(
                "toolgate_policy_evaluations_total",
                "Policy module evaluations, by module and result (a verdict or a fault kind).",
            ),
            &["policy", "result"],
        )
        .expect("static metric definition is valid");
        let policy_reloads = IntCounterVec::new(
            Opts::new(
                "toolgate_policy_reloads_total",
                "Policy set reloads, by result (ok, or error: the last good set keeps serving).",
            ),
            &["result"],
        )
        .expect("static metric definition is valid");
        let admin_actions = IntCounterVec::new(
            Opts::new(
                "toolgate_admin_actions_total",
                "Changes requested through the admin API, by action and outcome (ok or an error code).",
            ),
            &["action", "outcome"],
        )
        .expect("static metric definition is valid");
        for c in [
            &admin_actions,
            &requests,
            &decisions,
            &auth_failures,
            &jwks_fetches,
            &policy_evaluations,
            &policy_reloads,
        ] {
            registry
                .register(Box::new(c.clone()))
                .expect("each metric is registered once");
        }
        registry
            .register(Box::new(upstream_latency.clone()))
            .expect("each metric is registered once");
        Self {
            registry,
            requests,
            decisions,
            upstream_latency,
            auth_failures,
            jwks_fetches,
            issuer_keys,
            policy_evaluations,
            policy_reloads,
            admin_actions,
        }
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

    /// Logs and counts one decision.
    pub fn decision(&self, input: &DecisionInput<'_>, decision: &Decision, trace_id: &str) {
        let route = input.route.name.as_str();
        let phase = input.phase.as_str();
        let reason = decision.reason().as_str();
        self.decisions
            .with_label_values(&[route, phase, decision.verdict(), reason])
            .inc();
        for e in &decision.evidence {
            let result = match e.outcome {
                Ok(verdict) => verdict.as_str(),
                Err(fault) => fault,
            };
            self.policy_evaluations
                .with_label_values(&[&e.module, result])
                .inc();
        }
        // tools/list filtering decides once per tool: those log at debug, and
        // nothing is formatted for a line the filter drops.
        let enabled = match input.phase {
            crate::decide::Phase::List => {
                tracing::enabled!(target: "toolgate::decision", tracing::Level::DEBUG)
            }
            crate::decide::Phase::Call | crate::decide::Phase::Grant => {
                tracing::enabled!(target: "toolgate::decision", tracing::Level::INFO)
            }
        };
        if !enabled {
            return;
        }
        // name@version#hash=outcome per module: which rule version decided.
        let modules = decision
            .evidence
            .iter()
            .map(|e| {
                let outcome = match e.outcome {
                    Ok(v) => v.as_str(),
                    Err(fault) => fault,
                };
                format!("{}@{}#{}={outcome}", e.module, e.version, e.hash)
            })
            .collect::<Vec<_>>()
            .join(",");
        if input.phase == crate::decide::Phase::List {
            tracing::debug!(
                target: "toolgate::decision",
                route,
                phase,
                tool = input.tool,
                subject = input.identity.subject(),
                decision = decision.verdict(),
                reason,
                modules,
                trace_id,
            );
            return;
        }
        tracing::info!(
            target: "toolgate::decision",
            route,
            phase,
            tool = input.tool,
            method = input.method,
            subject = input.identity.subject(),
            decision = decision.verdict(),
            reason,
            message = decision.message,
            modules,
            task = decision.task.as_deref(),
            grant = decision.grant.as_deref(),
            approval = decision.approval.as_deref(),
            trace_id,
        );
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

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}
