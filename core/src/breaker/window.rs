//! Sliding windows updated with atomics only.
//!
//! Both windows are tagged with the *epoch* of the closed (or metrics-only)
//! state that fills them: the generation at which that state began. A result
//! carries its permit's generation; a write tagged with an older epoch never
//! overwrites or counts towards a newer one, so a result that arrives after
//! the breaker left (and re-entered) the closed state is not counted against
//! the new state, however late it is.
//!
//! **Count-based** (the last N calls): a ring of N `u64` slots, each holding
//! `epoch:56 | outcome:8`, an atomic cursor, and one aggregate word
//! `tag:10 | slow:18 | failed:18 | calls:18` that always equals the sum of
//! the slots of its epoch (each slot change adds its difference with one CAS).
//! A success that replaces a success of the same epoch changes nothing and
//! costs one `fetch_add` on the cursor and one load; a fast success into a
//! full window of fast successes costs one load (no write at all).
//!
//! **Time-based** (the last N seconds): N one-second buckets of three
//! counters (calls, failed, slow), each `valid:1 | epoch:8 | second:27 |
//! count:28`. The first write of a new second replaces the bucket's older
//! second; a bucket's failed/slow counts only count while their tag equals
//! the calls counter's. Evaluating the window reads every bucket (O(N)).

use crate::clock::{Nanos, SECOND};
use crate::sync::{AtomicU32, AtomicU64, CachePadded, Ordering};

/// Outcome bits stored in a count slot.
pub(crate) const PRESENT: u8 = 1;
/// The call failed.
pub(crate) const FAILED: u8 = 2;
/// The call was slow.
pub(crate) const SLOW: u8 = 4;

/// Counts over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub calls: u64,
    pub failed: u64,
    pub slow: u64,
}

/// What a window write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// The window changed (or may have); here are its counts afterwards.
    Changed(Counts),
    /// The window's counts are exactly what they were: no check needed.
    Unchanged,
    /// The write belongs to an older epoch than the window's: not counted.
    Stale,
}

/// The closed state's window. The count window's padded atomics make it the
/// larger variant; it is the common one and lives inline in the breaker.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// True when one more fast success of epoch `gen` would leave the window
    /// unchanged: a count window full of fast successes (what
    /// [`record`](Self::record) answers [`Write::Unchanged`] for without a
    /// write). Two loads; never panics.
    #[inline(always)]
    pub(crate) fn healthy(&self, gen: u64) -> bool {
        match self {
            Window::Count(w) => w.agg.load(Ordering::Acquire) == agg_fresh(gen) | w.size as u64,
            Window::Time(_) => false,
        }
    }

    /// Records `bits` (PRESENT and maybe FAILED / SLOW) for epoch `gen` at `now`
    /// (`now` is read only by a time-based window).
    #[inline]
    pub(crate) fn record(&self, gen: u64, bits: u8, now: impl FnOnce() -> Nanos) -> Write {
        match self {
            Window::Count(w) => w.record(gen, bits),
            Window::Time(w) => w.record(gen, bits, now()),
        }
    }

    /// Empties the window and gives it epoch `gen`. Called under the breaker's
    /// transition lock, before the new state is published.
    pub(crate) fn reset(&self, gen: u64) {
        match self {
            Window::Count(w) => w.reset(gen),
            Window::Time(w) => w.reset(),
        }
    }

    /// The counts of epoch `gen` at `now`.
    pub(crate) fn counts(&self, gen: u64, now: Nanos) -> Counts {
        match self {
            Window::Count(w) => w.counts(gen),
            Window::Time(w) => w.counts(gen, now),
        }
    }
}

// ---------------------------------------------------------------- count ----

const EPOCH_MASK: u64 = (1 << 56) - 1;
const FIELD_BITS: u32 = 18;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
const AGG_TAG_SHIFT: u32 = 3 * FIELD_BITS;
const AGG_TAG_MASK: u64 = (1 << (64 - AGG_TAG_SHIFT)) - 1;

/// The last `size` calls.
#[derive(Debug)]
pub(crate) struct CountWindow {
    size: u32,
    /// Lemire's fastmod constant for `size`: `u64::MAX / size + 1` (wrapping).
    magic: u64,
    cursor: CachePadded<AtomicU32>,
    agg: CachePadded<AtomicU64>,
    slots: Box<[AtomicU64]>,
}

#[inline]
fn agg_fresh(gen: u64) -> u64 {
    (gen & AGG_TAG_MASK) << AGG_TAG_SHIFT
}

impl CountWindow {
    pub(crate) fn new(size: u32, gen: u64) -> Self {
        debug_assert!(size >= 1);
        Self {
            size,
            magic: (u64::MAX / size as u64).wrapping_add(1),
            cursor: CachePadded(AtomicU32::new(0)),
            agg: CachePadded(AtomicU64::new(agg_fresh(gen))),
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// `i % size` without a division (Lemire, "Faster remainder by direct
    /// computation", 2019); exact for every 32-bit `i` and `size`.
    #[inline]
    fn index(&self, i: u32) -> usize {
        let low = self.magic.wrapping_mul(i as u64);
        ((low as u128 * self.size as u128) >> 64) as usize
    }

    /// One field of the aggregate, read as an 18-bit signed value (a field may
    /// be briefly negative while two writers of one slot race) clamped to
    /// `0..=size`.
    #[inline]
    fn field(&self, agg: u64, k: u32) -> u64 {
        let v = (agg >> (k * FIELD_BITS)) & FIELD_MASK;
        if v >= 1 << (FIELD_BITS - 1) {
            0
        } else {
            v.min(self.size as u64)
        }
    }

    #[inline]
    fn decode(&self, agg: u64) -> Counts {
        Counts { calls: self.field(agg, 0), failed: self.field(agg, 1), slow: self.field(agg, 2) }
    }

    #[inline]
    pub(crate) fn record(&self, gen: u64, bits: u8) -> Write {
        // A healthy window (full, every call a fast success) is unchanged by
        // one more fast success, whichever slot it would replace: skip the
        // cursor, so the common case writes nothing shared. If a failure is
        // being recorded concurrently (slot written, aggregate not yet), this
        // success orders before it, which the slots already agree with.
        if bits == PRESENT && self.agg.load(Ordering::Acquire) == agg_fresh(gen) | self.size as u64 {
            return Write::Unchanged;
        }
        let epoch = gen & EPOCH_MASK;
        let new = (epoch << 8) | bits as u64;
        // The cursor wraps at 2^32: once per four billion calls one slot is
        // reused a little early, which only blurs the window's edge.
        let i = self.cursor.fetch_add(1, Ordering::Relaxed);
        let idx = self.index(i);
        debug_assert!(idx < self.slots.len());
        let slot = &self.slots[idx];
        let mut old = slot.load(Ordering::Acquire);
        loop {
            if old >> 8 > epoch {
                // A newer window owns this slot: this result is stale.
                return Write::Stale;
            }
            if old == new {
                return Write::Unchanged;
            }
            match slot.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(seen) => old = seen,
            }
        }
        // An older epoch's slot is empty as far as this epoch is concerned.
        let old_bits = if old >> 8 == epoch { old as u8 } else { 0 };
        let delta = |mask: u8| -> i64 { ((bits & mask != 0) as i64) - ((old_bits & mask != 0) as i64) };
        let deltas = [delta(PRESENT), delta(FAILED), delta(SLOW)];
        let tag = gen & AGG_TAG_MASK;
        let mut agg = self.agg.load(Ordering::Acquire);
        loop {
            if agg >> AGG_TAG_SHIFT != tag {
                // The window was reset for a newer epoch after our slot write;
                // that epoch reads our slot as empty.
                return Write::Stale;
            }
            let mut next = agg & (AGG_TAG_MASK << AGG_TAG_SHIFT);
            for (k, d) in deltas.iter().enumerate() {
                let shift = k as u32 * FIELD_BITS;
                let v = (agg >> shift) & FIELD_MASK;
                next |= ((v as i64 + d) as u64 & FIELD_MASK) << shift;
            }
            match self.agg.compare_exchange_weak(agg, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Write::Changed(self.decode(next)),
                Err(seen) => agg = seen,
            }
        }
    }

    pub(crate) fn reset(&self, gen: u64) {
        // Slots keep their (older) epochs: they read as empty from now on.
        self.agg.store(agg_fresh(gen), Ordering::Release);
    }

    pub(crate) fn counts(&self, gen: u64) -> Counts {
        let agg = self.agg.load(Ordering::Acquire);
        if agg >> AGG_TAG_SHIFT != gen & AGG_TAG_MASK {
            return Counts::default();
        }
        self.decode(agg)
    }
}

// ----------------------------------------------------------------- time ----

const COUNT_BITS: u32 = 28;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const SEC_BITS: u32 = 27;
const SEC_MASK: u64 = (1 << SEC_BITS) - 1;
const VALID: u64 = 1 << (SEC_BITS + 8);

#[derive(Debug, Default)]
struct Bucket {
    calls: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
}

/// The calls of the last `seconds` seconds.
///
/// Its time does not go back by less than [`TimeWindow::restart_gap`]: a
/// result or a read at an instant that much before the newest second seen
/// so far (a late result, a clock set back a little) counts as of that
/// newest second. Otherwise a result older than its bucket's second would be
/// dropped while reported as counted, and after a clock stepped back by more
/// than the window the breaker would see no call until the clock caught up.
/// A result further back than the gap starts a new timeline: the window is
/// emptied and time restarts there, so that one stamp far in the future (a
/// bogus `now`) cannot pin the window for ever.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    seconds: u32,
    buckets: Box<[Bucket]>,
    /// The newest second a result was recorded in.
    newest: AtomicU64,
}

#[inline]
fn time_tag(gen: u64, sec: u64) -> u64 {
    VALID | (gen & 0xFF) << SEC_BITS | (sec & SEC_MASK)
}

/// Whether 8-bit epoch `a` is newer than `b` (serial-number arithmetic).
#[inline]
fn epoch_newer(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b) & 0xFF;
    d != 0 && d < 0x80
}

/// Whether 27-bit second `a` is newer than `b`.
#[inline]
fn sec_newer(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b) & SEC_MASK;
    d != 0 && d < (1 << (SEC_BITS - 1))
}

enum Bump {
    Done,
    Stale,
    TooOld,
}

/// Adds one to `counter` under `tag`, replacing an older second or epoch.
#[inline]
fn bump(counter: &AtomicU64, tag: u64) -> Bump {
    let mut old = counter.load(Ordering::Acquire);
    loop {
        let old_tag = old >> COUNT_BITS;
        let new = if old_tag == tag {
            if old & COUNT_MASK == COUNT_MASK {
                return Bump::Done; // saturated: 268M calls in one second
            }
            old + 1
        } else if old_tag & VALID == 0 {
            tag << COUNT_BITS | 1
        } else {
            let (old_epoch, epoch) = ((old_tag >> SEC_BITS) & 0xFF, (tag >> SEC_BITS) & 0xFF);
            if old_epoch != epoch {
                if epoch_newer(old_epoch, epoch) {
                    return Bump::Stale;
                }
            } else if sec_newer(old_tag & SEC_MASK, tag & SEC_MASK) {
                // This bucket already holds a later second: the call is older
                // than the window.
                return Bump::TooOld;
            }
            tag << COUNT_BITS | 1
        };
        match counter.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Bump::Done,
            Err(seen) => old = seen,
        }
    }
}

impl TimeWindow {
    pub(crate) fn new(seconds: u32) -> Self {
        debug_assert!(seconds >= 1);
        Self {
            seconds,
            buckets: (0..seconds).map(|_| Bucket::default()).collect(),
            newest: AtomicU64::new(0),
        }
    }

    /// How far back (seconds) before the newest second a result still
    /// counts as of that second: the window, and at least a minute.
    pub(crate) fn restart_gap(seconds: u32) -> u64 {
        (seconds as u64).max(60)
    }

    /// The second a read at `now` is as of: the newest one recorded when
    /// `now` is behind it by less than the restart gap.
    #[inline]
    fn second(&self, now: Nanos) -> u64 {
        let (s, newest) = (now / SECOND, self.newest.load(Ordering::Relaxed));
        if s < newest && newest - s < Self::restart_gap(self.seconds) {
            newest
        } else {
            s
        }
    }

    pub(crate) fn record(&self, gen: u64, bits: u8, now: Nanos) -> Write {
        let s = now / SECOND;
        let newest = self.newest.load(Ordering::Relaxed);
        let sec = if s > newest {
            self.newest.fetch_max(s, Ordering::Relaxed);
            s
        } else if newest - s < Self::restart_gap(self.seconds) {
            newest
        } else {
            // Too far back to be late: a new timeline (racing recorders may
            // land a result or two either side of the restart).
            self.newest.store(s, Ordering::Relaxed);
            self.reset();
            s
        };
        let idx = (sec % self.seconds as u64) as usize;
        debug_assert!(idx < self.buckets.len());
        let b = &self.buckets[idx];
        let tag = time_tag(gen, sec);
        match bump(&b.calls, tag) {
            Bump::Stale => return Write::Stale,
            Bump::TooOld => {}
            Bump::Done => {
                if bits & FAILED != 0 {
                    bump(&b.failed, tag);
                }
                if bits & SLOW != 0 {
                    bump(&b.slow, tag);
                }
            }
        }
        Write::Changed(self.counts(gen, now))
    }

    pub(crate) fn reset(&self) {
        for b in self.buckets.iter() {
            b.calls.store(0, Ordering::Relaxed);
            b.failed.store(0, Ordering::Relaxed);
            b.slow.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn counts(&self, gen: u64, now: Nanos) -> Counts {
        let now_sec = self.second(now);
        let epoch = gen & 0xFF;
        let mut c = Counts::default();
        for b in self.buckets.iter() {
            let calls = b.calls.load(Ordering::Acquire);
            let tag = calls >> COUNT_BITS;
            if tag & VALID == 0 || (tag >> SEC_BITS) & 0xFF != epoch {
                continue;
            }
            let age = now_sec.wrapping_sub(tag & SEC_MASK) & SEC_MASK;
            if age >= self.seconds as u64 {
                continue;
            }
            c.calls += calls & COUNT_MASK;
            let failed = b.failed.load(Ordering::Acquire);
            if failed >> COUNT_BITS == tag {
                c.failed += failed & COUNT_MASK;
            }
            let slow = b.slow.load(Ordering::Acquire);
            if slow >> COUNT_BITS == tag {
                c.slow += slow & COUNT_MASK;
            }
        }
        c
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fastmod_matches_remainder() {
        for size in [1u32, 2, 3, 7, 10, 100, 1000, 65535, 65536] {
            let w = CountWindow::new(size, 0);
            for i in (0..5000u32).chain([u32::MAX, u32::MAX - 1, 1 << 31, 123_456_789]) {
                assert_eq!(w.index(i), (i % size) as usize, "i={i} size={size}");
            }
        }
    }

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(3, 1);
        assert_eq!(w.record(1, PRESENT | FAILED,), Write::Changed(Counts { calls: 1, failed: 1, slow: 0 }));
        assert_eq!(w.record(1, PRESENT | SLOW), Write::Changed(Counts { calls: 2, failed: 1, slow: 1 }));
        assert_eq!(w.record(1, PRESENT), Write::Changed(Counts { calls: 3, failed: 1, slow: 1 }));
        // Evicts the failure.
        assert_eq!(w.record(1, PRESENT), Write::Changed(Counts { calls: 3, failed: 0, slow: 1 }));
        assert_eq!(w.record(1, PRESENT), Write::Changed(Counts { calls: 3, failed: 0, slow: 0 }));
        // Success over success: nothing to do.
        assert_eq!(w.record(1, PRESENT), Write::Unchanged);
        // A result of an older epoch is stale once the window has moved on.
        w.reset(4);
        assert_eq!(w.counts(4), Counts::default());
        assert_eq!(w.record(4, PRESENT | FAILED), Write::Changed(Counts { calls: 1, failed: 1, slow: 0 }));
        assert_eq!(w.record(1, PRESENT | FAILED), Write::Stale);
        assert_eq!(w.counts(4), Counts { calls: 1, failed: 1, slow: 0 });
    }

    #[test]
    fn healthy_window_skips_the_cursor_but_still_slides() {
        let w = CountWindow::new(2, 0);
        w.record(0, PRESENT);
        w.record(0, PRESENT);
        let cursor = w.cursor.load(Ordering::Relaxed);
        assert_eq!(w.record(0, PRESENT), Write::Unchanged);
        assert_eq!(w.cursor.load(Ordering::Relaxed), cursor, "no write on the healthy path");
        assert_eq!(w.record(0, PRESENT | FAILED), Write::Changed(Counts { calls: 2, failed: 1, slow: 0 }));
        assert_eq!(w.record(0, PRESENT), Write::Unchanged, "replaced the other success");
        assert_eq!(w.record(0, PRESENT), Write::Changed(Counts { calls: 2, failed: 0, slow: 0 }));
        // A stale epoch never takes the shortcut.
        w.reset(1);
        w.record(1, PRESENT);
        w.record(1, PRESENT);
        assert_eq!(w.record(0, PRESENT), Write::Stale);
    }

    #[test]
    fn time_window_rolls_over_by_second() {
        let w = TimeWindow::new(2);
        let t0 = 10 * SECOND;
        assert_eq!(
            w.record(0, PRESENT | FAILED, t0),
            Write::Changed(Counts { calls: 1, failed: 1, slow: 0 })
        );
        assert_eq!(
            w.record(0, PRESENT | SLOW, t0 + SECOND),
            Write::Changed(Counts { calls: 2, failed: 1, slow: 1 })
        );
        // Two seconds later the first bucket has left the window.
        assert_eq!(w.counts(0, t0 + 2 * SECOND), Counts { calls: 1, failed: 0, slow: 1 });
        assert_eq!(
            w.record(0, PRESENT, t0 + 2 * SECOND),
            Write::Changed(Counts { calls: 2, failed: 0, slow: 1 })
        );
        // A call from before the newest second counts as of that second
        // (the window's time never goes back), and so does a read.
        assert_eq!(
            w.record(0, PRESENT | FAILED, t0),
            Write::Changed(Counts { calls: 3, failed: 1, slow: 1 })
        );
        assert_eq!(w.counts(0, 0), Counts { calls: 3, failed: 1, slow: 1 });
        // Another epoch's buckets do not count; an older epoch's write is stale.
        w.reset();
        assert_eq!(
            w.record(3, PRESENT, t0 + 2 * SECOND),
            Write::Changed(Counts { calls: 1, failed: 0, slow: 0 })
        );
        assert_eq!(w.record(2, PRESENT, t0 + 2 * SECOND), Write::Stale);
        assert_eq!(w.counts(0, t0 + 2 * SECOND), Counts::default());
    }

    #[test]
    fn serial_comparisons() {
        assert!(epoch_newer(1, 0) && epoch_newer(0, 255) && !epoch_newer(0, 1) && !epoch_newer(5, 5));
        assert!(sec_newer(1, 0) && sec_newer(0, SEC_MASK) && !sec_newer(0, 1));
    }
}
