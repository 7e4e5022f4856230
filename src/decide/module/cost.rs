//! Decide stage, where a module runs: how long its recent evaluations took,
//! which tells whether it runs on the calling task (a hop to another thread
//! would cost more than a quick evaluation) or on the policy pool
//! (`pool.rs`), where a slow one cannot hold up the async threads.
//!
//! A run is timed by the wall clock while the module's average is well
//! below the line: reading a thread's CPU clock is a system call (over a
//! microsecond on a virtual machine), more than many evaluations. But a
//! quick run whose thread the machine preempted looks slow by the wall
//! clock — even to its deadline, which is wall-clock too — and a quick
//! module sent to the pool could wait there behind a slow module's run. So
//! runs timed by the wall clock, however many at once and however long,
//! never lift the average past [`WALL_CEILING`], below the line; from
//! [`CPU_TIMED`] up, runs are timed by the thread's CPU clock, which
//! preemption does not move. A module's code runs without I/O, so its CPU
//! time is how long it would hold a thread of an idle machine. A run the
//! CPU clock timed that spun until its deadline stopped it sends the module
//! to the pool at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};

/// A module whose recent evaluations took this long or more on average
/// goes to the policy pool.
const POOL_AT: Duration = Duration::from_millis(1);
/// A module on the pool comes back to the calling thread once its average
/// is below this: not at once when it crosses [`POOL_AT`] again, so a
/// module whose runs take about that long does not go back and forth.
const INLINE_BELOW: Duration = Duration::from_micros(500);
/// From this average up, runs are timed by the thread's CPU clock.
const CPU_TIMED: Duration = Duration::from_micros(250);
/// The most one wall-clock run counts for.
const SAMPLE_MAX: Duration = Duration::from_millis(8);
/// The highest average wall-clock runs can make: below [`POOL_AT`], so
/// only the CPU clock moves a module to the pool.
const WALL_CEILING: Duration = Duration::from_micros(750);
/// Where a run that spun until its deadline puts the average: on the pool
/// at once, and back only after some fifty quick runs there.
const DEADLINE_COST: Duration = Duration::from_millis(16);
/// Each run's weight in the average: about the last sixteen runs count.
const WEIGHT: u64 = 16;

/// A module's recent evaluation time (a moving average of its runs) and
/// where it runs.
#[derive(Debug, Default)]
pub(super) struct Cost {
    average_ns: AtomicU64,
    pooled: AtomicBool,
}

/// Where a module goes after a run, when that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Move {
    ToPool,
    Inline,
}

/// One run's clocks, started before it.
#[derive(Debug)]
pub(crate) struct RunTimer {
    wall: Instant,
    /// The thread's CPU time, when the run is timed by it.
    cpu: Option<Duration>,
}

impl RunTimer {
    /// How long the run took by the wall clock (what the request's policy
    /// budget is charged), and what counts toward the module's average.
    fn stop(self) -> (Duration, Sample) {
        let wall = self.wall.elapsed();
        let cpu = self
            .cpu
            .and_then(|start| thread_cpu_time().checked_sub(start));
        let sample = match cpu {
            Some(cpu) => Sample::Cpu { cpu, wall },
            None => Sample::Wall(wall),
        };
        (wall, sample)
    }
}

/// One run's time, as it counts toward the average.
#[derive(Debug, Clone, Copy)]
enum Sample {
    Wall(Duration),
    Cpu { cpu: Duration, wall: Duration },
}

impl Cost {
    /// Whether the module runs on the calling (async) thread.
    pub(super) fn inline(&self) -> bool {
        !self.pooled.load(Ordering::Relaxed)
    }

    /// Starts timing a run of the module.
    pub(super) fn start(&self) -> RunTimer {
        let cpu =
            (self.average_ns.load(Ordering::Relaxed) >= nanos(CPU_TIMED)).then(thread_cpu_time);
        RunTimer {
            wall: Instant::now(),
            cpu,
        }
    }

    /// Notes one run, and whether it ran until its deadline stopped it.
    /// Returns its wall-clock time, and the module's move if it made one.
    pub(super) fn observe(
        &self,
        timer: RunTimer,
        reached_deadline: bool,
    ) -> (Duration, Option<Move>) {
        let (wall, sample) = timer.stop();
        (wall, self.note(sample, reached_deadline))
    }

    fn note(&self, sample: Sample, reached_deadline: bool) -> Option<Move> {
        let average = match sample {
            Sample::Cpu { cpu, wall } if reached_deadline && cpu >= wall / 2 => {
                // It spun until it was stopped.
                let floor = nanos(DEADLINE_COST);
                self.average_ns
                    .fetch_max(floor, Ordering::Relaxed)
                    .max(floor)
            }
            Sample::Cpu { cpu, .. } => self.update(|cost| step(cost, nanos(cpu))),
            Sample::Wall(took) => self.update(|cost| {
                let mut next = step(cost, nanos(took.min(SAMPLE_MAX)));
                if reached_deadline {
                    // The CPU clock times the next run, and tells whether
                    // the module or the machine was slow.
                    next = next.max(nanos(CPU_TIMED));
                }
                next.min(cost.max(nanos(WALL_CEILING)))
            }),
        };
        let (from, to, then) = if average >= nanos(POOL_AT) {
            (false, true, Move::ToPool)
        } else if average < nanos(INLINE_BELOW) {
            (true, false, Move::Inline)
        } else {
            return None;
        };
        self.pooled
            .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| then)
    }

    /// Applies `next` to the average; returns the new average.
    fn update(&self, next: impl Fn(u64) -> u64) -> u64 {
        let before = self
            .average_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cost| {
                Some(next(cost))
            })
            .unwrap_or_else(|cost| cost);
        next(before)
    }
}

/// `cost` moved a [`WEIGHT`]th of the way toward `sample`.
fn step(cost: u64, sample: u64) -> u64 {
    if sample >= cost {
        cost.saturating_add((sample - cost) / WEIGHT)
    } else {
        cost - (cost - sample) / WEIGHT
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
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

    /// `n` runs that took `took`, timed as the module's average says
    /// they would be: a quick run held up, where the CPU clock times it,
    /// shows as quick.
    fn runs(cost: &Cost, wall: Duration, cpu: Duration, n: usize) -> Vec<Move> {
        (0..n)
            .filter_map(|_| cost.note(timed(cost, wall, cpu), false))
            .collect()
    }

    /// A run's sample, by the clock the module's average picks.
    fn timed(cost: &Cost, wall: Duration, cpu: Duration) -> Sample {
        if cost.average_ns.load(Ordering::Relaxed) >= nanos(CPU_TIMED) {
            Sample::Cpu { cpu, wall }
        } else {
            Sample::Wall(wall)
        }
    }

    #[test]
    fn a_quick_module_stays_inline_however_often_the_machine_holds_it_up() {
        let cost = Cost::default();
        runs(&cost, QUICK, QUICK, 50);
        assert!(cost.inline());
        // Every run held up by the wall clock, quick on the CPU.
        assert_eq!(runs(&cost, HELD_UP, QUICK, 200), []);
        assert!(cost.inline());
    }

    #[test]
    fn quick_runs_held_up_together_stay_inline() {
        // Many runs start while the average is quick (so timed by the wall
        // clock) and are held up at once, some to their deadline.
        let cost = Cost::default();
        runs(&cost, QUICK, QUICK, 50);
        for i in 0..64 {
            assert_eq!(cost.note(Sample::Wall(HELD_UP), i % 2 == 0), None);
        }
        assert!(cost.inline());
        // The CPU clock times the next ones: quick.
        assert_eq!(runs(&cost, HELD_UP, QUICK, 100), []);
        assert!(cost.inline());
    }

    #[test]
    fn a_quick_run_preempted_to_its_deadline_stays_inline() {
        let cost = Cost::default();
        runs(&cost, QUICK, QUICK, 50);
        // By the wall clock: the next run is timed by the CPU clock.
        let ten = Duration::from_millis(10);
        assert_eq!(cost.note(Sample::Wall(ten), true), None);
        assert!(cost.start().cpu.is_some());
        // By the CPU clock: it barely ran.
        let preempted = Sample::Cpu {
            cpu: QUICK,
            wall: ten,
        };
        assert_eq!(cost.note(preempted, true), None);
        assert!(cost.inline());
    }

    #[test]
    fn a_slow_module_goes_to_the_pool_in_a_few_runs_and_says_so_once() {
        let cost = Cost::default();
        runs(&cost, QUICK, QUICK, 50);
        let moves = runs(&cost, Duration::from_millis(5), Duration::from_millis(5), 3);
        assert!(cost.inline(), "{moves:?}");
        let moves = runs(
            &cost,
            Duration::from_millis(5),
            Duration::from_millis(5),
            20,
        );
        assert!(!cost.inline());
        assert_eq!(moves, [Move::ToPool]);
        // Far slower: two runs.
        let cost = Cost::default();
        runs(
            &cost,
            Duration::from_millis(50),
            Duration::from_millis(50),
            2,
        );
        assert!(!cost.inline());
    }

    #[test]
    fn a_module_slow_on_some_calls_goes_to_the_pool() {
        let cost = Cost::default();
        for _ in 0..20 {
            runs(&cost, QUICK, QUICK, 1);
            runs(&cost, Duration::from_millis(5), Duration::from_millis(5), 1);
        }
        assert!(!cost.inline());
    }

    #[test]
    fn a_module_near_the_line_does_not_go_back_and_forth() {
        let cost = Cost::default();
        let mut moves = runs(
            &cost,
            Duration::from_millis(3),
            Duration::from_millis(3),
            30,
        );
        for _ in 0..50 {
            moves.extend(runs(
                &cost,
                Duration::from_micros(700),
                Duration::from_micros(700),
                4,
            ));
            moves.extend(runs(
                &cost,
                Duration::from_micros(1300),
                Duration::from_micros(1300),
                4,
            ));
        }
        assert_eq!(moves, [Move::ToPool]);
        assert!(!cost.inline());
    }

    #[test]
    fn a_module_spinning_to_its_deadline_goes_to_the_pool_on_its_second_run_and_stays_a_while() {
        let cost = Cost::default();
        runs(&cost, QUICK, QUICK, 50);
        let spin = Duration::from_millis(10);
        // The first, by the wall clock, may be the machine's doing.
        assert_eq!(cost.note(timed(&cost, spin, spin), true), None);
        assert!(cost.inline());
        // The second, by the CPU clock, is not.
        assert_eq!(
            cost.note(timed(&cost, spin, spin), true),
            Some(Move::ToPool)
        );
        assert!(!cost.inline());
        // Quick runs on the pool bring it back, but not soon.
        assert_eq!(runs(&cost, QUICK, QUICK, 30), []);
        assert!(!cost.inline());
        assert_eq!(runs(&cost, QUICK, QUICK, 30), [Move::Inline]);
        assert!(cost.inline());
    }

    #[test]
    fn the_cpu_clock_times_runs_only_from_its_threshold_up() {
        let cost = Cost::default();
        assert!(cost.start().cpu.is_none());
        runs(&cost, HELD_UP, HELD_UP, 1);
        let timer = cost.start();
        assert!(timer.cpu.is_some());
        // A thread that sleeps spends no CPU: the run counts as quick.
        std::thread::sleep(Duration::from_millis(20));
        let (wall, sample) = timer.stop();
        assert!(wall >= Duration::from_millis(20), "{wall:?}");
        match sample {
            Sample::Cpu { cpu, .. } => assert!(cpu < Duration::from_millis(5), "{cpu:?}"),
            Sample::Wall(w) => panic!("timed by the wall clock: {w:?}"),
        }
    }
}
