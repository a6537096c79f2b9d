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

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
