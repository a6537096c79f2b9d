//! Rate limiting and concurrency control: token buckets (GCRA), keyed
//! limiters, bulkheads and adaptive concurrency limits.
//!
//! - [`TokenBucket`]: one bucket on one atomic word (GCRA's theoretical
//!   arrival time); an acquire is a load and, under contention, a few
//!   compare-exchanges.
//! - [`KeyedLimiter`]: a bucket per key in a bounded, sharded table; buckets
//!   that have refilled are reclaimed without changing any answer.
//! - [`Bulkhead`]: at most N calls in flight, bounded waiters.
//! - [`AdaptiveLimiter`]: an in-flight limit that follows latency and drops
//!   (AIMD or gradient, as in Netflix concurrency-limits).
//!
//! # Semantics: redis-cell's `CL.THROTTLE`
//!
//! A [`Quota`] is `CL.THROTTLE key max_burst count period quantity` without
//! the key: `count` tokens per `period`, and a bucket that holds
//! `max_burst + 1` tokens (redis-cell's `limit`). Every acquire answers a
//! [`Decision`] with the five facts of `CL.THROTTLE`'s reply, in nanoseconds;
//! [`Decision::throttle_reply`] renders the exact 5-integer reply. The
//! algorithm is redis-cell 0.2.2's GCRA, step for step: with emission
//! interval `T = period / count` and tolerance `tau = T * limit`,
//!
//! ```text
//! tat' = max(tat, now) + T * quantity
//! allowed   = tat' - now <= tau            (then tat := tat')
//! retry     = tat' - tau - now             (when denied and quantity <= limit)
//! reset     = (allowed ? tat' : max(tat, now)) - now
//! remaining = (tau - reset) / T            (0 when reset > tau)
//! ```
//!
//! `core/tests/redis_cell.rs` checks the answers against the real module.
//! Where redis-cell cannot be followed exactly, or need not be:
//!
//! - Times are `u64` nanoseconds on the monotonic clock, and any `now` above
//!   [`MAX_NOW`] is taken as [`MAX_NOW`], so nothing overflows.
//! - `T = period / count` is integer division; redis-cell divides in `f64`
//!   and truncates, which gives the same `T` for every period below 2^53 ns
//!   (104 days).
//! - `remaining` divides nanoseconds; redis-cell divides microseconds, which
//!   gives the same count whenever `T` is a whole number of microseconds.
//! - Quantity 0 writes nothing; redis-cell stores `max(tat, now)`, which
//!   only differs if the clock later goes backwards (where ours, like every
//!   answer here, never grants more than a forward-moving clock would).
//! - A quantity above `limit` is denied with [`Reason::ExceedsLimit`] and no
//!   retry time (redis-cell: retry-after -1); [`Quota::throttle`] refuses
//!   negative arguments, which redis-cell accepts with odd results.

mod adaptive;
mod bucket;
mod bulkhead;
mod keyed;

pub use adaptive::{AdaptiveLimiter, AimdConfig, Algorithm, GradientConfig, RawToken, Token};
pub use bucket::TokenBucket;
pub use bulkhead::{Bulkhead, BulkheadError, BulkheadStats, Permit};
pub use keyed::{FullPolicy, KeyedLimiter, KeyedStats};

use crate::clock::{self, Clock, Nanos, SECOND};
use crate::sync::{AtomicU64, Ordering};
use std::fmt;

/// Times beyond this (2^62 ns, 146 years of uptime) are treated as this, so
/// that no sum in the algorithm can overflow a `u64`.
pub const MAX_NOW: Nanos = 1 << 62;

/// The largest burst window (`tau = period / count * (max_burst + 1)`) a
/// [`Quota`] accepts: just under 2^62 ns, 146 years.
pub const MAX_TAU: Nanos = (1 << 62) - 1;

/// Why a [`Quota`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaError {
    /// `count` is 0 (or negative, from [`Quota::throttle`]).
    ZeroCount,
    /// `period` is 0 (or negative, from [`Quota::throttle`]).
    ZeroPeriod,
    /// `max_burst` is negative (from [`Quota::throttle`]).
    NegativeBurst,
    /// `period / count` is below one nanosecond: the rate cannot be
    /// represented.
    RateTooHigh,
    /// The burst window `period / count * (max_burst + 1)` exceeds
    /// [`MAX_TAU`] (or a product overflows).
    Overflow,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaError::ZeroCount => "count must be positive",
            QuotaError::ZeroPeriod => "period must be positive",
            QuotaError::NegativeBurst => "max_burst must not be negative",
            QuotaError::RateTooHigh => "period / count is below one nanosecond",
            QuotaError::Overflow => "period / count * (max_burst + 1) is too large",
        })
    }
}

impl std::error::Error for QuotaError {}

/// A rate: `count` tokens per `period`, in a bucket of `max_burst + 1`.
///
/// Built only through [`Quota::new`] or [`Quota::throttle`], which validate;
/// a `Quota` therefore never makes an acquire overflow or panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    max_burst: u64,
    count: u64,
    period: Nanos,
    /// Emission interval `period / count` (ns per token), >= 1.
    t: Nanos,
    /// `t * limit`.
    tau: Nanos,
}

impl Quota {
    /// `count` tokens per `period` nanoseconds, holding `max_burst + 1`
    /// tokens when full (`CL.THROTTLE`'s arguments, the period in ns).
    pub fn new(max_burst: u64, count: u64, period: Nanos) -> Result<Quota, QuotaError> {
        if count == 0 {
            return Err(QuotaError::ZeroCount);
        }
        if period == 0 {
            return Err(QuotaError::ZeroPeriod);
        }
        let t = period / count;
        if t == 0 {
            return Err(QuotaError::RateTooHigh);
        }
        let limit = max_burst.checked_add(1).ok_or(QuotaError::Overflow)?;
        let tau = t.checked_mul(limit).ok_or(QuotaError::Overflow)?;
        if tau > MAX_TAU {
            return Err(QuotaError::Overflow);
        }
        Ok(Quota { max_burst, count, period, t, tau })
    }

    /// The arguments of `CL.THROTTLE key max_burst count period`, as the
    /// server parses them (signed, `period` in seconds).
    pub fn throttle(max_burst: i64, count: i64, period_secs: i64) -> Result<Quota, QuotaError> {
        if count <= 0 {
            return Err(QuotaError::ZeroCount);
        }
        if period_secs <= 0 {
            return Err(QuotaError::ZeroPeriod);
        }
        if max_burst < 0 {
            return Err(QuotaError::NegativeBurst);
        }
        let period = (period_secs as u64).checked_mul(SECOND).ok_or(QuotaError::Overflow)?;
        Quota::new(max_burst as u64, count as u64, period)
    }

    /// `count` tokens per second, holding `count` when full.
    pub fn per_second(count: u64) -> Result<Quota, QuotaError> {
        Quota::new(count.saturating_sub(1), count, SECOND)
    }

    /// `max_burst` as given.
    pub fn max_burst(&self) -> u64 {
        self.max_burst
    }

    /// `count` as given.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `period` as given, in nanoseconds.
    pub fn period(&self) -> Nanos {
        self.period
    }

    /// Tokens in a full bucket: `max_burst + 1` (redis-cell's `limit`).
    pub fn limit(&self) -> u64 {
        self.max_burst + 1
    }

    /// Nanoseconds per token: `period / count`, rounded down.
    pub fn emission_interval(&self) -> Nanos {
        self.t
    }

    /// Time an empty bucket takes to refill: `emission_interval * limit`.
    pub fn burst_window(&self) -> Nanos {
        self.tau
    }
}

/// Why a [`Decision`] came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Allowed: the tokens were taken (none for quantity 0).
    Allowed,
    /// Allowed without any state: a [`KeyedLimiter`] was full of live keys
    /// and its policy is [`FullPolicy::AllowUntracked`].
    Untracked,
    /// Denied: not enough tokens now; `retry_after` says when.
    Limited,
    /// Denied: the quantity exceeds the bucket's `limit` and can never be
    /// granted; `retry_after` is `None`.
    ExceedsLimit,
    /// Denied: a [`KeyedLimiter`] was full of live keys and its policy is
    /// [`FullPolicy::Deny`]; `retry_after` is `None`.
    TableFull,
}

/// The answer to an acquire: the five facts of `CL.THROTTLE`'s reply, in
/// nanoseconds, plus the [`Reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the tokens were granted.
    pub allowed: bool,
    /// Tokens in a full bucket (`max_burst + 1`).
    pub limit: u64,
    /// Tokens left after this decision (rounded down).
    pub remaining: u64,
    /// When denied: how long until the same request would be allowed.
    /// `None` when allowed, and when no wait can help
    /// ([`Reason::ExceedsLimit`], [`Reason::TableFull`]).
    pub retry_after: Option<Nanos>,
    /// How long until the bucket is full again.
    pub reset_after: Nanos,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    /// An empty decision, to fill output slices for
    /// [`KeyedLimiter::acquire_many`].
    pub const EMPTY: Decision = Decision {
        allowed: false,
        limit: 0,
        remaining: 0,
        retry_after: None,
        reset_after: 0,
        reason: Reason::Limited,
    };

    /// The exact reply of redis-cell 0.2.2's `CL.THROTTLE` for this decision:
    /// `[limited (0/1), limit, remaining, retry_after secs (-1 when None),
    /// reset_after secs]`, seconds truncated as redis-cell does.
    pub fn throttle_reply(&self) -> [i64; 5] {
        let secs = |n: Nanos| (n / SECOND) as i64;
        [
            i64::from(!self.allowed),
            i64::try_from(self.limit).unwrap_or(i64::MAX),
            i64::try_from(self.remaining).unwrap_or(i64::MAX),
            self.retry_after.map_or(-1, secs),
            secs(self.reset_after),
        ]
    }
}

/// The denial of a [`check`](TokenBucket::check): why, and when to retry.
///
/// `check` is [`acquire`](TokenBucket::acquire) for callers that want only
/// yes or no (as `governor`'s `check()`): the same grants, the same state,
/// but no `remaining` or `reset_after` to compute, and an answer small
/// enough to return in registers. It costs about a third less than an
/// acquire returning the full [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Denied {
    // Always nonzero when a wait can help (the deficit is at least 1 ns),
    // which lets `Result<(), Denied>` fit in two registers.
    retry_after: Option<std::num::NonZeroU64>,
    reason: Reason,
}

impl Denied {
    /// How long until the same request would be allowed; `None` when no
    /// wait can help ([`Reason::ExceedsLimit`], [`Reason::TableFull`]).
    #[inline]
    pub fn retry_after(&self) -> Option<Nanos> {
        self.retry_after.map(std::num::NonZeroU64::get)
    }

    /// Why: [`Reason::Limited`], [`Reason::ExceedsLimit`] or
    /// [`Reason::TableFull`] (a keyed limiter full of live keys).
    #[inline]
    pub fn reason(&self) -> Reason {
        self.reason
    }

    pub(crate) const TABLE_FULL: Denied = Denied { retry_after: None, reason: Reason::TableFull };
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.reason, self.retry_after()) {
            (Reason::Limited, Some(ns)) => write!(f, "rate limited: retry after {ns} ns"),
            (Reason::ExceedsLimit, _) => f.write_str("rate limited: the quantity exceeds the bucket's limit"),
            (Reason::TableFull, _) => f.write_str("rate limited: the keyed limiter is full of live keys"),
            _ => f.write_str("rate limited"),
        }
    }
}

impl std::error::Error for Denied {}

/// Exact division by an invariant divisor with one multiply (Granlund and
/// Montgomery, "Division by invariant integers using multiplication",
/// theorem 4.2) for numerators below 2^62: `remaining` is computed on every
/// acquire, and a 64-bit `div` costs more than the rest of the acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Divisor {
    magic: u64,
    shift: u32,
}

impl Divisor {
    const N: u32 = 62;

    /// `d` >= 1.
    pub(crate) fn new(d: u64) -> Divisor {
        let d = d.max(1);
        // l = ceil(log2(d)); m = ceil(2^(N+l) / d) <= 2^(N+1): fits in u64,
        // and m * n < 2^63 * 2^62 fits in u128.
        let l = 64 - (d - 1).leading_zeros();
        let shift = Self::N + l;
        let pow = 1u128 << shift;
        let magic = pow.div_ceil(d as u128) as u64;
        Divisor { magic, shift }
    }

    /// `n / d` for `n < 2^62`.
    #[inline]
    pub(crate) fn div(&self, n: u64) -> u64 {
        debug_assert!(n < 1 << Self::N);
        ((n as u128 * self.magic as u128) >> self.shift) as u64
    }
}

/// A [`Quota`] prepared for the hot path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gcra {
    pub(crate) quota: Quota,
    div_t: Divisor,
}

impl Gcra {
    pub(crate) fn new(quota: Quota) -> Gcra {
        Gcra { quota, div_t: Divisor::new(quota.t) }
    }

    #[inline]
    fn remaining(&self, reset: Nanos) -> u64 {
        match self.quota.tau.checked_sub(reset) {
            Some(left) => self.div_t.div(left),
            None => 0,
        }
    }

    /// One GCRA step from state `tat` (0 = never used). Returns the decision
    /// and the new state to store, `None` when nothing changes.
    #[inline]
    pub(crate) fn decide(&self, tat: Nanos, now: Nanos, quantity: u64) -> (Decision, Option<Nanos>) {
        let q = &self.quota;
        let now = now.min(MAX_NOW);
        // tat <= MAX_NOW + tau < 2^63, so every sum below fits.
        let base = tat.max(now);
        let ahead = base - now;
        let limit = q.max_burst + 1;
        if quantity > limit {
            let d = Decision {
                allowed: false,
                limit,
                remaining: self.remaining(ahead),
                retry_after: None,
                reset_after: ahead,
                reason: Reason::ExceedsLimit,
            };
            return (d, None);
        }
        let reset = ahead + q.t * quantity;
        if reset > q.tau {
            let d = Decision {
                allowed: false,
                limit,
                remaining: self.remaining(ahead),
                retry_after: Some(reset - q.tau),
                reset_after: ahead,
                reason: Reason::Limited,
            };
            return (d, None);
        }
        let d = Decision {
            allowed: true,
            limit,
            remaining: self.remaining(reset),
            retry_after: None,
            reset_after: reset,
            reason: Reason::Allowed,
        };
        (d, if quantity == 0 { None } else { Some(base + q.t * quantity) })
    }
}

impl Gcra {
    /// [`decide`](Self::decide) without the parts of the decision that need
    /// a division: the same grant and the same new state. `Ok(None)` when
    /// nothing changes (quantity 0).
    #[inline]
    pub(crate) fn check(&self, tat: Nanos, now: Nanos, quantity: u64) -> Result<Option<Nanos>, Denied> {
        let q = &self.quota;
        let now = now.min(MAX_NOW);
        let base = tat.max(now);
        if quantity > q.max_burst + 1 {
            return Err(Denied { retry_after: None, reason: Reason::ExceedsLimit });
        }
        let reset = base - now + q.t * quantity;
        if reset > q.tau {
            // reset > tau, so the wait is at least 1 ns.
            return Err(Denied {
                retry_after: std::num::NonZeroU64::new(reset - q.tau),
                reason: Reason::Limited,
            });
        }
        Ok(if quantity == 0 { None } else { Some(base + q.t * quantity) })
    }
}

/// What a GCRA step answers: the full [`Decision`] of `acquire`, or the
/// yes/no of `check`. One update path per limiter serves both.
pub(crate) trait Answer: Sized {
    /// One GCRA step from state `tat`: the answer and the new state, if any.
    fn step(gcra: &Gcra, tat: Nanos, now: Nanos, quantity: u64) -> (Self, Option<Nanos>);

    /// The answer when a keyed limiter's table is full of live keys (`self` is what it
    /// would have been), by `policy`; counts it.
    fn when_full(self, policy: FullPolicy, denied: &AtomicU64, untracked: &AtomicU64) -> Self;
}

impl Answer for Decision {
    #[inline(always)]
    fn step(gcra: &Gcra, tat: Nanos, now: Nanos, quantity: u64) -> (Self, Option<Nanos>) {
        gcra.decide(tat, now, quantity)
    }

    #[cold]
    fn when_full(self, policy: FullPolicy, denied: &AtomicU64, untracked: &AtomicU64) -> Self {
        match policy {
            FullPolicy::Deny => {
                denied.fetch_add(1, Ordering::Relaxed);
                Decision {
                    allowed: false,
                    limit: self.limit,
                    remaining: 0,
                    retry_after: None,
                    reset_after: 0,
                    reason: Reason::TableFull,
                }
            }
            FullPolicy::AllowUntracked => {
                untracked.fetch_add(1, Ordering::Relaxed);
                Decision { reason: Reason::Untracked, ..self }
            }
        }
    }
}

impl Answer for Result<(), Denied> {
    #[inline(always)]
    fn step(gcra: &Gcra, tat: Nanos, now: Nanos, quantity: u64) -> (Self, Option<Nanos>) {
        match gcra.check(tat, now, quantity) {
            Ok(next) => (Ok(()), next),
            Err(d) => (Err(d), None),
        }
    }

    #[cold]
    fn when_full(self, policy: FullPolicy, denied: &AtomicU64, untracked: &AtomicU64) -> Self {
        match policy {
            FullPolicy::Deny => {
                denied.fetch_add(1, Ordering::Relaxed);
                Err(Denied::TABLE_FULL)
            }
            FullPolicy::AllowUntracked => {
                untracked.fetch_add(1, Ordering::Relaxed);
                self
            }
        }
    }
}

/// The clock a [`TokenBucket`] or [`KeyedLimiter`] reads by default: the
/// coarse monotonic clock when its resolution is small against the bucket's
/// burst window, the precise one otherwise.
///
/// `clock::now()` costs about 23 ns here, more than the whole rest of an
/// acquire; `clock::coarse_now()` about 5 ns, but it moves in steps of one
/// kernel tick (4 ms) and lags the precise clock by up to one step. A
/// lagging clock only ever denies a little longer (up to one step): it never
/// grants more, and it does not lower the sustained rate as long as the
/// bucket holds at least a step's worth of tokens. So the coarse clock is
/// chosen when the burst window is at least 64 steps (256 ms on a `HZ=250`
/// kernel: at most 1/64 of the window as timing error), the precise clock
/// otherwise. Both read `CLOCK_MONOTONIC`'s timeline, so the `*_at` variants
/// with a host's own `clock_gettime(CLOCK_MONOTONIC)` agree with either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoClock {
    coarse: bool,
}

impl AutoClock {
    /// Coarse steps per burst window needed to pick the coarse clock.
    pub const STEPS_PER_WINDOW: u64 = 64;

    /// The clock for a bucket whose burst window is `tau` nanoseconds.
    pub fn for_window(tau: Nanos) -> AutoClock {
        let res = clock::coarse_resolution();
        AutoClock { coarse: res > 1 && tau / Self::STEPS_PER_WINDOW >= res }
    }

    /// Always the precise clock.
    pub const fn precise() -> AutoClock {
        AutoClock { coarse: false }
    }

    /// Always the coarse clock.
    pub const fn coarse() -> AutoClock {
        AutoClock { coarse: true }
    }

    /// Whether this reads the coarse clock.
    pub fn is_coarse(&self) -> bool {
        self.coarse
    }
}

impl Clock for AutoClock {
    #[inline]
    fn now(&self) -> Nanos {
        if self.coarse {
            clock::coarse_now()
        } else {
            clock::now()
        }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn quota_validation_never_panics() {
        assert_eq!(Quota::new(1, 0, SECOND), Err(QuotaError::ZeroCount));
        assert_eq!(Quota::new(1, 1, 0), Err(QuotaError::ZeroPeriod));
        assert_eq!(Quota::new(1, 10, 9), Err(QuotaError::RateTooHigh));
        assert_eq!(Quota::new(u64::MAX, 1, 1), Err(QuotaError::Overflow));
        assert_eq!(Quota::new(1 << 40, 1, 1 << 30), Err(QuotaError::Overflow));
        assert_eq!(Quota::throttle(1, 1, i64::MAX), Err(QuotaError::Overflow));
        assert_eq!(Quota::throttle(-1, 1, 1), Err(QuotaError::NegativeBurst));
        assert_eq!(Quota::throttle(1, -1, 1), Err(QuotaError::ZeroCount));
        assert_eq!(Quota::throttle(1, 1, 0), Err(QuotaError::ZeroPeriod));
        let q = Quota::throttle(4, 10, 2).unwrap();
        assert_eq!((q.limit(), q.emission_interval(), q.burst_window()), (5, SECOND / 5, SECOND));
        assert_eq!(Quota::per_second(0), Err(QuotaError::ZeroCount));
        assert_eq!(Quota::per_second(10).unwrap().limit(), 10);
    }

    #[test]
    fn divisor_is_exact() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ds: Vec<u64> = (1..2000).collect();
        ds.extend([(1 << 62) - 1, 1 << 61, 3 << 59, 999_999_999, 1_000_000_000, 333_333_333]);
        for _ in 0..2000 {
            ds.push(next() >> (2 + next() % 62));
        }
        for &d in &ds {
            let d = d.max(1);
            let div = Divisor::new(d);
            let mut ns = vec![0, 1, d - 1, d, d + 1, (1 << 62) - 1, (1 << 62) - d.min(1 << 61)];
            for _ in 0..64 {
                ns.push(next() >> 2);
                ns.push((next() >> 2) % (d.saturating_mul(4)).max(1));
            }
            for n in ns.into_iter().filter(|&n| n < 1 << 62) {
                assert_eq!(div.div(n), n / d, "{n} / {d}");
            }
        }
    }

    #[test]
    fn reply_matches_redis_cell_conventions() {
        // redis-cell's own test table (cell/mod.rs, it_rate_limits): burst 4,
        // 1 per second.
        let g = Gcra::new(Quota::throttle(4, 1, 1).unwrap());
        let start = 100 * SECOND;
        let mut tat = 0;
        let step = |now: Nanos, q: u64, tat: &mut Nanos| {
            let (d, new) = g.decide(*tat, now, q);
            if let Some(n) = new {
                *tat = n;
            }
            d
        };
        let d = step(start, 6, &mut tat);
        assert_eq!(d.throttle_reply(), [1, 5, 5, -1, 0]);
        assert_eq!(d.reason, Reason::ExceedsLimit);
        for (i, rem) in [4, 3, 2, 1, 0].into_iter().enumerate() {
            let d = step(start, 1, &mut tat);
            assert_eq!(d.throttle_reply(), [0, 5, rem, -1, i as i64 + 1]);
        }
        let d = step(start, 1, &mut tat);
        assert_eq!(d.throttle_reply(), [1, 5, 0, 1, 5]);
        assert_eq!(d.retry_after, Some(SECOND));
        let d = step(start + 3000 * crate::clock::MILLISECOND, 1, &mut tat);
        assert_eq!((d.remaining, d.reset_after), (2, 3 * SECOND));
        let d = step(start + 3100 * crate::clock::MILLISECOND, 1, &mut tat);
        assert_eq!((d.remaining, d.reset_after), (1, 3900 * crate::clock::MILLISECOND));
        let d = step(start + 9500 * crate::clock::MILLISECOND, 1, &mut tat);
        assert_eq!((d.remaining, d.reset_after), (4, SECOND));
        let d = step(start + 9500 * crate::clock::MILLISECOND, 0, &mut tat);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 4, SECOND));
        let d = step(start + 9500 * crate::clock::MILLISECOND, 2, &mut tat);
        assert_eq!((d.remaining, d.reset_after), (2, 3 * SECOND));
        let d = step(start + 9500 * crate::clock::MILLISECOND, 5, &mut tat);
        assert_eq!(d.throttle_reply(), [1, 5, 2, 3, 3]);
    }

    #[test]
    fn auto_clock_picks_coarse_only_for_wide_windows() {
        assert!(!AutoClock::for_window(crate::clock::MILLISECOND).is_coarse());
        let res = clock::coarse_resolution();
        if res > 1 {
            assert!(AutoClock::for_window(res * 64).is_coarse());
            assert!(!AutoClock::for_window(res * 63).is_coarse());
        }
        assert!(AutoClock::coarse().is_coarse() && !AutoClock::precise().is_coarse());
    }
}
