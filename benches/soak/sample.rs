//! What the gateway process holds over time (`VmRSS` from
//! `/proc/PID/status`, entries of `/proc/PID/fd`), and the soak's verdict:
//! no unexpected answer, no error logged, the gateway alive, and RSS and
//! open fds at the end within 10% of their level just after warm-up.
//!
//! A level is the *lowest* sample of its window, not its median: the
//! allocator hands freed memory back to the kernel lazily, so RSS floats
//! above what the process holds by a few MiB that come and go (one CI run
//! read 77 → 87 → 81 MiB by tenths), while what it holds is the floor under
//! those swings — and a leak raises the floor.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::Plan;
use super::mix::Count;
use super::procs;

/// How much RSS and open fds may grow between warm-up and the end.
const FLAT: f64 = 0.10;
/// The share of the run that is warm-up (caches, pools, the store filling
/// to its retention), and the share each compared window spans.
const WARM_UP: f64 = 0.25;
const WINDOW: f64 = 0.10;

/// One sample of the gateway process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) rss_kib: u64,
    pub(crate) fds: u64,
}

/// Samples `pid` every `period` until `until`.
pub(crate) async fn every(pid: u32, period: Duration, until: Instant) -> Vec<Sample> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(period);
    while Instant::now() < until {
        ticks.tick().await;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        samples.push(Sample {
            at: started.elapsed(),
            rss_kib: procs::status_kib(pid, "VmRSS"),
            fds,
        });
    }
    samples
}

/// The samples as CSV (seconds, RSS KiB, fds), for plotting a long run.
pub(crate) fn write_csv(path: &std::path::Path, samples: &[Sample]) {
    let mut text = String::from("seconds,rss_kib,fds\n");
    for s in samples {
        text.push_str(&format!(
            "{:.1},{},{}\n",
            s.at.as_secs_f64(),
            s.rss_kib,
            s.fds
        ));
    }
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("soak: cannot write {}: {e}", path.display());
    }
}

/// A resource's level after warm-up and at the end (the floor of a window).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub(crate) after_warm_up: u64,
    pub(crate) end: u64,
}

impl Level {
    fn of(samples: &[Sample], length: Duration, value: fn(&Sample) -> u64) -> Self {
        let window = |from: f64, to: f64| {
            samples
                .iter()
                .filter(|s| {
                    let at = s.at.as_secs_f64() / length.as_secs_f64();
                    at >= from && at < to
                })
                .map(value)
                .min()
                .unwrap_or(0)
        };
        Self {
            after_warm_up: window(WARM_UP, WARM_UP + WINDOW),
            end: window(1.0 - WINDOW, f64::INFINITY),
        }
    }

    fn growth(self) -> f64 {
        self.end as f64 / self.after_warm_up.max(1) as f64 - 1.0
    }

    fn flat(self) -> bool {
        self.after_warm_up > 0 && self.end > 0 && self.growth() <= FLAT
    }
}

/// The outcome of a soak run.
#[derive(Debug)]
pub(crate) struct Verdict {
    length: Duration,
    rate: u32,
    ran: Duration,
    counts: BTreeMap<&'static str, Count>,
    rss: Level,
    fds: Level,
    peak_rss_kib: u64,
    /// RSS (MiB) at each tenth of the run, for the report.
    trend: Vec<u64>,
    samples: usize,
    log_errors: Vec<String>,
    alive: bool,
}

impl Verdict {
    pub(crate) fn new(
        plan: &Plan,
        ran: Duration,
        counts: BTreeMap<&'static str, Count>,
        samples: Vec<Sample>,
        log_errors: Vec<String>,
        alive: bool,
    ) -> Self {
        Self {
            length: plan.length,
            rate: plan.rate.unwrap_or(0),
            ran,
            counts,
            rss: Level::of(&samples, plan.length, |s| s.rss_kib),
            fds: Level::of(&samples, plan.length, |s| s.fds),
            peak_rss_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
            trend: (1..=10)
                .filter_map(|tenth| samples.get((samples.len() * tenth / 10).saturating_sub(1)))
                .map(|s| s.rss_kib / 1024)
                .collect(),
            samples: samples.len(),
            log_errors,
            alive,
        }
    }

    fn unexpected(&self) -> u64 {
        self.counts.values().map(|c| c.unexpected).sum()
    }

    fn operations(&self) -> u64 {
        self.counts.values().map(|c| c.ok + c.unexpected).sum()
    }

    pub(crate) fn passed(&self) -> bool {
        self.unexpected() == 0
            && self.operations() > 0
            && self.log_errors.is_empty()
            && self.alive
            && self.rss.flat()
            && self.fds.flat()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "soak {}: {} operations in {:.0} s ({:.0}/s overall; mixed rate {}/s), {} unexpected",
            if self.passed() { "PASSED" } else { "FAILED" },
            self.operations(),
            self.ran.as_secs_f64(),
            self.operations() as f64 / self.ran.as_secs_f64().max(1e-9),
            self.rate,
            self.unexpected()
        )?;
        for (kind, c) in &self.counts {
            writeln!(
                f,
                "  {kind:<38} {:>9} ok {:>6} unexpected",
                c.ok, c.unexpected
            )?;
            for e in &c.examples {
                writeln!(f, "    e.g. {e}")?;
            }
        }
        let pct = |l: Level| l.growth() * 100.0;
        writeln!(
            f,
            "  RSS  after warm-up {} KiB, end {} KiB ({:+.1}%; peak {} KiB){}",
            self.rss.after_warm_up,
            self.rss.end,
            pct(self.rss),
            self.peak_rss_kib,
            if self.rss.flat() { "" } else { "  NOT FLAT" }
        )?;
        writeln!(f, "  RSS by tenths of the run (MiB): {:?}", self.trend)?;
        writeln!(
            f,
            "  fds  after warm-up {}, end {} ({:+.1}%){}",
            self.fds.after_warm_up,
            self.fds.end,
            pct(self.fds),
            if self.fds.flat() { "" } else { "  NOT FLAT" }
        )?;
        writeln!(
            f,
            "  {} samples over {:?}; gateway {}",
            self.samples,
            self.length,
            if self.alive { "alive" } else { "DEAD" }
        )?;
        for line in &self.log_errors {
            writeln!(f, "  logged: {line}")?;
        }
        Ok(())
    }
}
