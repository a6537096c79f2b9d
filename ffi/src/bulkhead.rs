//! `rsl_bulkhead`: at most N calls in flight, at most M callers waiting.
//!
//! Permits are counted, not named: each successful acquire is paired with
//! one `rsl_bulkhead_release`. A release with no permit held is refused and
//! counted; the count never goes below zero.

use crate::boundary::{boundary, boundary_or, fail};
use crate::handle::{self, opaque};
use crate::status::{rsl_status, RSL_ERR_FULL, RSL_ERR_INVALID_ARG, RSL_ERR_REJECTED, RSL_ERR_TIMEOUT};
use resilience::limit::{Bulkhead, BulkheadError};
use std::time::Duration;

/// Largest `max_concurrent` / `max_waiters` accepted (the counts share one
/// 64-bit word).
pub const RSL_BULKHEAD_MAX: u64 = u32::MAX as u64;

/// Counters and gauges of a bulkhead.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_bulkhead_stats {
    /// The permit count (`max_concurrent`).
    pub max_concurrent: u64,
    /// Permits held now.
    pub in_flight: u64,
    /// Callers waiting now (in rsl_bulkhead_acquire_timeout).
    pub waiting: u64,
    /// rsl_bulkhead_try_acquire calls refused (RSL_ERR_REJECTED).
    pub rejected: u64,
    /// rsl_bulkhead_acquire_timeout calls refused at once (RSL_ERR_FULL).
    pub rejected_full: u64,
    /// rsl_bulkhead_acquire_timeout calls that waited and got a permit.
    pub waited: u64,
    /// rsl_bulkhead_acquire_timeout calls that timed out.
    pub timed_out: u64,
    /// rsl_bulkhead_release calls with no permit held (refused).
    pub invalid_releases: u64,
    /// Reserved for future fields, zero.
    pub _reserved: [u64; 4],
}

/// A concurrency limit; every function on it is thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_bulkhead {
    _private: [u8; 0],
}
opaque!(rsl_bulkhead => Bulkhead);

/// Creates a bulkhead of `max_concurrent` permits (1..=RSL_BULKHEAD_MAX)
/// with room for `max_waiters` callers waiting in
/// rsl_bulkhead_acquire_timeout (0..=RSL_BULKHEAD_MAX; 0: never wait).
///
/// Ownership: the caller owns `*bulkhead_out` and frees it with
/// rsl_bulkhead_free. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `bulkhead_out` is NULL, RSL_ERR_INVALID_ARG
/// if `max_concurrent` is 0 or either count exceeds RSL_BULKHEAD_MAX,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bulkhead_new(
    max_concurrent: u64,
    max_waiters: u64,
    bulkhead_out: *mut *mut rsl_bulkhead,
) -> rsl_status {
    boundary(|| {
        handle::require_out(bulkhead_out, "bulkhead_out")?;
        if max_concurrent == 0 || max_concurrent > RSL_BULKHEAD_MAX {
            return Err(fail(
                RSL_ERR_INVALID_ARG,
                format!("max_concurrent {max_concurrent} is not in 1..={RSL_BULKHEAD_MAX}"),
            ));
        }
        if max_waiters > RSL_BULKHEAD_MAX {
            return Err(fail(
                RSL_ERR_INVALID_ARG,
                format!("max_waiters {max_waiters} exceeds {RSL_BULKHEAD_MAX}"),
            ));
        }
        let b = Bulkhead::new(max_concurrent as usize, max_waiters as usize);
        handle::write(bulkhead_out, handle::into_raw(b), "bulkhead_out")
    })
}

/// Frees the bulkhead. NULL is a no-op. No other call on it may run
/// concurrently (no caller may be waiting in it) or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bulkhead_free(bulkhead: *mut rsl_bulkhead) {
    boundary_or((), || handle::free(bulkhead))
}

/// Takes a permit if one is free now; never waits (one compare-exchange).
/// Pair each RSL_OK with one rsl_bulkhead_release.
///
/// Thread-safe. Returns RSL_OK (a permit is held), RSL_ERR_REJECTED (every
/// permit is taken; an answer, `rsl_last_error` is not set),
/// RSL_ERR_NULL_ARG if `bulkhead` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bulkhead_try_acquire(bulkhead: *const rsl_bulkhead) -> rsl_status {
    boundary(|| if handle::borrow(bulkhead)?.try_acquire_raw() { Ok(()) } else { Err(RSL_ERR_REJECTED) })
}

/// Takes a permit, blocking the calling thread up to `timeout_ns`
/// nanoseconds for one to come free (UINT64_MAX: no deadline; 0: no wait
/// beyond the first try). Pair each RSL_OK with one rsl_bulkhead_release.
///
/// Thread-safe. Returns RSL_OK (a permit is held), RSL_ERR_FULL (no permit
/// free and `max_waiters` callers already waiting: refused at once),
/// RSL_ERR_TIMEOUT (no permit came free in time), RSL_ERR_NULL_ARG if
/// `bulkhead` is NULL, RSL_ERR_PANIC. `rsl_last_error` is not set for
/// RSL_ERR_FULL or RSL_ERR_TIMEOUT (answers, not failures).
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bulkhead_acquire_timeout(bulkhead: *const rsl_bulkhead, timeout_ns: u64) -> rsl_status {
    boundary(|| {
        let b = handle::borrow(bulkhead)?;
        match b.acquire_timeout(Duration::from_nanos(timeout_ns)) {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(BulkheadError::Full) => Err(RSL_ERR_FULL),
            Err(BulkheadError::Timeout) => Err(RSL_ERR_TIMEOUT),
        }
    })
}

/// Returns one permit taken with rsl_bulkhead_try_acquire or
/// rsl_bulkhead_acquire_timeout, waking one waiter if any.
///
/// Thread-safe. Returns RSL_OK, RSL_ERR_INVALID_ARG if no permit is held
/// (an unmatched release: refused, counted in `invalid_releases`, the count
/// stays at zero), RSL_ERR_NULL_ARG if `bulkhead` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bulkhead_release(bulkhead: *const rsl_bulkhead) -> rsl_status {
    boundary(|| {
        if handle::borrow(bulkhead)?.release() {
            Ok(())
        } else {
            Err(fail(RSL_ERR_INVALID_ARG, "rsl_bulkhead_release: no permit is held"))
        }
    })
}

/// Writes the bulkhead's counters and gauges to `*stats_out` (reserved
/// fields zeroed; gauges read one after another, not as one snapshot).
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `bulkhead` or `stats_out` is
/// NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_bulkhead_get_stats(
    bulkhead: *const rsl_bulkhead,
    stats_out: *mut rsl_bulkhead_stats,
) -> rsl_status {
    boundary(|| {
        let b = handle::borrow(bulkhead)?;
        handle::require_out(stats_out, "stats_out")?;
        let s = b.stats();
        let stats = rsl_bulkhead_stats {
            max_concurrent: b.max_concurrent() as u64,
            in_flight: s.in_flight as u64,
            waiting: s.waiting as u64,
            rejected: s.rejected,
            rejected_full: s.rejected_full,
            waited: s.waited,
            timed_out: s.timed_out,
            invalid_releases: s.invalid_releases,
            _reserved: [0; 4],
        };
        handle::write(stats_out, stats, "stats_out")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_size_is_fixed() {
        assert_eq!(std::mem::size_of::<rsl_bulkhead_stats>(), 96);
    }
}
