//! At most N calls in flight.

use crate::sync::{AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

/// Why [`Bulkhead::acquire_timeout`] returned without a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkheadError {
    /// Every permit is taken and `max_waiters` callers already wait.
    Full,
    /// No permit came free before the timeout.
    Timeout,
}

impl fmt::Display for BulkheadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BulkheadError::Full => "bulkhead full: all permits taken and the wait queue is full",
            BulkheadError::Timeout => "bulkhead: no permit came free before the timeout",
        })
    }
}

impl std::error::Error for BulkheadError {}

/// Counters and gauges of a [`Bulkhead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkheadStats {
    /// Permits held now.
    pub in_flight: usize,
    /// Callers waiting now.
    pub waiting: usize,
    /// `try_acquire` calls refused (all permits taken).
    pub rejected: u64,
    /// `acquire_timeout` calls refused at once ([`BulkheadError::Full`]).
    pub rejected_full: u64,
    /// `acquire_timeout` calls that waited and got a permit.
    pub waited: u64,
    /// `acquire_timeout` calls that timed out.
    pub timed_out: u64,
    /// `release` calls with no permit held (ignored).
    pub invalid_releases: u64,
}

/// A concurrency limit: at most `max_concurrent` permits held at once, at
/// most `max_waiters` callers waiting for one.
///
/// Taking and returning a permit is one compare-exchange each on one atomic
/// word that packs the permits in flight (low 32 bits) and the waiters
/// (high 32 bits); the mutex and condition variable are only touched when
/// someone waits. Because a release reads the waiter count in the same
/// atomic step that returns the permit, a waiter that registered before it
/// is always woken, and one that registered after it always sees the permit
/// (no store-load race, no reliance on SeqCst; checked with loom).
/// `max_concurrent` and `max_waiters` are capped at `u32::MAX`. [`Permit`] returns its permit on drop; for the C ABI,
/// [`try_acquire_raw`](Bulkhead::try_acquire_raw) and
/// [`release`](Bulkhead::release) do the same by hand, and `release` never
/// takes the count below zero (an unmatched release is counted and ignored).
///
/// ```
/// use resilience::limit::{Bulkhead, BulkheadError};
/// use std::time::Duration;
///
/// let b = Bulkhead::new(1, 0);
/// let permit = b.try_acquire().unwrap();
/// assert!(b.try_acquire().is_none());
/// assert_eq!(b.acquire_timeout(Duration::from_millis(1)).unwrap_err(), BulkheadError::Full);
/// drop(permit);
/// assert!(b.try_acquire().is_some());
/// ```
pub struct Bulkhead {
    /// `waiting << 32 | in_flight`.
    state: AtomicU64,
    max: usize,
    max_waiters: usize,
    /// The waiter count again, under the lock that waiters sleep with (for
    /// the `max_waiters` check).
    waiters: Mutex<usize>,
    cond: Condvar,
    rejected: AtomicU64,
    rejected_full: AtomicU64,
    waited: AtomicU64,
    timed_out: AtomicU64,
    invalid_releases: AtomicU64,
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &self.max)
            .field("max_waiters", &self.max_waiters)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A held permit of a [`Bulkhead`]; returned on drop.
#[must_use = "the permit is released as soon as it is dropped"]
#[derive(Debug)]
pub struct Permit<'a> {
    bulkhead: &'a Bulkhead,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

impl Permit<'_> {
    /// Keeps the permit held past this guard: the caller must call
    /// [`Bulkhead::release`] later.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

const LOW: u64 = u32::MAX as u64;
const WAITER: u64 = 1 << 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is a plain counter that is consistent at every
    // unlock, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bulkhead {
    /// At most `max_concurrent` permits, at most `max_waiters` waiting
    /// callers. `max_concurrent` 0 refuses everything.
    pub fn new(max_concurrent: usize, max_waiters: usize) -> Self {
        Bulkhead {
            state: AtomicU64::new(0),
            max: max_concurrent.min(u32::MAX as usize),
            max_waiters: max_waiters.min(u32::MAX as usize),
            waiters: Mutex::new(0),
            cond: Condvar::new(),
            rejected: AtomicU64::new(0),
            rejected_full: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            invalid_releases: AtomicU64::new(0),
        }
    }

    /// The permit count.
    pub fn max_concurrent(&self) -> usize {
        self.max
    }

    /// Permits held now.
    pub fn in_flight(&self) -> usize {
        (self.state.load(Ordering::Relaxed) & LOW) as usize
    }

    #[inline]
    fn take(&self) -> bool {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if (cur & LOW) as usize >= self.max {
                return false;
            }
            // Acquire: pairs with the Release of the permit's last holder.
            match self.state.compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }

    /// A permit if one is free now.
    #[inline]
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.try_acquire_raw().then(|| Permit { bulkhead: self })
    }

    /// Takes a permit if one is free now, without a guard: pair each `true`
    /// with one [`release`](Self::release).
    #[inline]
    pub fn try_acquire_raw(&self) -> bool {
        if self.take() {
            true
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Returns a permit taken with [`try_acquire_raw`](Self::try_acquire_raw)
    /// (or kept with [`Permit::forget`]). Returns false, counts, and changes
    /// nothing when no permit is held.
    #[inline]
    pub fn release(&self) -> bool {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if cur & LOW == 0 {
                self.invalid_releases.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match self.state.compare_exchange_weak(cur, cur - 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
        // `cur` is the waiter count at the moment the permit came back. A
        // waiter counted there holds the lock from registering until it
        // sleeps, so the notification below cannot come before its wait; a
        // waiter not counted registers later in this word's modification
        // order, and its next `take` sees the permit.
        if cur >> 32 > 0 {
            let _waiters = lock(&self.waiters);
            self.cond.notify_one();
        }
        true
    }

    /// A permit, waiting up to `timeout` for one to come free.
    /// [`BulkheadError::Full`] at once when `max_waiters` callers already
    /// wait; [`BulkheadError::Timeout`] when none came free in time.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Permit<'_>, BulkheadError> {
        if self.take() {
            return Ok(Permit { bulkhead: self });
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut waiters = lock(&self.waiters);
        if *waiters >= self.max_waiters {
            drop(waiters);
            self.rejected_full.fetch_add(1, Ordering::Relaxed);
            return Err(BulkheadError::Full);
        }
        *waiters += 1;
        self.state.fetch_add(WAITER, Ordering::Relaxed);
        let got = loop {
            if self.take() {
                break true;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break false,
                },
                None => Duration::from_secs(3600),
            };
            waiters = match self.cond.wait_timeout(waiters, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        };
        *waiters -= 1;
        let state = self.state.fetch_sub(WAITER, Ordering::Relaxed) - WAITER;
        // A wake-up may have gone to this caller while it was leaving (timed
        // out) or while more permits were free: pass it on.
        if *waiters > 0 && ((state & LOW) as usize) < self.max {
            self.cond.notify_one();
        }
        drop(waiters);
        if got {
            self.waited.fetch_add(1, Ordering::Relaxed);
            Ok(Permit { bulkhead: self })
        } else {
            self.timed_out.fetch_add(1, Ordering::Relaxed);
            Err(BulkheadError::Timeout)
        }
    }

    /// Counters and gauges.
    pub fn stats(&self) -> BulkheadStats {
        BulkheadStats {
            in_flight: (self.state.load(Ordering::Relaxed) & LOW) as usize,
            waiting: (self.state.load(Ordering::Relaxed) >> 32) as usize,
            rejected: self.rejected.load(Ordering::Relaxed),
            rejected_full: self.rejected_full.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            invalid_releases: self.invalid_releases.load(Ordering::Relaxed),
        }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn permits_are_bounded_and_returned_on_drop() {
        let b = Bulkhead::new(2, 0);
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none());
        assert_eq!(b.in_flight(), 2);
        drop(p1);
        let p3 = b.try_acquire().unwrap();
        drop((p2, p3));
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.stats().rejected, 1);
        assert!(Bulkhead::new(0, 4).try_acquire().is_none());
    }

    #[test]
    fn raw_release_never_underflows() {
        let b = Bulkhead::new(1, 0);
        assert!(!b.release());
        assert!(b.try_acquire_raw());
        assert!(!b.try_acquire_raw());
        assert!(b.release());
        assert!(!b.release());
        assert_eq!((b.in_flight(), b.stats().invalid_releases), (0, 2));
        b.try_acquire().unwrap().forget();
        assert_eq!(b.in_flight(), 1);
        assert!(b.release());
    }

    #[test]
    fn waiters_are_bounded_and_time_out() {
        let b = Arc::new(Bulkhead::new(1, 1));
        let held = b.try_acquire_raw();
        assert!(held);
        let b2 = Arc::clone(&b);
        let waiter =
            std::thread::spawn(move || b2.acquire_timeout(Duration::from_millis(300)).map(|p| p.forget()));
        while b.stats().waiting == 0 {
            std::thread::yield_now();
        }
        assert_eq!(b.acquire_timeout(Duration::from_secs(5)).unwrap_err(), BulkheadError::Full);
        let t = Instant::now();
        assert!(b.release());
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert!(t.elapsed() < Duration::from_millis(250), "woken late: {:?}", t.elapsed());
        assert_eq!(b.in_flight(), 1);
        let t = Instant::now();
        assert_eq!(b.acquire_timeout(Duration::from_millis(20)).unwrap_err(), BulkheadError::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(20));
        let st = b.stats();
        assert_eq!((st.waited, st.timed_out, st.rejected_full, st.waiting), (1, 1, 1, 0));
    }

    #[test]
    fn many_threads_never_exceed_the_limit() {
        let b = Arc::new(Bulkhead::new(3, 64));
        let peak = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (b, peak) = (Arc::clone(&b), Arc::clone(&peak));
                std::thread::spawn(move || {
                    let mut got = 0;
                    for _ in 0..2000 {
                        let p = if i % 2 == 0 {
                            b.try_acquire()
                        } else {
                            b.acquire_timeout(Duration::from_secs(10)).ok()
                        };
                        if let Some(p) = p {
                            peak.fetch_max(b.in_flight(), Ordering::Relaxed);
                            got += 1;
                            drop(p);
                        }
                    }
                    got
                })
            })
            .collect();
        let waited: usize = handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| (i, h.join().unwrap()))
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, g)| g)
            .sum();
        assert_eq!(waited, 3 * 2000, "every waiting caller got its permits");
        assert!(peak.load(Ordering::Relaxed) <= 3);
        assert_eq!(b.in_flight(), 0);
    }
}
