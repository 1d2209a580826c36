//! Seeds, the deterministic generator every decision is drawn from, and the settings read
//! from the environment.
//!
//! Decisions are not drawn from one shared stream (whose order would depend on thread
//! timing) but hashed from the seed and the decision's identity — "the 7th heartbeat of
//! process 3", "attempt 2 of task 12" — so a replay makes the same decisions even though
//! the interleaving of threads differs.

use std::collections::BTreeSet;
use std::time::Duration;

/// Behaviours the test can switch off (`DURABLE_INVARIANT_OFF=a,b`), to look past a known
/// defect that fails most seeds. All are on by default.
pub const BEHAVIOURS: &[(&str, &str)] = &[
    ("fail", "tasks fail with a retryable error"),
    ("permanent", "tasks fail with a permanent error"),
    (
        "panic-sync",
        "tasks panic in Task::run before returning their future",
    ),
    ("panic-await", "tasks panic after an await"),
    (
        "panic-display",
        "tasks return an error whose Display panics",
    ),
    (
        "cancel-self",
        "tasks cancel their own token, then return an error",
    ),
    ("timeout", "tasks exceed their timeout"),
    ("long", "tasks run past their lease"),
    (
        "store-error",
        "store calls fail before reaching the database",
    ),
    (
        "error-after",
        "store calls fail after the database applied them",
    ),
    (
        "store-delay",
        "store calls are delayed before or after the database",
    ),
    ("heartbeat-delay", "heartbeats are delayed by up to a lease"),
    (
        "call-timeout",
        "store calls time out while the call goes on in the background",
    ),
    (
        "crash",
        "runtimes are crashed (their Tokio runtime dropped) and restarted",
    ),
    (
        "shutdown",
        "runtimes are shut down with small graces and restarted",
    ),
    ("cancel", "pending tasks are cancelled"),
];

/// The SplitMix64 finalizer: a good 64-bit mix.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for the decision identified by `parts`.
pub fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3, |h, &p| {
        mix(h ^ p.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    })
}

/// The queue with a per-runtime limit in some iterations.
pub const NARROW: &str = "narrow";

/// The queue of task `index`: `narrow` for about a third of them.
pub fn queue_of(seed: u64, index: u32) -> &'static str {
    if Rng::new(hash(&[seed, 5, u64::from(index)])).chance(300) {
        NARROW
    } else {
        durable_core::store::DEFAULT_QUEUE
    }
}

/// SplitMix64: small, fast, and stable forever (a replay must not depend on a crate version).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A duration in `lo..=hi` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }
}

/// The behaviours switched off.
#[derive(Debug, Clone, Default)]
pub struct Off(BTreeSet<&'static str>);

impl Off {
    /// Whether `behaviour` (one of [`BEHAVIOURS`]) is on.
    pub fn on(&self, behaviour: &str) -> bool {
        debug_assert!(BEHAVIOURS.iter().any(|(name, _)| *name == behaviour));
        !self.0.contains(behaviour)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn parse(list: &str) -> Self {
        let mut off = BTreeSet::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let Some((name, _)) = BEHAVIOURS.iter().find(|(name, _)| *name == word) else {
                let known: Vec<_> = BEHAVIOURS.iter().map(|(n, _)| *n).collect();
                panic!("DURABLE_INVARIANT_OFF: unknown behaviour `{word}`; known: {known:?}");
            };
            off.insert(*name);
        }
        Self(off)
    }
}

impl std::fmt::Display for Off {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.0.iter().copied().collect();
        f.write_str(&names.join(","))
    }
}

/// What to run, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// One seed per iteration.
    pub seeds: Vec<u64>,
    pub off: Off,
}

/// Iterations per backend in `cargo test`: a few seconds each.
const SHORT_ITERATIONS: u64 = 2;

impl Settings {
    /// `DURABLE_INVARIANT_SEED` (decimal or `0x` hex: replays that seed, once unless
    /// `DURABLE_INVARIANT_ITERATIONS` asks for more, which then follow from it),
    /// `DURABLE_INVARIANT_ITERATIONS`, `DURABLE_INVARIANT_OFF`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let seed = var("DURABLE_INVARIANT_SEED").map(|raw| {
            parse_seed(&raw).unwrap_or_else(|| panic!("DURABLE_INVARIANT_SEED={raw}: not a number"))
        });
        let iterations = var("DURABLE_INVARIANT_ITERATIONS").map(|raw| {
            raw.trim()
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("DURABLE_INVARIANT_ITERATIONS={raw}: {e}"))
        });
        let (base, iterations) = match seed {
            Some(seed) => (seed, iterations.unwrap_or(1)),
            None => (
                hash(&[uuid::Uuid::new_v4().as_u64_pair().0]),
                iterations.unwrap_or(SHORT_ITERATIONS),
            ),
        };
        // The first iteration runs the base seed itself, so a printed seed replays as is.
        let seeds = (0..iterations.max(1))
            .map(|i| if i == 0 { base } else { hash(&[base, i]) })
            .collect();
        let off = Off::parse(&var("DURABLE_INVARIANT_OFF").unwrap_or_default());
        Self { seeds, off }
    }
}

fn parse_seed(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    }
}

#[test]
fn seeds_parse_in_both_notations() {
    assert_eq!(parse_seed("0x1f"), Some(31));
    assert_eq!(parse_seed(" 31 "), Some(31));
    assert_eq!(parse_seed("x"), None);
    let mut a = Rng::new(hash(&[7, 1]));
    let mut b = Rng::new(hash(&[7, 1]));
    assert_eq!(a.next(), b.next(), "same seed, same stream");
    assert!((0..1000).all(|_| a.between(3, 5) >= 3 && b.between(3, 5) <= 5));
}
