//! Decide stage, where a module runs: how long its recent evaluations took,
//! which tells whether it runs on the calling task (a hop to another thread
//! would cost more than a quick evaluation) or on the policy pool
//! (`pool.rs`), where a slow one cannot hold up the async threads.
//!
//! The times are wall-clock: reading a thread's CPU clock costs a system
//! call (over a microsecond on a virtual machine), more than many
//! evaluations. So a quick run that the machine held up — its thread
//! preempted for a few milliseconds — looks slow. One such run must not
//! send a quick module to the pool, where it could wait behind a slow
//! module's run: each run counts for at most [`SAMPLE_MAX`] in a moving
//! average, so it takes several slow runs close together, and a run that
//! reached its deadline sends the module there at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A module whose recent evaluations took less than this on average runs on
/// the calling thread; a slower one on the policy pool.
const INLINE_MAX: Duration = Duration::from_millis(1);
/// The most one evaluation adds to the average: a module that keeps taking
/// this long (or longer) reaches [`INLINE_MAX`] after three runs, and one
/// held-up run leaves a quick module's average at about half of it.
const SAMPLE_MAX: Duration = Duration::from_millis(8);
/// Where a run that reached its deadline puts the average: on the pool at
/// once, and back only after some forty quick runs there.
const DEADLINE_COST: Duration = Duration::from_millis(16);
/// Each run's weight in the average: about the last sixteen runs count.
const WEIGHT: u64 = 16;

/// A module's recent evaluation time, in ns: a moving average of its runs,
/// each capped at [`SAMPLE_MAX`].
#[derive(Debug, Default)]
pub(super) struct Cost(AtomicU64);

impl Cost {
    /// Whether the module's recent evaluations were quick enough to run on
    /// the calling (async) thread.
    pub(super) fn inline(&self) -> bool {
        self.0.load(Ordering::Relaxed) < nanos(INLINE_MAX)
    }

    /// Notes one evaluation that took `took`, and whether it ran until its
    /// deadline stopped it.
    pub(super) fn observe(&self, took: Duration, reached_deadline: bool) {
        if reached_deadline {
            self.0.fetch_max(nanos(DEADLINE_COST), Ordering::Relaxed);
            return;
        }
        let sample = nanos(took.min(SAMPLE_MAX));
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cost| {
                Some(if sample >= cost {
                    cost + (sample - cost) / WEIGHT
                } else {
                    cost - (cost - sample) / WEIGHT
                })
            });
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_micros(20);
    /// A quick run whose thread the machine preempted for a while.
    const HELD_UP: Duration = Duration::from_millis(50);

    fn runs(cost: &Cost, took: Duration, n: usize) {
        for _ in 0..n {
            cost.observe(took, false);
        }
    }

    #[test]
    fn a_quick_module_stays_inline_through_runs_the_machine_held_up() {
        let cost = Cost::default();
        runs(&cost, QUICK, 50);
        assert!(cost.inline());
        // One held-up run, then another ten runs later: still inline.
        runs(&cost, HELD_UP, 1);
        assert!(cost.inline());
        runs(&cost, QUICK, 10);
        runs(&cost, HELD_UP, 1);
        assert!(cost.inline());
    }

    #[test]
    fn a_module_slow_run_after_run_goes_to_the_pool_on_its_third() {
        let cost = Cost::default();
        runs(&cost, QUICK, 50);
        runs(&cost, HELD_UP, 2);
        assert!(cost.inline());
        runs(&cost, HELD_UP, 1);
        assert!(!cost.inline());
        // Just past the line, slow runs count as much as far past it.
        let cost = Cost::default();
        runs(&cost, Duration::from_millis(9), 3);
        assert!(!cost.inline());
    }

    #[test]
    fn a_module_slow_on_some_calls_goes_to_the_pool() {
        let cost = Cost::default();
        for _ in 0..20 {
            runs(&cost, QUICK, 1);
            runs(&cost, Duration::from_millis(5), 1);
        }
        assert!(!cost.inline());
    }

    #[test]
    fn a_run_that_reached_its_deadline_goes_to_the_pool_at_once_and_stays_a_while() {
        let cost = Cost::default();
        runs(&cost, QUICK, 50);
        cost.observe(Duration::from_millis(10), true);
        assert!(!cost.inline());
        // Quick runs on the pool bring it back, but not soon.
        runs(&cost, QUICK, 30);
        assert!(!cost.inline());
        runs(&cost, QUICK, 30);
        assert!(cost.inline());
    }
}
