//! The fuzz targets on stable Rust, in CI: every committed seed in
//! `fuzz/seeds/<target>/` replayed through the same entry points the
//! cargo-fuzz targets call (`toolgate::fuzz`), then a few seconds of random
//! mutations of those seeds per target. A failing mutation is printed with
//! the RNG seed that made it (`TOOLGATE_FUZZ_SEED=<n>` replays the run);
//! add the input under `fuzz/seeds/<target>/regression-*` with the fix.
//! Longer runs: `TOOLGATE_FUZZ_SECS`, or cargo-fuzz (README "Fuzzing").

mod regressions;
mod seeds;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use serde_json::Value;
use toolgate_policy_sdk::{Constraint, Violation};

/// `toolgate_policy_sdk` for the host/SDK agreement checks.
struct NativeSdk;

impl toolgate::fuzz::Sdk for NativeSdk {
    fn glob(&self, pattern: &str, text: &str) -> bool {
        toolgate_policy_sdk::glob::matches(pattern, text)
    }

    fn check(&self, constraint: &Value, arguments: &Value) -> Result<bool, String> {
        let constraint: Constraint =
            serde_json::from_value(constraint.clone()).map_err(|e| e.to_string())?;
        match constraint.check(arguments) {
            Ok(()) => Ok(true),
            Err(Violation::Missing { .. } | Violation::Mismatch { .. }) => Ok(false),
            Err(Violation::Unusable { why, .. }) => Err(why),
        }
    }
}

/// How long each target is mutated for: 3 s in CI, or
/// `TOOLGATE_FUZZ_SECS` for the longer runs (README "Fuzzing").
fn mutate_for() -> Duration {
    let secs = std::env::var("TOOLGATE_FUZZ_SECS")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("TOOLGATE_FUZZ_SECS={s:?}: {e}"))
        })
        .unwrap_or(3);
    Duration::from_secs(secs)
}

fn committed(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seeds::dir(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Runs one input; a panic names the target and shows the input.
fn run(target: &str, what: &str, data: &[u8]) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        assert!(
            toolgate::fuzz::run(target, data, &NativeSdk),
            "no target {target}"
        );
    }));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        panic!(
            "fuzz target {target} failed on {what}: {message}\ninput ({} bytes): {:?}",
            data.len(),
            String::from_utf8_lossy(&data[..data.len().min(4096)])
        );
    }
}

#[test]
fn every_target_has_committed_seeds_matching_the_tests() {
    let written = seeds::all();
    for target in toolgate::fuzz::TARGETS {
        let on_disk = committed(target);
        for (t, name, bytes) in &written {
            if t == &target {
                let found = on_disk.iter().find(|(n, _)| n == name);
                assert_eq!(
                    found.map(|(_, b)| b),
                    Some(bytes),
                    "fuzz/seeds/{target}/{name} is stale: run fuzz_smoke::seeds::write"
                );
            }
        }
    }
    let size: usize = toolgate::fuzz::TARGETS
        .iter()
        .flat_map(|t| committed(t))
        .map(|(_, b)| b.len())
        .sum();
    assert!(size < 2 << 20, "committed seeds stay under 2 MB: {size}");
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let target = stringify!($name);
            let seeds = committed(target);
            for (name, data) in &seeds {
                run(target, &format!("seed {name}"), data);
            }
            mutate(target, &seeds);
        }
    )*
    #[test]
    fn every_target_is_smoked() {
        let mut smoked = [$(stringify!($name)),*];
        let mut all = toolgate::fuzz::TARGETS;
        smoked.sort_unstable();
        all.sort_unstable();
        assert_eq!(smoked, all);
    }
    };
}

targets!(
    jsonrpc,
    understand,
    sse,
    jwt,
    jwks,
    config,
    policy_answer,
    constraint,
    admin_body
);

/// Random mutations of the seeds for [`mutate_for`].
fn mutate(target: &str, seeds: &[(String, Vec<u8>)]) {
    let seed = std::env::var("TOOLGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let budget = mutate_for();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let (name, base) = &seeds[rng.below(seeds.len())];
        let mut data = base.clone();
        for _ in 0..=rng.below(4) {
            let other = &seeds[rng.below(seeds.len())].1;
            mutate_once(&mut rng, &mut data, other);
        }
        run(
            target,
            &format!("a mutation of {name} (TOOLGATE_FUZZ_SEED={seed})"),
            &data,
        );
        runs += 1;
    }
    eprintln!("fuzz_smoke {target}: {runs} mutations (TOOLGATE_FUZZ_SEED={seed})");
}

/// Bytes that matter to the parsers under test.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\\",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\0",
    b"*",
    b"?",
    b"%",
    b"/",
    b"~",
    b".",
    b"=",
    b"-1",
    b"1e400",
    b"null",
    b"true",
    b"0",
    b"18446744073709551616",
    b"\"\\ud800\"",
    b"\xff",
    b"\xc3\xa9",
    b"data: ",
    b"id: ",
    b"event: ",
    b"tools/call",
    b"=?base64?",
    b"?=",
    b"spiffe://",
    b"[[routes]]\n",
];

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let at = |rng: &mut Rng, len: usize| rng.below(len + 1);
    match rng.below(7) {
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = at(rng, data.len());
            data.insert(i, rng.below(256) as u8);
        }
        2 if !data.is_empty() => {
            let i = rng.below(data.len());
            let n = 1 + rng.below((data.len() - i).min(16));
            data.drain(i..i + n);
        }
        3 => {
            let i = at(rng, data.len());
            let token = TOKENS[rng.below(TOKENS.len())];
            data.splice(i..i, token.iter().copied());
        }
        4 if !data.is_empty() => {
            let i = rng.below(data.len());
            let n = 1 + rng.below((data.len() - i).min(32));
            let piece = data[i..i + n].to_vec();
            let j = at(rng, data.len());
            data.splice(j..j, piece);
        }
        5 if !other.is_empty() => {
            let i = at(rng, data.len());
            let j = rng.below(other.len());
            let n = 1 + rng.below((other.len() - j).min(64));
            data.truncate(i);
            data.extend_from_slice(&other[j..j + n]);
        }
        _ if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] = b"0123456789azAZ \"{}[]:,"[rng.below(22)];
        }
        _ => data.push(rng.below(256) as u8),
    }
}

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x % n.max(1) as u64) as usize
    }
}
