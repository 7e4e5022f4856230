//! Task-context stage, durability: whether the journal takes writes. Every
//! write the store makes goes through [`Watched`], which counts the ones
//! that fail (`toolgate_store_write_failures_total`) and keeps a gauge an
//! alert can watch (`toolgate_store_writable`: 0 from a failed write until
//! one succeeds again).

use prometheus::{IntCounter, IntGauge, Registry};

use super::{Durable, Error, Image, Key, Record};

/// The store's write-health metrics, registered once per gateway.
#[derive(Debug, Clone)]
pub struct StoreHealth {
    failures: IntCounter,
    writable: IntGauge,
}

impl StoreHealth {
    /// Registers the metrics in `registry` (the gateway's); a store without
    /// a journal is always writable.
    pub fn new(registry: &Registry) -> Self {
        let failures = IntCounter::new(
            "toolgate_store_write_failures_total",
            "Task store writes that failed (the change was refused).",
        )
        .expect("static metric definition is valid");
        let writable = IntGauge::new(
            "toolgate_store_writable",
            "1 while the task store takes writes, 0 from a failed write until one succeeds.",
        )
        .expect("static metric definition is valid");
        writable.set(1);
        // Registering twice (a second gateway on the same registry) keeps
        // the first registration; these handles still count.
        let _ = registry.register(Box::new(failures.clone()));
        let _ = registry.register(Box::new(writable.clone()));
        Self { failures, writable }
    }

    fn ok(&self) {
        if self.writable.get() == 0 {
            tracing::info!("task store writes work again");
        }
        self.writable.set(1);
    }

    fn failed(&self, error: &Error) {
        self.failures.inc();
        // Logged when writes start failing, not for each refused change.
        if self.writable.get() == 1 {
            tracing::error!(%error, "task store write failed: changes to tasks, grants and approvals (and uses of max_uses grants) are refused until writes work again; reads and decisions go on");
        }
        self.writable.set(0);
    }
}

/// A journal whose writes are watched by [`StoreHealth`].
#[derive(Debug)]
pub struct Watched<D> {
    inner: D,
    health: StoreHealth,
}

impl<D> Watched<D> {
    pub fn new(inner: D, health: StoreHealth) -> Self {
        Self { inner, health }
    }
}

impl<D: Durable> Durable for Watched<D> {
    fn load(&self) -> Result<Image, Error> {
        self.inner.load()
    }

    fn write(&self, put: &[Record], delete: &[Key]) -> Result<(), Error> {
        let result = self.inner.write(put, delete);
        match &result {
            Ok(()) => self.health.ok(),
            Err(error) => self.health.failed(error),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Flaky(std::sync::atomic::AtomicBool);

    impl Durable for Flaky {
        fn load(&self) -> Result<Image, Error> {
            Ok(Image::default())
        }
        fn write(&self, _: &[Record], _: &[Key]) -> Result<(), Error> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                Err(Error::Write("disk full".into()))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn failures_are_counted_and_the_gauge_follows_the_last_write() {
        let registry = Registry::new();
        let health = StoreHealth::new(&registry);
        let journal = Watched::new(Flaky(true.into()), health.clone());
        let put = [Record::Activity {
            task_id: "t".into(),
            activity: Default::default(),
        }];
        assert_eq!(health.writable.get(), 1, "writable until a write fails");
        assert!(journal.write(&put, &[]).is_err());
        assert!(journal.write(&put, &[]).is_err());
        assert_eq!((health.failures.get(), health.writable.get()), (2, 0));
        journal
            .inner
            .0
            .store(false, std::sync::atomic::Ordering::SeqCst);
        journal.write(&put, &[]).unwrap();
        assert_eq!((health.failures.get(), health.writable.get()), (2, 1));
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(names.contains(&"toolgate_store_writable".to_owned()));
        assert!(names.contains(&"toolgate_store_write_failures_total".to_owned()));
    }
}
