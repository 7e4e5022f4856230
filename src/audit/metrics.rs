//! Record stage: the decision log's own telemetry — lines written, bytes,
//! batches, records dropped (and why), write errors, rotations, queue
//! depth, health.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Debug, Clone)]
pub(crate) struct AuditMetrics {
    pub(crate) written: IntCounterVec,
    pub(crate) bytes: IntCounter,
    pub(crate) batches: IntCounter,
    pub(crate) dropped: IntCounterVec,
    pub(crate) write_errors: IntCounter,
    pub(crate) rotations: IntCounter,
    pub(crate) queue_depth: IntGauge,
    pub(crate) healthy: IntGauge,
}

impl AuditMetrics {
    pub(crate) fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help)).expect("static metric definition is valid")
        };
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("static metric definition is valid")
        };
        let this = Self {
            written: IntCounterVec::new(
                Opts::new(
                    "toolgate_audit_records_total",
                    "Decision-log lines written, by kind (decision, task, grant, approval, admin, log).",
                ),
                &["kind"],
            )
            .expect("static metric definition is valid"),
            bytes: counter("toolgate_audit_bytes_total", "Bytes written to the decision log."),
            batches: counter(
                "toolgate_audit_batches_total",
                "Batches the decision-log writer wrote (records_total over this is the batch size).",
            ),
            dropped: IntCounterVec::new(
                Opts::new(
                    "toolgate_audit_dropped_total",
                    "Records the decision log did not write, by cause (queue_full, log_failing, shutdown).",
                ),
                &["cause"],
            )
            .expect("static metric definition is valid"),
            write_errors: counter(
                "toolgate_audit_write_errors_total",
                "Failed writes, syncs or file creations of the decision log.",
            ),
            rotations: counter(
                "toolgate_audit_rotations_total",
                "Decision-log files sealed and replaced by a new one.",
            ),
            queue_depth: gauge(
                "toolgate_audit_queue_depth",
                "Records waiting for the decision-log writer.",
            ),
            healthy: gauge(
                "toolgate_audit_healthy",
                "1 while the decision log is being written, 0 while writing fails.",
            ),
        };
        // Every cause exported from the start (at 0), so an alert on its
        // increase sees the first drop, and dashboards find the series.
        for cause in ["queue_full", "log_failing", "shutdown"] {
            this.dropped.with_label_values(&[cause]);
        }
        // A second gateway on the same registry keeps the first registration.
        let _ = registry.register(Box::new(this.written.clone()));
        let _ = registry.register(Box::new(this.bytes.clone()));
        let _ = registry.register(Box::new(this.batches.clone()));
        let _ = registry.register(Box::new(this.dropped.clone()));
        let _ = registry.register(Box::new(this.write_errors.clone()));
        let _ = registry.register(Box::new(this.rotations.clone()));
        let _ = registry.register(Box::new(this.queue_depth.clone()));
        let _ = registry.register(Box::new(this.healthy.clone()));
        this
    }
}
