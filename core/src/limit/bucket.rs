//! One token bucket on one atomic word.

use super::{Answer, AutoClock, Decision, Denied, Gcra, Quota};
use crate::clock::{Clock, Nanos};
use crate::sync::{AtomicU64, Ordering};

/// A token bucket (GCRA) whose whole state is one `AtomicU64`: the
/// theoretical arrival time (TAT) of the next request at the nominal rate.
///
/// An acquire is a load, the arithmetic of [`Quota`]'s formula and, when
/// tokens are taken, one compare-exchange (retried only if another thread
/// changed the word in between). No lock, no allocation. Denials and
/// quantity 0 do not write. The word protects nothing but itself, so every
/// access is `Relaxed`: the modification order of the one word is what makes
/// the accounting exact (never more grants than the quota allows).
///
/// Time going backwards (a `now` earlier than one already seen) never grants
/// extra tokens: the state only moves forward (`max(tat, now)`), and an
/// earlier `now` only makes the bucket look emptier.
///
/// ```
/// use resilience::limit::{Quota, TokenBucket};
/// use resilience::clock::SECOND;
///
/// let bucket = TokenBucket::new(Quota::new(9, 10, SECOND).unwrap()); // 10/s, holds 10
/// let d = bucket.acquire_at(3, 5 * SECOND);
/// assert!(d.allowed);
/// assert_eq!(d.remaining, 7);
/// assert_eq!(d.throttle_reply(), [0, 10, 7, -1, 0]);
/// ```
#[derive(Debug)]
pub struct TokenBucket<C = AutoClock> {
    tat: AtomicU64,
    gcra: Gcra,
    clock: C,
}

impl TokenBucket<AutoClock> {
    /// A full bucket reading [`AutoClock`] (coarse or precise, chosen from
    /// the quota's burst window).
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, AutoClock::for_window(quota.burst_window()))
    }
}

impl<C: Clock> TokenBucket<C> {
    /// A full bucket reading `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        TokenBucket { tat: AtomicU64::new(0), gcra: Gcra::new(quota), clock }
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.gcra.quota
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Takes `quantity` tokens now, if they are there.
    #[inline]
    pub fn acquire(&self, quantity: u64) -> Decision {
        self.acquire_at(quantity, self.clock.now())
    }

    /// Takes `quantity` tokens at time `now`, if they are there.
    ///
    /// Quantity 0 answers without taking anything; a quantity above
    /// [`Quota::limit`] is denied with [`Reason::ExceedsLimit`](super::Reason::ExceedsLimit).
    #[inline]
    pub fn acquire_at(&self, quantity: u64, now: Nanos) -> Decision {
        self.step_at(quantity, now)
    }

    /// Takes `quantity` tokens now if they are there, answering only yes
    /// or no (see [`Denied`]): the grants and the state are exactly those of
    /// [`acquire`](Self::acquire).
    #[inline]
    pub fn check(&self, quantity: u64) -> Result<(), Denied> {
        self.check_at(quantity, self.clock.now())
    }

    /// [`check`](Self::check) at time `now`.
    #[inline]
    pub fn check_at(&self, quantity: u64, now: Nanos) -> Result<(), Denied> {
        self.step_at(quantity, now)
    }

    /// One GCRA step on the word: a load and, when tokens are taken, a
    /// compare-exchange (retried only if another thread moved the word).
    #[inline(always)]
    fn step_at<A: Answer>(&self, quantity: u64, now: Nanos) -> A {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let (answer, next) = A::step(&self.gcra, tat, now, quantity);
            let Some(next) = next else { return answer };
            match self.tat.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return answer,
                Err(seen) => tat = seen,
            }
        }
    }

    /// What [`acquire_at`](Self::acquire_at) would answer for `quantity` at
    /// `now`, without taking anything.
    pub fn peek_at(&self, quantity: u64, now: Nanos) -> Decision {
        self.gcra.decide(self.tat.load(Ordering::Relaxed), now, quantity).0
    }

    /// Refills the bucket completely.
    pub fn reset(&self) {
        self.tat.store(0, Ordering::Relaxed);
    }

    /// The raw state (theoretical arrival time; 0 for a bucket never used):
    /// for tests and for hosts that persist buckets.
    pub fn tat(&self) -> Nanos {
        self.tat.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, MILLISECOND, SECOND};
    use crate::limit::Reason;
    use std::sync::Arc;

    #[test]
    fn refills_at_the_rate_and_never_beyond_the_limit() {
        let clock = ManualClock::new(10 * SECOND);
        let b = TokenBucket::with_clock(Quota::new(4, 10, SECOND).unwrap(), &clock);
        for i in 0..5 {
            let d = b.acquire(1);
            assert!(d.allowed, "{i}");
            assert_eq!(d.remaining, 4 - i);
        }
        let d = b.acquire(1);
        assert_eq!((d.allowed, d.reason, d.retry_after), (false, Reason::Limited, Some(100 * MILLISECOND)));
        clock.advance(100 * MILLISECOND);
        assert!(b.acquire(1).allowed);
        assert!(!b.acquire(1).allowed);
        clock.advance(10 * SECOND);
        let d = b.acquire(0);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 5, 0));
        assert_eq!(b.acquire(5).remaining, 0);
    }

    #[test]
    fn exceeding_the_limit_is_a_clear_denial() {
        let b = TokenBucket::with_clock(Quota::new(4, 10, SECOND).unwrap(), ManualClock::default());
        let d = b.acquire(6);
        assert_eq!((d.allowed, d.reason, d.retry_after, d.remaining), (false, Reason::ExceedsLimit, None, 5));
        assert_eq!(b.acquire(u64::MAX).reason, Reason::ExceedsLimit);
        assert!(b.acquire(5).allowed);
    }

    #[test]
    fn clock_going_backwards_grants_nothing_extra() {
        let b = TokenBucket::with_clock(Quota::new(0, 1, SECOND).unwrap(), ManualClock::default());
        assert!(b.acquire_at(1, 100 * SECOND).allowed);
        // Earlier times see an emptier bucket, not a fuller one.
        for t in [0, SECOND, 99 * SECOND, 100 * SECOND] {
            assert!(!b.acquire_at(1, t).allowed, "{t}");
        }
        assert!(b.acquire_at(1, 101 * SECOND).allowed);
        // Far-future and absurd times are clamped, not overflowed.
        assert!(b.acquire_at(1, u64::MAX).allowed);
        assert!(!b.acquire_at(1, u64::MAX).allowed);
        assert!(!b.acquire_at(1, 200 * SECOND).allowed);
    }

    #[test]
    fn real_clock_acquires() {
        // 1000/s holding 10: a 10 ms window, too narrow for the coarse clock.
        let b = TokenBucket::new(Quota::new(9, 1000, SECOND).unwrap());
        assert!(!b.clock().is_coarse());
        let start = std::time::Instant::now();
        let granted = (0..2000).filter(|_| b.acquire(1).allowed).count() as u128;
        let most = 10 + start.elapsed().as_millis() + 1;
        assert!((10..=most).contains(&granted), "{granted} granted, at most {most}");
        let wide = TokenBucket::new(Quota::new(999, 1000, 60 * SECOND).unwrap());
        assert!(wide.acquire(1).allowed);
    }

    #[test]
    fn threads_never_get_more_than_the_bucket_holds() {
        let b =
            Arc::new(TokenBucket::with_clock(Quota::new(9_999, 1, SECOND).unwrap(), ManualClock::default()));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || (0..5000).filter(|_| b.acquire(1).allowed).count())
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 10_000);
    }
}
