//! `rsl_limiter`: one token bucket (GCRA on one atomic word), and the types
//! every rate limiter answers with: `rsl_quota` and `rsl_decision`.
//!
//! A denial is an answer, not an error: an acquire returns RSL_OK and writes
//! an `rsl_decision` whether or not the tokens were granted.

use crate::boundary::{boundary, boundary_or, fail, Result};
use crate::handle::{self, opaque, Plain};
use crate::status::{rsl_status, RSL_ERR_INVALID_ARG, RSL_ERR_REJECTED};
use resilience::clock::{Clock, Nanos, SECOND};
use resilience::limit::{AutoClock, Decision, Denied, Quota, Reason, TokenBucket};

/// `rsl_decision.retry_after_ns` when there is no retry time: the request
/// was allowed, or no wait can help (reason RSL_REASON_EXCEEDS_LIMIT or
/// RSL_REASON_TABLE_FULL). redis-cell answers -1 in these cases.
pub const RSL_RETRY_AFTER_NONE: u64 = u64::MAX;

/// Reason code: allowed, the tokens were taken (none for quantity 0).
pub const RSL_REASON_ALLOWED: i32 = 0;
/// Reason code: allowed without any state (a keyed limiter full of live
/// keys, with RSL_FULL_POLICY_ALLOW_UNTRACKED).
pub const RSL_REASON_UNTRACKED: i32 = 1;
/// Reason code: denied, not enough tokens now; `retry_after_ns` says when.
pub const RSL_REASON_LIMITED: i32 = 2;
/// Reason code: denied, the quantity exceeds the bucket's `limit` and can
/// never be granted.
pub const RSL_REASON_EXCEEDS_LIMIT: i32 = 3;
/// Reason code: denied, a keyed limiter was full of live keys and its
/// policy is RSL_FULL_POLICY_DENY.
pub const RSL_REASON_TABLE_FULL: i32 = 4;

/// Clock code: the coarse monotonic clock (about 5 ns, 4 ms steps) when the
/// bucket's burst window is at least 64 of its steps, the precise one
/// otherwise. Both read CLOCK_MONOTONIC's timeline.
pub const RSL_LIMITER_CLOCK_AUTO: i32 = 0;
/// Clock code: always the precise CLOCK_MONOTONIC (about 20 ns a read).
pub const RSL_LIMITER_CLOCK_PRECISE: i32 = 1;
/// Clock code: always CLOCK_MONOTONIC_COARSE (fast, moves in kernel ticks;
/// a lagging clock only ever denies a little longer, never grants more).
pub const RSL_LIMITER_CLOCK_COARSE: i32 = 2;

/// A rate, as redis-cell's `CL.THROTTLE key max_burst count period`: `count`
/// tokens per `period_ns`, in a bucket holding `max_burst + 1` tokens (the
/// decision's `limit`). Refused with RSL_ERR_INVALID_ARG: `count` 0,
/// `period_ns` 0, `period_ns / count` below 1 ns, or a burst window
/// `period_ns / count * (max_burst + 1)` of 2^62 ns or more.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_quota {
    /// Extra tokens beyond one the bucket holds when full.
    pub max_burst: u64,
    /// Tokens added per period, >= 1.
    pub count: u64,
    /// The period in nanoseconds, >= count.
    pub period_ns: u64,
}

impl rsl_quota {
    pub(crate) fn to_core(self) -> Result<Quota> {
        Quota::new(self.max_burst, self.count, self.period_ns)
            .map_err(|e| fail(RSL_ERR_INVALID_ARG, format!("rsl_quota: {e}")))
    }

    /// 100 per second, holding 100.
    pub(crate) const DEFAULT: rsl_quota = rsl_quota { max_burst: 99, count: 100, period_ns: SECOND };
}

/// The answer to an acquire: redis-cell's five facts (`CL.THROTTLE`'s
/// reply, in nanoseconds) and a reason. Written by the library only.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_decision {
    /// Tokens in a full bucket (`max_burst + 1`).
    pub limit: u64,
    /// Tokens left after this decision (rounded down).
    pub remaining: u64,
    /// When denied with RSL_REASON_LIMITED: nanoseconds until the same
    /// request would be allowed. RSL_RETRY_AFTER_NONE (UINT64_MAX) when
    /// allowed and when no wait can help.
    pub retry_after_ns: u64,
    /// Nanoseconds until the bucket is full again.
    pub reset_after_ns: u64,
    /// Why (RSL_REASON_...).
    pub reason: i32,
    /// Whether the tokens were granted.
    pub allowed: bool,
    /// Reserved, zero.
    pub _reserved: [u8; 3],
}

pub(crate) fn reason_code(r: Reason) -> i32 {
    match r {
        Reason::Allowed => RSL_REASON_ALLOWED,
        Reason::Untracked => RSL_REASON_UNTRACKED,
        Reason::Limited => RSL_REASON_LIMITED,
        Reason::ExceedsLimit => RSL_REASON_EXCEEDS_LIMIT,
        Reason::TableFull => RSL_REASON_TABLE_FULL,
    }
}

impl From<Decision> for rsl_decision {
    #[inline]
    fn from(d: Decision) -> Self {
        rsl_decision {
            limit: d.limit,
            remaining: d.remaining,
            retry_after_ns: d.retry_after.unwrap_or(RSL_RETRY_AFTER_NONE),
            reset_after_ns: d.reset_after,
            reason: reason_code(d.reason),
            allowed: d.allowed,
            _reserved: [0; 3],
        }
    }
}

/// The clock for `quota` from an RSL_LIMITER_CLOCK_* code.
pub(crate) fn clock_arg(code: i32, quota: &Quota) -> Result<AutoClock> {
    match code {
        RSL_LIMITER_CLOCK_AUTO => Ok(AutoClock::for_window(quota.burst_window())),
        RSL_LIMITER_CLOCK_PRECISE => Ok(AutoClock::precise()),
        RSL_LIMITER_CLOCK_COARSE => Ok(AutoClock::coarse()),
        c => Err(fail(RSL_ERR_INVALID_ARG, format!("clock {c} is not an RSL_LIMITER_CLOCK_* code"))),
    }
}

/// A token bucket's settings. Start from `rsl_limiter_config_default()`;
/// the `_reserved` tail keeps the size fixed when fields are added and must
/// stay zero (nonzero is refused with RSL_ERR_INVALID_ARG).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_limiter_config {
    /// The rate. Default 100 per second, holding 100.
    pub quota: rsl_quota,
    /// RSL_LIMITER_CLOCK_AUTO (default), _PRECISE or _COARSE: the clock read
    /// by the calls without `_at`.
    pub clock: i32,
    /// Reserved, must be zero.
    pub _reserved0: u32,
    /// Reserved for future fields, must be zero.
    pub _reserved: [u64; 6],
}

// SAFETY: repr(C), integer fields only.
unsafe impl Plain for rsl_limiter_config {}

/// A token bucket; every function on it is thread-safe and lock-free.
#[allow(non_camel_case_types)]
pub struct rsl_limiter {
    _private: [u8; 0],
}
opaque!(rsl_limiter => TokenBucket);

/// Returns the default settings: 100 tokens per second in a bucket of 100,
/// RSL_LIMITER_CLOCK_AUTO, reserved fields zero. Thread-safe. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_config_default() -> rsl_limiter_config {
    rsl_limiter_config {
        quota: rsl_quota::DEFAULT,
        clock: RSL_LIMITER_CLOCK_AUTO,
        _reserved0: 0,
        _reserved: [0; 6],
    }
}

/// Creates a full token bucket with `config` (NULL: the defaults).
///
/// Ownership: the caller owns `*limiter_out` and frees it with
/// rsl_limiter_free. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `limiter_out` is NULL; RSL_ERR_INVALID_ARG
/// for a bad quota (see rsl_quota), an unknown clock code, a nonzero
/// reserved field or a misaligned `config` (rsl_last_error says which);
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_new(
    config: *const rsl_limiter_config,
    limiter_out: *mut *mut rsl_limiter,
) -> rsl_status {
    boundary(|| {
        handle::require_out(limiter_out, "limiter_out")?;
        let c = handle::read_plain(config, "config")?.unwrap_or_else(|| rsl_limiter_config_default());
        if c._reserved0 != 0 || c._reserved.iter().any(|&r| r != 0) {
            return Err(fail(RSL_ERR_INVALID_ARG, "rsl_limiter_config: reserved fields must be zero"));
        }
        let quota = c.quota.to_core()?;
        let clock = clock_arg(c.clock, &quota)?;
        handle::write(limiter_out, handle::into_raw(TokenBucket::with_clock(quota, clock)), "limiter_out")
    })
}

/// Frees the bucket. NULL is a no-op. No other call on the bucket may run
/// concurrently or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_free(limiter: *mut rsl_limiter) {
    boundary_or((), || handle::free(limiter))
}

#[inline(always)]
fn acquire(
    limiter: *const rsl_limiter,
    quantity: u64,
    now: Option<Nanos>,
    decision_out: *mut rsl_decision,
) -> Result {
    let b = handle::borrow(limiter)?;
    handle::require_out(decision_out, "decision_out")?;
    let d = match now {
        None => b.acquire(quantity),
        Some(t) => b.acquire_at(quantity, t),
    };
    handle::write(decision_out, d.into(), "decision_out")
}

/// Takes `quantity` tokens now if they are there, and writes the decision
/// to `*decision_out`. A denial is an answer: RSL_OK is returned and
/// `decision_out->allowed` is false (reason RSL_REASON_LIMITED with a
/// retry time, or RSL_REASON_EXCEEDS_LIMIT when `quantity` exceeds the
/// bucket's limit: never grantable). Quantity 0 takes nothing and reports
/// the bucket. A load, arithmetic and (when tokens are taken) one
/// compare-exchange; no lock, no allocation.
///
/// Thread-safe. Returns RSL_OK, RSL_ERR_NULL_ARG (`limiter` or
/// `decision_out` NULL), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_acquire(
    limiter: *const rsl_limiter,
    quantity: u64,
    decision_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| acquire(limiter, quantity, None, decision_out))
}

/// rsl_limiter_acquire at time `now_ns` (CLOCK_MONOTONIC ns), for hosts that
/// read the clock once per batch and for deterministic tests. An earlier
/// `now_ns` than one already seen never grants extra tokens; times above
/// 2^62 are taken as 2^62. Thread-safe. Returns as rsl_limiter_acquire.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_acquire_at(
    limiter: *const rsl_limiter,
    quantity: u64,
    now_ns: u64,
    decision_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| acquire(limiter, quantity, Some(now_ns), decision_out))
}

/// A yes/no answer as C sees it: RSL_OK, or RSL_ERR_REJECTED with the wait
/// (RSL_RETRY_AFTER_NONE when no wait can help) written if asked for.
pub(crate) fn check_answer(r: std::result::Result<(), Denied>, retry_after_ns_out: *mut u64) -> Result {
    match r {
        Ok(()) => Ok(()),
        Err(d) => {
            if !retry_after_ns_out.is_null() {
                let wait = d.retry_after().unwrap_or(RSL_RETRY_AFTER_NONE);
                handle::write(retry_after_ns_out, wait, "retry_after_ns_out")?;
            }
            Err(RSL_ERR_REJECTED)
        }
    }
}

fn check(
    limiter: *const rsl_limiter,
    quantity: u64,
    now: Option<Nanos>,
    retry_after_ns_out: *mut u64,
) -> Result {
    let b = handle::borrow(limiter)?;
    let r = match now {
        None => b.check(quantity),
        Some(t) => b.check_at(quantity, t),
    };
    check_answer(r, retry_after_ns_out)
}

/// Takes `quantity` tokens now if they are there, answering only yes or no
/// (governor's `check`): the same grants and the same bucket state as
/// rsl_limiter_acquire, without the rest of the decision, and cheaper.
/// On RSL_ERR_REJECTED writes to `*retry_after_ns_out` (if not NULL) the
/// nanoseconds until the same request would be granted, or
/// RSL_RETRY_AFTER_NONE when `quantity` exceeds the limit (never
/// grantable); `rsl_last_error` is not set for a rejection (it is an
/// answer). Quantity 0 is granted and takes nothing, unless the bucket is
/// ahead of `now` by more than its burst window, which happens only after a
/// call stamped a later time (an `_at` variant, or a clock stepped back).
///
/// Thread-safe. Returns RSL_OK (granted), RSL_ERR_REJECTED (denied),
/// RSL_ERR_NULL_ARG (`limiter` NULL), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_check(
    limiter: *const rsl_limiter,
    quantity: u64,
    retry_after_ns_out: *mut u64,
) -> rsl_status {
    boundary(|| check(limiter, quantity, None, retry_after_ns_out))
}

/// rsl_limiter_check at time `now_ns` (CLOCK_MONOTONIC ns; as
/// rsl_limiter_acquire_at). Thread-safe. Returns as rsl_limiter_check.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_check_at(
    limiter: *const rsl_limiter,
    quantity: u64,
    now_ns: u64,
    retry_after_ns_out: *mut u64,
) -> rsl_status {
    boundary(|| check(limiter, quantity, Some(now_ns), retry_after_ns_out))
}

fn peek(
    limiter: *const rsl_limiter,
    quantity: u64,
    now: Option<Nanos>,
    decision_out: *mut rsl_decision,
) -> Result {
    let b = handle::borrow(limiter)?;
    handle::require_out(decision_out, "decision_out")?;
    let now = now.unwrap_or_else(|| b.clock().now());
    handle::write(decision_out, b.peek_at(quantity, now).into(), "decision_out")
}

/// Writes to `*decision_out` what rsl_limiter_acquire would answer for
/// `quantity` now, without taking anything. Thread-safe. Returns as
/// rsl_limiter_acquire.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_peek(
    limiter: *const rsl_limiter,
    quantity: u64,
    decision_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| peek(limiter, quantity, None, decision_out))
}

/// rsl_limiter_peek at time `now_ns`. Thread-safe. Returns as
/// rsl_limiter_acquire.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_peek_at(
    limiter: *const rsl_limiter,
    quantity: u64,
    now_ns: u64,
    decision_out: *mut rsl_decision,
) -> rsl_status {
    boundary(|| peek(limiter, quantity, Some(now_ns), decision_out))
}

/// Refills the bucket completely. Thread-safe (an acquire racing with it
/// sees the bucket before or after). Returns RSL_ERR_NULL_ARG if `limiter`
/// is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_reset(limiter: *const rsl_limiter) -> rsl_status {
    boundary(|| {
        handle::borrow(limiter)?.reset();
        Ok(())
    })
}

/// Writes the bucket's quota to `*quota_out` (as given at creation).
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `limiter` or `quota_out` is
/// NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_limiter_get_quota(
    limiter: *const rsl_limiter,
    quota_out: *mut rsl_quota,
) -> rsl_status {
    boundary(|| {
        let q = handle::borrow(limiter)?.quota();
        handle::write(
            quota_out,
            rsl_quota { max_burst: q.max_burst(), count: q.count(), period_ns: q.period() },
            "quota_out",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use resilience::clock::MILLISECOND;

    #[test]
    fn struct_sizes_are_fixed() {
        assert_eq!(std::mem::size_of::<rsl_decision>(), 40);
        assert_eq!(std::mem::size_of::<rsl_quota>(), 24);
        assert_eq!(std::mem::size_of::<rsl_limiter_config>(), 80);
    }

    #[test]
    fn decisions_convert_every_fact() {
        let b = TokenBucket::with_clock(Quota::new(1, 10, SECOND).unwrap(), AutoClock::precise());
        let d: rsl_decision = b.acquire_at(2, SECOND).into();
        assert_eq!((d.allowed, d.limit, d.remaining, d.reason), (true, 2, 0, RSL_REASON_ALLOWED));
        assert_eq!((d.retry_after_ns, d.reset_after_ns), (RSL_RETRY_AFTER_NONE, 200 * MILLISECOND));
        let d: rsl_decision = b.acquire_at(1, SECOND).into();
        assert_eq!((d.allowed, d.reason, d.retry_after_ns), (false, RSL_REASON_LIMITED, 100 * MILLISECOND));
        let d: rsl_decision = b.acquire_at(3, SECOND).into();
        assert_eq!((d.reason, d.retry_after_ns), (RSL_REASON_EXCEEDS_LIMIT, RSL_RETRY_AFTER_NONE));
        for r in
            [Reason::Allowed, Reason::Untracked, Reason::Limited, Reason::ExceedsLimit, Reason::TableFull]
        {
            assert_eq!(reason_code(r), r as i32);
        }
    }

    #[test]
    fn config_is_validated() {
        let c = rsl_limiter_config_default();
        assert_eq!(c.quota.to_core().unwrap().limit(), 100);
        let q = Quota::per_second(100).unwrap();
        assert!(clock_arg(3, &q).is_err() && clock_arg(-1, &q).is_err());
        assert!(clock_arg(RSL_LIMITER_CLOCK_COARSE, &q).unwrap().is_coarse());
        assert!(!clock_arg(RSL_LIMITER_CLOCK_PRECISE, &q).unwrap().is_coarse());
        let zero = rsl_quota { count: 0, ..c.quota };
        assert_eq!(zero.to_core().unwrap_err(), RSL_ERR_INVALID_ARG);
    }
}
