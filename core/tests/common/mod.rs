//! Shared helpers for integration and property tests: a seeded generator and
//! a runner that reports the failing seed.
#![allow(dead_code)]

/// SplitMix64: small, fast, and good enough to drive property tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Number of cases for a property: `PROP_CASES` from the environment, else
/// `default` (scaled down under Miri).
pub fn cases(default: u64) -> u64 {
    if cfg!(miri) {
        return 8;
    }
    std::env::var("PROP_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Runs `property` for `n` seeds; on failure, panics naming the seed, which
/// `PROP_SEED=<seed>` replays alone.
pub fn check(n: u64, mut property: impl FnMut(&mut Rng)) {
    if let Some(seed) = std::env::var("PROP_SEED").ok().and_then(|s| s.parse::<u64>().ok()) {
        property(&mut Rng::new(seed));
        return;
    }
    for seed in 0..cases(n) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| property(&mut Rng::new(seed))));
        if let Err(e) = result {
            eprintln!("property failed for seed {seed}; replay with PROP_SEED={seed}");
            std::panic::resume_unwind(e);
        }
    }
}
