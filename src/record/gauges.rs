//! Record stage: gauges computed when `/metrics` is scraped, never on the
//! request path — the policy modules loaded (`toolgate_policy_module_info`)
//! and the tasks, live grants and pending approvals in the store, with the
//! age of the oldest approval still waiting.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts};

use crate::store::{ApprovalFilter, ApprovalState, GrantFilter, Store, TaskFilter, TaskState};

/// Name, version and SHA-256 of each loaded policy module.
pub type ModuleList = Box<dyn Fn() -> Vec<(String, String, String)> + Send + Sync>;

pub struct Gauges {
    modules: ModuleList,
    store: Arc<dyn Store>,
    module_info: IntGaugeVec,
    active_tasks: IntGauge,
    live_grants: IntGauge,
    pending_approvals: IntGauge,
    oldest_pending: Gauge,
    descs: Vec<Desc>,
}

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauges").finish_non_exhaustive()
    }
}

impl Gauges {
    pub fn new(modules: ModuleList, store: Arc<dyn Store>) -> Self {
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("static metric definition is valid")
        };
        let module_info = IntGaugeVec::new(
            Opts::new(
                "toolgate_policy_module_info",
                "Loaded policy modules (value 1), by name, version and SHA-256.",
            ),
            &["policy", "version", "sha256"],
        )
        .expect("static metric definition is valid");
        let active_tasks = gauge("toolgate_tasks_active", "Tasks active now.");
        let live_grants = gauge(
            "toolgate_grants_live",
            "Grants usable now (live, in an active task).",
        );
        let pending_approvals = gauge(
            "toolgate_approvals_pending",
            "Approvals waiting for an operator.",
        );
        let oldest_pending = Gauge::with_opts(Opts::new(
            "toolgate_approvals_oldest_pending_age_seconds",
            "How long the oldest approval still waiting has waited (0 when none waits).",
        ))
        .expect("static metric definition is valid");
        let descs = [
            module_info.desc(),
            active_tasks.desc(),
            live_grants.desc(),
            pending_approvals.desc(),
            oldest_pending.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Self {
            modules,
            store,
            module_info,
            active_tasks,
            live_grants,
            pending_approvals,
            oldest_pending,
            descs,
        }
    }
}

impl Collector for Gauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.module_info.reset();
        for (name, version, hash) in (self.modules)() {
            self.module_info
                .with_label_values(&[&name, &version, &hash])
                .set(1);
        }
        let now = crate::store::model::now_ms();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let active = TaskFilter {
            state: Some(TaskState::Active),
            ..TaskFilter::default()
        };
        self.active_tasks
            .set(count(self.store.tasks(&active).len()));
        let live = GrantFilter {
            live_only: true,
            ..GrantFilter::default()
        };
        self.live_grants
            .set(count(self.store.grants(&live, now).len()));
        let pending = ApprovalFilter {
            state: Some(ApprovalState::Pending),
            ..ApprovalFilter::default()
        };
        let waiting = self.store.approvals(&pending, now);
        self.pending_approvals.set(count(waiting.len()));
        let oldest_ms = waiting
            .iter()
            .map(|a| now.saturating_sub(a.created_at_ms))
            .max()
            .unwrap_or(0);
        // Milliseconds to seconds; exact below 2^53 ms (285,000 years).
        #[allow(clippy::cast_precision_loss)]
        self.oldest_pending.set(oldest_ms as f64 / 1000.0);
        let mut out = self.module_info.collect();
        out.extend(self.active_tasks.collect());
        out.extend(self.live_grants.collect());
        out.extend(self.pending_approvals.collect());
        out.extend(self.oldest_pending.collect());
        out
    }
}
