//! Shared helpers for the libresilience benches: pinning, load reporting and
//! medians. The benches themselves live in `main.rs` and one module per
//! subject.

/// Pins the calling thread to CPU `index` (modulo the CPU count) and returns
/// whether pinning succeeded.
///
/// The core list is read once, on first use, so that a thread started by an
/// already-pinned thread (whose allowed set is then one core) still reaches
/// every core. Call it (or [`cores`]) from the main thread before spawning.
pub fn pin_to(index: usize) -> bool {
    let ids = cores();
    if ids.is_empty() {
        return false;
    }
    core_affinity::set_for_current(ids[index % ids.len()])
}

/// The cores this process may run on, as seen the first time it is asked.
pub fn cores() -> &'static [core_affinity::CoreId] {
    static CORES: std::sync::OnceLock<Vec<core_affinity::CoreId>> = std::sync::OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// The 1-minute load average, from `/proc/loadavg` (None where unavailable).
/// Printed beside every figure so that a run on a busy machine is recognisable.
pub fn load_average() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// The median of `xs` (sorts in place). Panics on an empty slice.
pub fn median(xs: &mut [f64]) -> f64 {
    assert!(!xs.is_empty(), "median of nothing");
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// `n` scrambled `u64` keys (SplitMix64 of the index and `salt`), so that
/// neighbours in an access order are not neighbours in any table.
pub fn scrambled_keys(n: usize, salt: u64) -> Vec<u64> {
    (0..n as u64)
        .map(|i| {
            let mut z = (i | (salt << 48)).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

/// `len` samples of Zipf(0.99) ranks over `n` scrambled keys.
pub fn zipf_trace(n: usize, len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n);
    let mut sum = 0.0;
    for i in 1..=n {
        sum += 1.0 / (i as f64).powf(0.99);
        cdf.push(sum);
    }
    let ks = scrambled_keys(n, 77);
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * sum;
            ks[cdf.partition_point(|&c| c < u).min(n - 1)]
        })
        .collect()
}

/// A `len`-byte value (at least 8) whose first word is `k`.
pub fn keyed_value(len: usize, k: u64) -> Box<[u8]> {
    let mut v = vec![0u8; len];
    v[..8].copy_from_slice(&k.to_le_bytes());
    v.into_boxed_slice()
}

/// Times `threads` threads (pinned) each running `op(thread, iteration)`
/// `iters` times; returns the wall time of the slowest.
pub fn timed_threads(threads: usize, iters: u64, op: &(dyn Fn(usize, u64) + Sync)) -> std::time::Duration {
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    pin_to(t);
                    barrier.wait();
                    let start = std::time::Instant::now();
                    for i in 0..iters {
                        op(t, i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("bench thread")).max().unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
