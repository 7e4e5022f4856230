//! Decide stage: where a slow policy module runs. A module whose recent
//! evaluations were quick runs on the calling task (a hop to another thread
//! would cost more than the evaluation); one that has been slow runs here,
//! on a few OS threads of its own, so it can never occupy the async threads
//! that serve every other call. The queue in front of them is bounded: a
//! decision that finds it full is refused at once (`policy_busy`), never
//! left to wait behind a flood.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The lane's queue was full: the decision is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Jobs waiting, one queue (lane) per slow module, served in turn: a
/// flood into one module's lane never delays another lane's jobs by more
/// than one job per thread.
#[derive(Default)]
struct Lanes {
    queues: HashMap<usize, VecDeque<Job>>,
    /// Lanes with waiting jobs, in the order they are served.
    turn: VecDeque<usize>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("lanes", &self.queues.len())
            .field("turn", &self.turn)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Shared {
    lanes: Mutex<Lanes>,
    ready: Condvar,
}

/// The process-wide policy pool.
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
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
        let shared = Arc::new(Shared::default());
        let mut started = 0;
        for i in 0..workers {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("toolgate-policy-{i}"))
                .spawn(move || work(&shared));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a policy thread"),
            }
        }
        Self {
            shared,
            workers: started,
        }
    }

    /// Threads running.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs waiting for a thread, in every lane.
    pub fn queued(&self) -> usize {
        self.shared
            .lanes
            .lock()
            .map_or(0, |l| l.queues.values().map(VecDeque::len).sum())
    }

    /// Runs `f` on a pool thread, in its turn among the lanes, unless
    /// `max_queued` jobs already wait in `lane` (or the pool has no
    /// thread). Its result arrives on the receiver; a job that panicked
    /// drops its sender, which the caller reads as a failure.
    pub fn submit<T, F>(
        &self,
        lane: usize,
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
        let Ok(mut lanes) = self.shared.lanes.lock() else {
            return Err(Busy);
        };
        let Lanes { queues, turn } = &mut *lanes;
        let queue = queues.entry(lane).or_default();
        if queue.len() >= max_queued {
            return Err(Busy);
        }
        let (answer, rx) = tokio::sync::oneshot::channel();
        if queue.is_empty() {
            turn.push_back(lane);
        }
        queue.push_back(Box::new(move || {
            let _ = answer.send(f());
        }));
        drop(lanes);
        self.shared.ready.notify_one();
        Ok(rx)
    }
}

/// The next job: the first waiting job of the lane whose turn it is.
fn next(shared: &Shared) -> Option<Job> {
    let mut lanes = shared.lanes.lock().ok()?;
    loop {
        let Lanes { queues, turn } = &mut *lanes;
        if let Some(lane) = turn.pop_front() {
            let queue = queues.get_mut(&lane)?;
            let job = queue.pop_front();
            if queue.is_empty() {
                queues.remove(&lane);
            } else {
                turn.push_back(lane);
            }
            if job.is_some() {
                return job;
            }
            continue;
        }
        lanes = shared.ready.wait(lanes).ok()?;
    }
}

fn work(shared: &Shared) {
    while let Some(job) = next(shared) {
        // A panic would end the thread; the job's sender is dropped instead
        // and its caller denies.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a policy evaluation panicked; its call is denied");
        }
    }
    tracing::error!("a policy thread stopped: its lock was poisoned");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn jobs_run_off_the_caller_and_a_full_lane_is_refused() {
        let pool = Pool::start(1);
        let caller = std::thread::current().id();
        let ran_on = pool
            .submit(1, 4, move || std::thread::current().id())
            .unwrap();
        assert_ne!(ran_on.await.unwrap(), caller);

        // One job holds the only thread; two wait in lane 1; a third is
        // refused there, while lane 2 still takes one.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let held = pool.submit(1, 2, move || hold.recv().is_ok()).unwrap();
        while pool.queued() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let waiting: Vec<_> = (0..2)
            .map(|i| pool.submit(1, 2, move || i).unwrap())
            .collect();
        assert!(matches!(pool.submit(1, 2, || 9), Err(Busy)));
        let other = pool.submit(2, 2, || 20).unwrap();
        release.send(()).unwrap();
        assert!(held.await.unwrap());
        for (i, w) in waiting.into_iter().enumerate() {
            assert_eq!(w.await.unwrap(), i);
        }
        assert_eq!(other.await.unwrap(), 20);
        // A panicking job fails its own caller, not the thread.
        let failed = pool.submit(1, 2, || -> u8 { panic!("boom") }).unwrap();
        assert!(failed.await.is_err());
        assert_eq!(pool.submit(1, 2, || 7).unwrap().await.unwrap(), 7);
    }

    #[tokio::test]
    async fn lanes_take_turns() {
        let pool = Pool::start(1);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = pool.submit(0, 8, move || hold.recv().is_ok()).unwrap();
        while pool.queued() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A flood of five into lane 1, then one job in lane 2: lane 2's job
        // runs second, not sixth.
        let mut answers = Vec::new();
        for (lane, n) in [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 20)] {
            let order = Arc::clone(&order);
            answers.push(
                pool.submit(lane, 8, move || order.lock().unwrap().push(n))
                    .unwrap(),
            );
        }
        release.send(()).unwrap();
        assert!(held.await.unwrap());
        for a in answers {
            a.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 20, 2, 3, 4, 5]);
    }
}
