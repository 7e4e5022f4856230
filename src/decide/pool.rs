//! Decide stage: where a slow policy module runs. A module whose recent
//! evaluations were quick runs on the calling task (a hop to another thread
//! would cost more than the evaluation); one that has been slow runs here,
//! on a few OS threads of its own, so it can never occupy the async threads
//! that serve every other call. The queue in front of them is bounded: a
//! decision that finds it full is refused at once (`policy_busy`), never
//! left to wait behind a flood.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The queue was full: the decision is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// The process-wide policy pool.
#[derive(Debug)]
pub struct Pool {
    tx: Mutex<Sender<Job>>,
    /// Jobs sent and not yet started.
    queued: Arc<AtomicUsize>,
    workers: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// The pool, started on first use with `workers` threads (later values
/// are ignored: the size is fixed for the life of the process).
pub fn pool(workers: usize) -> &'static Pool {
    POOL.get_or_init(|| Pool::start(workers.max(1)))
}

/// Threads for slow modules by default: half the cores, at least one, so
/// that slow modules can never take every core from the rest of the gateway.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Pool {
    fn start(workers: usize) -> Self {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let mut started = 0;
        for i in 0..workers {
            let (rx, queued) = (Arc::clone(&rx), Arc::clone(&queued));
            let spawned = std::thread::Builder::new()
                .name(format!("toolgate-policy-{i}"))
                .spawn(move || work(&rx, &queued));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a policy thread"),
            }
        }
        Self {
            tx: Mutex::new(tx),
            queued,
            workers: started,
        }
    }

    /// Threads running.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs `f` on a pool thread, unless `max_queued` jobs already wait (or
    /// the pool has no thread). Its result arrives on the receiver; a job
    /// that panicked drops its sender, which the caller reads as a failure.
    pub fn submit<T, F>(
        &self,
        max_queued: usize,
        f: F,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, Busy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.workers == 0 {
            return Err(Busy);
        }
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_queued).then_some(n + 1)
            });
        if reserved.is_err() {
            return Err(Busy);
        }
        let (answer, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(f());
        });
        let sent = self
            .tx
            .lock()
            .map_err(|_| Busy)
            .and_then(|tx| tx.send(job).map_err(|_| Busy));
        if sent.is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        Ok(rx)
    }
}

fn work(rx: &Mutex<Receiver<Job>>, queued: &AtomicUsize) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        queued.fetch_sub(1, Ordering::AcqRel);
        // A panic would end the thread; the job's sender is dropped instead
        // and its caller denies.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a policy evaluation panicked; its call is denied");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn jobs_run_off_the_caller_and_a_full_queue_is_refused() {
        let pool = Pool::start(1);
        let caller = std::thread::current().id();
        let ran_on = pool.submit(4, move || std::thread::current().id()).unwrap();
        assert_ne!(ran_on.await.unwrap(), caller);

        // One job holds the only thread; two wait; the third is refused.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let held = pool.submit(2, move || hold.recv().is_ok()).unwrap();
        while pool.queued() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let waiting: Vec<_> = (0..2).map(|i| pool.submit(2, move || i).unwrap()).collect();
        assert!(matches!(pool.submit(2, || 9), Err(Busy)));
        release.send(()).unwrap();
        assert!(held.await.unwrap());
        for (i, w) in waiting.into_iter().enumerate() {
            assert_eq!(w.await.unwrap(), i);
        }
        // A panicking job fails its own caller, not the thread.
        let failed = pool.submit(2, || -> u8 { panic!("boom") }).unwrap();
        assert!(failed.await.is_err());
        assert_eq!(pool.submit(2, || 7).unwrap().await.unwrap(), 7);
    }
}
