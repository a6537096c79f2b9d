//! A bounded multi-producer multi-consumer ring with per-slot sequence
//! numbers (Dmitry Vyukov's design).
//!
//! Producers claim a position by advancing `tail` with a compare-and-swap,
//! consumers by advancing `head`; each slot's sequence number says whose turn
//! it is, so a producer and a consumer never touch the same slot at once and
//! no operation waits for another thread: [`Ring::try_push`] on a full ring
//! hands the item back, [`Ring::try_pop`] on an empty ring returns `None`.
//!
//! Sequence numbers count in half-steps: the slot for position `p` is free
//! for the producer of `p` when its number is `2p`, holds the item of `p` at
//! `2p + 1`, and is released for position `p + capacity` at
//! `2(p + capacity)`. (Vyukov's original uses `p`, `p + 1`, `p + capacity`,
//! which cannot tell "full" from "free" when the capacity is 1.)
//!
//! A push (pop) in progress holds its slot until it finishes: while it does,
//! a push (pop) that reaches that slot a whole lap later reports full (empty).
//!
//! ```
//! use resilience::queue::mpmc::Ring;
//! use std::sync::Arc;
//!
//! let q = Arc::new(Ring::<u32>::new(64));
//! let producers: Vec<_> = (0..2)
//!     .map(|p| {
//!         let q = Arc::clone(&q);
//!         std::thread::spawn(move || {
//!             for i in 0..10 {
//!                 let mut item = p * 100 + i;
//!                 while let Err(back) = q.try_push(item) {
//!                     item = back;
//!                     std::thread::yield_now();
//!                 }
//!             }
//!         })
//!     })
//!     .collect();
//! for t in producers {
//!     t.join().unwrap();
//! }
//! assert_eq!(q.len(), 20);
//! let mut got: Vec<u32> = std::iter::from_fn(|| q.try_pop()).collect();
//! got.sort();
//! assert_eq!(got.len(), 20);
//! ```

use std::fmt;
use std::mem::MaybeUninit;

use super::CapacityError;
use crate::sync::{AtomicUsize, CachePadded, Ordering, UnsafeCell};

/// One slot: its turn number and its (maybe) item.
struct Slot<T> {
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded multi-producer multi-consumer ring. Share it by reference or in
/// an `Arc`; every method takes `&self`.
pub struct Ring<T> {
    /// Next position to pop; advanced by consumers.
    head: CachePadded<AtomicUsize>,
    /// Next position to push; advanced by producers.
    tail: CachePadded<AtomicUsize>,
    /// `capacity - 1`; the capacity is a power of two.
    mask: usize,
    slots: Box<[Slot<T>]>,
}

// SAFETY: the ring owns its `T`s and hands each one to exactly one thread
// (a slot's sequence number admits one producer, then one consumer), so it may
// be sent to, and shared between, threads whenever `T` itself may be sent.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above: no `&T` is ever handed out, items only move in and out
// whole under the sequence-number protocol, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// Builds a ring holding `capacity` items (rounded up to a power of two,
    /// at least 1).
    ///
    /// # Panics
    ///
    /// If the capacity exceeds [`MAX_CAPACITY`](super::MAX_CAPACITY) or the
    /// buffer cannot be allocated; use [`Ring::try_new`] to get an error
    /// instead.
    pub fn new(capacity: usize) -> Self {
        match Self::try_new(capacity) {
            Ok(ring) => ring,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Ring::new`], but returns a [`CapacityError`] for a capacity
    /// that is too large or cannot be allocated, instead of panicking.
    pub fn try_new(capacity: usize) -> Result<Self, CapacityError> {
        let cap = super::round_capacity(capacity)?;
        let mut slots: Vec<Slot<T>> = super::reserve(cap, capacity)?;
        slots.extend(
            (0..cap).map(|i| Slot {
                seq: AtomicUsize::new(i << 1),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            }),
        );
        Ok(Ring {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            mask: cap - 1,
            slots: slots.into_boxed_slice(),
        })
    }

    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & self.mask;
        debug_assert!(index < self.slots.len());
        // SAFETY: `index <= mask == slots.len() - 1`.
        unsafe { self.slots.get_unchecked(index) }
    }

    /// Pushes `value`, or hands it back when the ring is full.
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), T> {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos << 1) as isize;
            if diff == 0 {
                match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: number `2 * pos` (Acquire) = free and the last read
                        // is done; our CAS made us the only producer of `pos`; no
                        // consumer touches the slot before the Release store below.
                        slot.value.with_mut(|p| unsafe { p.cast::<T>().write(value) });
                        slot.seq.store((pos << 1) | 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                // The slot still holds (or is about to hold) the item of
                // position `pos - capacity`: full.
                return Err(value);
            } else {
                // Another producer took `pos`; catch up.
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the oldest available item, or `None` when the ring is empty.
    #[inline]
    pub fn try_pop(&self) -> Option<T> {
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub((pos << 1) | 1) as isize;
            if diff == 0 {
                match self.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: number `2 * pos + 1` (Acquire) = the item of `pos` is
                        // written; our CAS made us its only consumer; no producer
                        // touches the slot before the Release store below frees it.
                        let value = slot.value.with(|p| unsafe { p.cast::<T>().read() });
                        slot.seq.store(pos.wrapping_add(self.mask + 1) << 1, Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                // The item of `pos` has not been written: empty.
                return None;
            } else {
                // Another consumer took `pos`; catch up.
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Pushes copies of `values` in order, as many as fit, and returns how
    /// many. Each run of consecutive free slots is claimed with one
    /// compare-exchange (instead of one per item), so a batch costs about
    /// one contended atomic, not one per item. Items of concurrent producers
    /// may interleave between runs, never inside one.
    pub fn push_slice(&self, values: &[T]) -> usize
    where
        T: Copy,
    {
        let mut done = 0;
        while done < values.len() {
            let n = self.push_run(&values[done..]);
            if n == 0 {
                break;
            }
            done += n;
        }
        done
    }

    /// Claims up to `values.len()` consecutive free slots at the tail with
    /// one compare-exchange and fills them; 0 when full.
    fn push_run(&self, values: &[T]) -> usize
    where
        T: Copy,
    {
        let want = values.len().min(self.mask + 1);
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let seq = self.slot(pos).seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos << 1) as isize;
            if diff < 0 {
                return 0; // full
            }
            if diff > 0 {
                pos = self.tail.load(Ordering::Relaxed); // another producer took `pos`
                continue;
            }
            // Slot `pos` is free; count how many after it are free too (each
            // number is exactly `2 * position`: free for this lap). Positions
            // are claimed only by moving the tail past them, so if the tail is
            // still `pos` at the CAS below, no producer has taken any of
            // `pos..pos + k`, and after it none can.
            let mut k = 1;
            while k < want {
                let at = pos.wrapping_add(k);
                if self.slot(at).seq.load(Ordering::Acquire) != at << 1 {
                    break;
                }
                k += 1;
            }
            match self.tail.compare_exchange_weak(
                pos,
                pos.wrapping_add(k),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    for (i, &value) in values[..k].iter().enumerate() {
                        let at = pos.wrapping_add(i);
                        let slot = self.slot(at);
                        // SAFETY: number `2 * at` (Acquire, in the scan) = free; the tail
                        // was `pos` at our CAS, so `pos..pos + k` is ours alone; no
                        // consumer touches the slot before the Release store below.
                        slot.value.with_mut(|p| unsafe { p.cast::<T>().write(value) });
                        slot.seq.store((at << 1) | 1, Ordering::Release);
                    }
                    return k;
                }
                Err(current) => pos = current,
            }
        }
    }

    /// Pops items in order into `out`, as many as are available (up to
    /// `out.len()`), and returns how many. Each run of consecutive published
    /// items is claimed with one compare-exchange.
    pub fn pop_slice(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let mut done = 0;
        while done < out.len() {
            let n = self.pop_run(&mut out[done..]);
            if n == 0 {
                break;
            }
            done += n;
        }
        done
    }

    /// Claims up to `out.len()` consecutive published items at the head with
    /// one compare-exchange and reads them; 0 when empty.
    fn pop_run(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let want = out.len().min(self.mask + 1);
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let seq = self.slot(pos).seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub((pos << 1) | 1) as isize;
            if diff < 0 {
                return 0; // empty
            }
            if diff > 0 {
                pos = self.head.load(Ordering::Relaxed); // another consumer took `pos`
                continue;
            }
            let mut k = 1;
            while k < want {
                let at = pos.wrapping_add(k);
                if self.slot(at).seq.load(Ordering::Acquire) != (at << 1) | 1 {
                    break;
                }
                k += 1;
            }
            match self.head.compare_exchange_weak(
                pos,
                pos.wrapping_add(k),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    for (i, o) in out[..k].iter_mut().enumerate() {
                        let at = pos.wrapping_add(i);
                        let slot = self.slot(at);
                        // SAFETY: number `2 * at + 1` (Acquire, in the scan) = written;
                        // the head was `pos` at our CAS, so `pos..pos + k` is ours
                        // alone; no producer writes the slot before the Release below.
                        *o = slot.value.with(|p| unsafe { p.cast::<T>().read() });
                        slot.seq.store(at.wrapping_add(self.mask + 1) << 1, Ordering::Release);
                    }
                    return k;
                }
                Err(current) => pos = current,
            }
        }
    }

    /// The number of queued items (pushes and pops in progress included),
    /// from a consistent snapshot of both positions.
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            // `head <= tail` holds whenever `tail` did not move between the two
            // loads of it.
            if self.tail.load(Ordering::SeqCst) == tail {
                return tail.wrapping_sub(head).min(self.capacity());
            }
        }
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring is full.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// The number of items the ring holds when full (a power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        // `&mut self`: no push or pop is in progress, so every position in
        // `head..tail` holds an item.
        let tail = self.tail.load(Ordering::Relaxed);
        let mut pos = self.head.load(Ordering::Relaxed);
        while pos != tail {
            // SAFETY: position `pos` holds an initialised item (see above) that
            // nobody else can reach; each position is dropped once.
            self.slot(pos).value.with_mut(|p| unsafe { p.cast::<T>().drop_in_place() });
            pos = pos.wrapping_add(1);
        }
    }
}

impl<T> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpmc::Ring").field("capacity", &self.capacity()).field("len", &self.len()).finish()
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn fifo_full_and_empty() {
        let q = Ring::new(3);
        assert_eq!(q.capacity(), 4);
        assert!(q.is_empty());
        for i in 0..4 {
            assert_eq!(q.try_push(i), Ok(()));
        }
        assert!(q.is_full());
        assert_eq!(q.try_push(9), Err(9));
        for i in 0..4 {
            assert_eq!(q.try_pop(), Some(i));
        }
        assert_eq!(q.try_pop(), None);
    }

    #[test]
    fn capacity_one_works_across_many_laps() {
        let q = Ring::new(1);
        for i in 0..100 {
            assert_eq!(q.try_push(i), Ok(()));
            assert_eq!(q.try_push(i), Err(i));
            assert_eq!(q.len(), 1);
            assert_eq!(q.try_pop(), Some(i));
            assert_eq!(q.try_pop(), None);
        }
    }

    #[test]
    fn absurd_capacity_is_an_error() {
        assert!(matches!(Ring::<u8>::try_new(usize::MAX), Err(CapacityError::TooLarge { .. })));
        assert!(matches!(Ring::<u64>::try_new(1 << 60), Err(CapacityError::OutOfMemory { .. })));
    }

    #[test]
    fn drop_releases_what_is_queued() {
        struct Counted(Rc<Cell<usize>>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let drops = Rc::new(Cell::new(0));
        let q = Ring::new(4);
        for _ in 0..6 {
            // The fifth and sixth come back and are dropped by us.
            let _ = q.try_push(Counted(drops.clone()));
        }
        assert_eq!(drops.get(), 2);
        drop(q.try_pop());
        assert_eq!(drops.get(), 3);
        drop(q);
        assert_eq!(drops.get(), 6);
    }

    #[test]
    fn ring_is_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Ring<String>>();
    }
}
