//! Per-entry time to live.
//!
//! An entry's deadline is an absolute [`Nanos`] on the monotonic timeline;
//! [`NEVER`] (0) means it does not expire. Expiry is lazy and bounded:
//!
//! - a read that finds an entry whose deadline has passed removes it and
//!   answers "miss" (it counts as an expiration, not an eviction);
//! - eviction drops an expired victim without the usual second chance;
//! - `sweep_expired(max)` walks the table from where the last sweep stopped,
//!   examines a bounded number of buckets and removes at most `max` expired
//!   entries, so a host (or the engine's timer) returns expired memory in
//!   small steps; it returns at once while no deadline can have passed (a
//!   lower bound on the table's deadlines, tightened at the end of each full
//!   pass). Nothing runs in the background by itself.
//!
//! Reading the clock costs about 20 ns, more than a cache hit, so the table
//! asks a [`TimeSource`] for the time only when an entry it touches carries a
//! deadline.

use crate::clock::{Clock, Nanos};

/// Deadline of an entry that never expires.
pub const NEVER: Nanos = 0;

/// Where the table gets "now" from, asked at most once per operation and
/// only when an entry with a deadline is involved.
pub trait TimeSource {
    /// The current time.
    fn now(&mut self) -> Nanos;
}

impl TimeSource for Nanos {
    #[inline]
    fn now(&mut self) -> Nanos {
        *self
    }
}

impl<T: TimeSource + ?Sized> TimeSource for &mut T {
    #[inline]
    fn now(&mut self) -> Nanos {
        (**self).now()
    }
}

/// Reads a [`Clock`] on first use and remembers the answer for the rest of
/// the operation.
pub struct LazyNow<'a> {
    clock: &'a dyn Clock,
    at: Option<Nanos>,
}

impl<'a> LazyNow<'a> {
    /// A time source that will read `clock` at most once.
    #[inline]
    pub fn new(clock: &'a dyn Clock) -> Self {
        Self { clock, at: None }
    }

    /// A time source that answers `known` if given, else reads `clock` at
    /// most once.
    #[inline]
    pub fn or_known(clock: &'a dyn Clock, known: Option<Nanos>) -> Self {
        Self { clock, at: known }
    }
}

impl TimeSource for LazyNow<'_> {
    #[inline]
    fn now(&mut self) -> Nanos {
        match self.at {
            Some(t) => t,
            None => {
                let t = self.clock.now();
                self.at = Some(t);
                t
            }
        }
    }
}

/// The deadline for an entry inserted at `now` with time to live `ttl`:
/// [`NEVER`] for no TTL, saturating far in the future, and at least 1 so that
/// a deadline is never confused with [`NEVER`].
#[inline]
pub fn deadline(now: Nanos, ttl: Option<Nanos>) -> Nanos {
    match ttl {
        None => NEVER,
        Some(t) => now.saturating_add(t).max(1),
    }
}

/// True when a deadline has passed at `now`.
#[inline(always)]
pub fn is_expired(deadline: Nanos, now: Nanos) -> bool {
    deadline != NEVER && now >= deadline
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn deadlines() {
        assert_eq!(deadline(10, None), NEVER);
        assert_eq!(deadline(10, Some(5)), 15);
        assert_eq!(deadline(u64::MAX - 1, Some(5)), u64::MAX);
        assert_eq!(deadline(0, Some(0)), 1);
        assert!(!is_expired(NEVER, u64::MAX));
        assert!(!is_expired(15, 14));
        assert!(is_expired(15, 15));
    }

    #[test]
    fn lazy_now_reads_the_clock_once() {
        let c = ManualClock::new(100);
        let mut t = LazyNow::new(&c);
        assert_eq!(t.now(), 100);
        c.advance(5);
        assert_eq!(t.now(), 100, "cached for the rest of the operation");
        assert_eq!(LazyNow::new(&c).now(), 105);
    }
}
