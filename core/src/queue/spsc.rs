//! A bounded, wait-free single-producer single-consumer ring.
//!
//! [`Ring::new`] returns a [`Producer`] and a [`Consumer`]. Each handle is
//! `Send` (when `T: Send`) but neither is `Clone` nor `Sync`, so exactly one
//! thread pushes and exactly one thread pops at any time.
//!
//! Layout: the consumer's `head` and the producer's `tail` live on separate
//! cache lines ([`CachePadded`]); each handle keeps its own position and a
//! cached copy of the other side's position, so the common case (the ring is
//! neither full nor empty as far as the cache knows) reads no line the other
//! core writes. Every operation finishes in a bounded number of steps.
//!
//! ```
//! use resilience::queue::spsc::Ring;
//!
//! let (mut tx, mut rx) = Ring::<u32>::new(3); // rounded up to 4
//! assert_eq!(tx.capacity(), 4);
//! assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5]), 4); // as many as fit
//! assert_eq!(tx.push(6), Err(6)); // full: the item comes back
//!
//! let chunk = rx.read_chunk(3);
//! assert_eq!(chunk.as_slices(), (&[1, 2, 3][..], &[][..]));
//! chunk.commit_all();
//! assert_eq!(rx.pop(), Some(4));
//! assert_eq!(rx.pop(), None);
//! ```
//!
//! The handles cannot be shared or cloned:
//!
//! ```compile_fail
//! fn sync<T: Sync>(_: &T) {}
//! let (tx, _rx) = resilience::queue::spsc::Ring::<u8>::new(2);
//! sync(&tx);
//! ```
//!
//! ```compile_fail
//! let (tx, _rx) = resilience::queue::spsc::Ring::<u8>::new(2);
//! let _again = tx.clone();
//! ```
//!
//! ```compile_fail
//! fn sync<T: Sync>(_: &T) {}
//! let (_tx, rx) = resilience::queue::spsc::Ring::<u8>::new(2);
//! sync(&rx);
//! ```

use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};

use super::CapacityError;
use crate::sync::{Arc, AtomicBool, AtomicUsize, CachePadded, Ordering, UnsafeCell};

type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// The shared state of a single-producer single-consumer ring.
///
/// Only reachable through its [`Producer`] and [`Consumer`]; build one with
/// [`Ring::new`] or [`Ring::try_new`].
pub struct Ring<T> {
    /// Position of the next item to pop; written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Position of the next free slot; written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Set by whichever handle is dropped first.
    abandoned: AtomicBool,
    /// `capacity - 1`; the capacity is a power of two.
    mask: usize,
    /// Slot `pos & mask` holds an initialised item iff `head <= pos < tail`
    /// (positions are free-running and compared with wrapping arithmetic).
    slots: Box<[Slot<T>]>,
}

impl<T> Ring<T> {
    /// Builds a ring holding `capacity` items (rounded up to a power of two,
    /// at least 1) and returns its two ends.
    ///
    /// # Panics
    ///
    /// If the capacity exceeds [`MAX_CAPACITY`](super::MAX_CAPACITY) or the
    /// buffer cannot be allocated; use [`Ring::try_new`] to get an error
    /// instead.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(capacity: usize) -> (Producer<T>, Consumer<T>) {
        match Self::try_new(capacity) {
            Ok(ends) => ends,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Ring::new`], but returns a [`CapacityError`] for a capacity
    /// that is too large or cannot be allocated, instead of panicking.
    pub fn try_new(capacity: usize) -> Result<(Producer<T>, Consumer<T>), CapacityError> {
        let cap = super::round_capacity(capacity)?;
        let mut slots: Vec<Slot<T>> = super::reserve(cap, capacity)?;
        #[cfg(not(resilience_loom))]
        // SAFETY: `reserve` made room for exactly `cap` elements, and an
        // uninitialised `UnsafeCell<MaybeUninit<T>>` is a valid value
        // (`UnsafeCell` is `repr(transparent)` under std, `MaybeUninit` has no
        // validity requirement). This also makes zero-sized `T` instant.
        unsafe {
            slots.set_len(cap)
        };
        #[cfg(resilience_loom)]
        slots.extend((0..cap).map(|_| UnsafeCell::new(MaybeUninit::uninit())));
        let ring = Arc::new(Ring {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            abandoned: AtomicBool::new(false),
            mask: cap - 1,
            slots: slots.into_boxed_slice(),
        });
        let producer =
            Producer { ring: ManuallyDrop::new(Arc::clone(&ring)), tail: 0, cached_head: 0, mask: cap - 1 };
        let consumer = Consumer { ring: ManuallyDrop::new(ring), head: 0, cached_tail: 0, mask: cap - 1 };
        Ok((producer, consumer))
    }

    /// The number of items the ring holds when full.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The slot for position `pos`.
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & self.mask;
        debug_assert!(index < self.slots.len());
        // SAFETY: `index <= mask == slots.len() - 1`.
        unsafe { self.slots.get_unchecked(index) }
    }

    /// Moves the item at `pos` out of its slot.
    ///
    /// # Safety
    ///
    /// The slot must hold an initialised item that nobody else accesses, and
    /// the caller must treat the slot as empty afterwards.
    #[inline(always)]
    unsafe fn take(&self, pos: usize) -> T {
        // SAFETY: the caller guarantees the slot is initialised and ours.
        self.slot(pos).with(|p| unsafe { p.cast::<T>().read() })
    }

    /// Writes `value` into the (empty) slot at `pos`.
    ///
    /// # Safety
    ///
    /// The slot must be empty (its item, if any, moved out or dropped) and
    /// nobody else may access it until the write is published.
    #[inline(always)]
    unsafe fn put(&self, pos: usize, value: T) {
        // SAFETY: the caller guarantees exclusive access to an empty slot.
        self.slot(pos).with_mut(|p| unsafe { p.cast::<T>().write(value) })
    }

    /// Marks the ring abandoned; called by the first handle dropped.
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Both handles are gone (the ring lives in their `Arc`, whose drop
        // synchronises with theirs), so the positions are final.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        if std::mem::needs_drop::<T>() {
            let mut pos = head;
            while pos != tail {
                // SAFETY: positions in `head..tail` hold initialised items and no
                // handle is left to touch them; each is dropped once.
                drop(unsafe { self.take(pos) });
                pos = pos.wrapping_add(1);
            }
        }
    }
}

impl<T> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("spsc::Ring")
            .field("capacity", &self.capacity())
            .field("head", &self.head.load(Ordering::Relaxed))
            .field("tail", &self.tail.load(Ordering::Relaxed))
            .finish()
    }
}

/// The pushing end of an [`spsc::Ring`](Ring).
pub struct Producer<T> {
    /// Released by our `Drop` (see `release_ring`).
    ring: ManuallyDrop<Arc<Ring<T>>>,
    /// Our position: equal to `ring.tail` except in the middle of a push.
    tail: usize,
    /// Last seen `ring.head`; never ahead of the real one.
    cached_head: usize,
    mask: usize,
}

// SAFETY: the producer only moves `T`s into the ring (which another thread
// takes out), so it may move to another thread when `T: Send`. It is not
// `Sync` (the contained `Arc<Ring<T>>` holds `UnsafeCell`s), which keeps the
// single-producer invariant: `&mut self` methods need the only handle.
unsafe impl<T: Send> Send for Producer<T> {}

impl<T> Producer<T> {
    /// Free slots as far as the cached head knows, refreshing it when that
    /// is fewer than `want`; returns at most `want`.
    #[inline(always)]
    fn reserve(&mut self, want: usize) -> usize {
        let cap = self.mask + 1;
        let mut free = cap - self.tail.wrapping_sub(self.cached_head);
        if free < want {
            self.cached_head = self.ring.head.load(Ordering::Acquire);
            free = cap - self.tail.wrapping_sub(self.cached_head);
        }
        free.min(want)
    }

    /// Publishes every item written up to `self.tail`.
    #[inline(always)]
    fn publish(&self) {
        self.ring.tail.store(self.tail, Ordering::Release);
    }

    /// Pushes `value`, or hands it back when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.reserve(1) == 0 {
            return Err(value);
        }
        // SAFETY: `reserve` saw the slot at `tail` free (the consumer has moved
        // past it, which the Acquire load of `head` ordered before this write),
        // and only the producer writes slots at or beyond `tail`.
        unsafe { self.ring.put(self.tail, value) };
        self.tail = self.tail.wrapping_add(1);
        self.publish();
        Ok(())
    }

    /// Copies as many items from the front of `items` as fit and returns how
    /// many were pushed (0 when full).
    #[inline]
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        let n = self.reserve(items.len());
        if n == 0 {
            return 0;
        }
        let start = self.tail & self.mask;
        let first = n.min(self.mask + 1 - start);
        let (a, b) = items[..n].split_at(first);
        // Two contiguous runs of buffer indices (`start..start + first`, then
        // `0..n - first`), so the loops vectorise or become memcpy.
        let ring = &*self.ring;
        for (slot, &item) in ring.slots[start..start + first].iter().zip(a) {
            // SAFETY: `reserve` found `n` free slots from `tail` on (see `push`).
            slot.with_mut(|p| unsafe { p.cast::<T>().write(item) });
        }
        for (slot, &item) in ring.slots[..n - first].iter().zip(b) {
            // SAFETY: as above; these are the slots after the wrap-around.
            slot.with_mut(|p| unsafe { p.cast::<T>().write(item) });
        }
        self.tail = self.tail.wrapping_add(n);
        self.publish();
        n
    }

    /// Pushes all of `items` if that many slots are free, or none of them;
    /// returns whether it did.
    #[inline]
    pub fn push_all(&mut self, items: &[T]) -> bool
    where
        T: Copy,
    {
        if self.reserve(items.len()) < items.len() {
            return false;
        }
        self.push_slice(items) == items.len()
    }

    /// Pushes items from `iter` while there is room and returns how many were
    /// pushed. The iterator is not advanced past the last item pushed, so no
    /// item is lost when the ring fills up. The items are published together
    /// at the end: if the iterator panics, those it already gave stay in the
    /// ring unseen by the consumer until the next push (or are dropped with
    /// the ring), never lost or dropped twice.
    pub fn push_iter(&mut self, iter: impl IntoIterator<Item = T>) -> usize {
        let room = self.reserve(usize::MAX);
        let mut iter = iter.into_iter();
        let mut pushed = 0;
        while pushed < room {
            let Some(item) = iter.next() else { break };
            // SAFETY: `reserve` found `room` free slots from the original tail.
            unsafe { self.ring.put(self.tail, item) };
            // Advance per item: if `next` panics, what was written stays
            // accounted for (published by the next push or by our `Drop`).
            self.tail = self.tail.wrapping_add(1);
            pushed += 1;
        }
        if pushed > 0 {
            self.publish();
        }
        pushed
    }

    /// The number of free slots right now.
    #[inline]
    pub fn slots(&self) -> usize {
        self.mask + 1 - self.len()
    }

    /// The number of queued items right now (the consumer may be draining).
    #[inline]
    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.ring.head.load(Ordering::Acquire))
    }

    /// Whether no item is queued right now.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring is full right now.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.slots() == 0
    }

    /// The number of items the ring holds when full (a power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Whether the [`Consumer`] has been dropped: nobody will pop again.
    #[inline]
    pub fn is_abandoned(&self) -> bool {
        self.ring.abandoned.load(Ordering::Acquire)
    }
}

impl<T> Drop for Producer<T> {
    #[inline]
    fn drop(&mut self) {
        self.publish();
        release_ring(&mut self.ring);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("spsc::Producer")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail)
            .finish()
    }
}

/// The popping end of an [`spsc::Ring`](Ring).
pub struct Consumer<T> {
    /// Released by our `Drop` (see `release_ring`).
    ring: ManuallyDrop<Arc<Ring<T>>>,
    /// Our position: equal to `ring.head` except in the middle of a pop.
    head: usize,
    /// Last seen `ring.tail`; never ahead of the real one.
    cached_tail: usize,
    mask: usize,
}

// SAFETY: the consumer only moves `T`s out of the ring (which another thread
// put in), so it may move to another thread when `T: Send`. It is not `Sync`
// (see `Producer`), which keeps the single-consumer invariant.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Consumer<T> {
    /// Items available as far as the cached tail knows, refreshing it when
    /// that is fewer than `want`; returns at most `want`.
    #[inline(always)]
    fn available(&mut self, want: usize) -> usize {
        let mut ready = self.cached_tail.wrapping_sub(self.head);
        if ready < want {
            self.cached_tail = self.ring.tail.load(Ordering::Acquire);
            ready = self.cached_tail.wrapping_sub(self.head);
        }
        ready.min(want)
    }

    /// Releases every slot before `self.head` to the producer.
    #[inline(always)]
    fn release(&self) {
        self.ring.head.store(self.head, Ordering::Release);
    }

    /// Pops the oldest item, or `None` when the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.available(1) == 0 {
            return None;
        }
        // SAFETY: the Acquire load of `tail` that made `head` available ordered
        // the producer's write before this read; the producer does not touch
        // the slot again until we release it below.
        let value = unsafe { self.ring.take(self.head) };
        self.head = self.head.wrapping_add(1);
        self.release();
        Some(value)
    }

    /// Moves up to `max` items into `out` (appending, oldest first) and
    /// returns how many were moved.
    pub fn pop_into(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let n = self.available(max);
        if n == 0 {
            return 0;
        }
        out.reserve(n);
        let start = self.head & self.mask;
        let first = n.min(self.mask + 1 - start);
        let ring = &*self.ring;
        // Two contiguous runs of buffer indices, as in `push_slice`.
        for slot in ring.slots[start..start + first].iter().chain(&ring.slots[..n - first]) {
            // SAFETY: these `n` slots are available (see `pop`); each is read
            // exactly once before `head` moves past them and they are released.
            out.push(slot.with(|p| unsafe { p.cast::<T>().read() }));
        }
        self.head = self.head.wrapping_add(n);
        self.release();
        n
    }

    /// Borrows up to `max` of the oldest items in place, as at most two
    /// contiguous slices. Nothing is consumed until [`ReadChunk::commit`] or
    /// [`ReadChunk::commit_all`]; dropping the chunk leaves the items queued.
    #[inline]
    pub fn read_chunk(&mut self, max: usize) -> ReadChunk<'_, T> {
        let len = self.available(max);
        ReadChunk { consumer: self, len }
    }

    /// The oldest item, without removing it.
    pub fn peek(&self) -> Option<&T> {
        if self.head == self.cached_tail && self.ring.tail.load(Ordering::Acquire) == self.head {
            return None;
        }
        // SAFETY: the item at `head` is initialised (see `pop`) and stays put
        // until `&mut self` pops it, which the returned borrow prevents.
        Some(self.ring.slot(self.head).with(|p| unsafe { &*p.cast::<T>() }))
    }

    /// The number of queued items right now (the producer may be adding).
    #[inline]
    pub fn len(&self) -> usize {
        self.ring.tail.load(Ordering::Acquire).wrapping_sub(self.head)
    }

    /// Whether no item is queued right now.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of items the ring holds when full (a power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Whether the [`Producer`] has been dropped: what is queued now is all
    /// that will ever arrive.
    #[inline]
    pub fn is_abandoned(&self) -> bool {
        self.ring.abandoned.load(Ordering::Acquire)
    }
}

impl<T> Drop for Consumer<T> {
    #[inline]
    fn drop(&mut self) {
        self.release();
        release_ring(&mut self.ring);
    }
}

/// Marks the ring abandoned and drops a handle's reference to it.
///
/// The `Arc` is moved out to a local before it is dropped: `Arc`'s slow path
/// takes `&mut Arc`, and handing it the address of a handle's field would
/// keep the compiler from holding the handle's positions in registers.
#[inline(always)]
fn release_ring<T>(ring: &mut ManuallyDrop<Arc<Ring<T>>>) {
    ring.abandon();
    // SAFETY: called once, from the handle's `Drop`; the handle is never used
    // again, so the moved-out `Arc` is not touched through `ring` afterwards.
    let ring = unsafe { ManuallyDrop::take(ring) };
    drop(ring);
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("spsc::Consumer")
            .field("capacity", &self.capacity())
            .field("head", &self.head)
            .finish()
    }
}

/// Up to `max` of the oldest items of a ring, borrowed in place from
/// [`Consumer::read_chunk`].
pub struct ReadChunk<'a, T> {
    consumer: &'a mut Consumer<T>,
    len: usize,
}

impl<T> ReadChunk<'_, T> {
    /// The number of items in the chunk.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk holds no item.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items, oldest first, as two slices (the second is non-empty only
    /// when the chunk wraps around the end of the buffer).
    ///
    /// Not available in loom builds, where slots are not laid out as `T`s.
    #[cfg(not(resilience_loom))]
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let c = &*self.consumer;
        let start = c.head & c.mask;
        let first = self.len.min(c.mask + 1 - start);
        let base = c.ring.slots.as_ptr().cast::<T>();
        // SAFETY: slots are `repr(transparent)` wrappers of `MaybeUninit<T>`, so
        // the buffer is laid out as `[T; capacity]`; `start..start + first` and
        // `0..len - first` are in bounds and hold initialised items (see
        // `Consumer::pop`) that stay put while `self` borrows the consumer.
        unsafe {
            (
                std::slice::from_raw_parts(base.add(start), first),
                std::slice::from_raw_parts(base, self.len - first),
            )
        }
    }

    /// Consumes (drops) the first `n` items of the chunk (all of them when
    /// `n > len`) and releases their slots to the producer.
    pub fn commit(self, n: usize) {
        let n = n.min(self.len);
        let c = self.consumer;
        if std::mem::needs_drop::<T>() {
            for _ in 0..n {
                // SAFETY: the item at `head` is in the chunk, hence initialised
                // and ours; `head` moves past it before its drop runs, so a
                // panicking drop cannot lead to a second drop.
                let item = unsafe { c.ring.take(c.head) };
                c.head = c.head.wrapping_add(1);
                drop(item);
            }
        } else {
            c.head = c.head.wrapping_add(n);
        }
        c.release();
    }

    /// Consumes every item in the chunk.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n);
    }
}

impl<T> fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("spsc::ReadChunk").field("len", &self.len).finish()
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn fifo_and_full_hands_the_item_back() {
        let (mut tx, mut rx) = Ring::new(2);
        assert_eq!(tx.push(1), Ok(()));
        assert_eq!(tx.push(2), Ok(()));
        assert!(tx.is_full());
        assert_eq!(tx.push(3), Err(3));
        assert_eq!(rx.peek(), Some(&1));
        assert_eq!(rx.pop(), Some(1));
        assert_eq!(tx.push(3), Ok(()));
        assert_eq!(rx.pop(), Some(2));
        assert_eq!(rx.pop(), Some(3));
        assert_eq!(rx.pop(), None);
        assert_eq!(rx.peek(), None);
    }

    #[test]
    fn capacity_rounds_up_and_absurd_capacity_is_an_error() {
        assert_eq!(Ring::<u8>::new(0).0.capacity(), 1);
        assert_eq!(Ring::<u8>::new(5).1.capacity(), 8);
        assert!(Ring::<u8>::try_new(usize::MAX).is_err());
        assert!(matches!(Ring::<[u8; 64]>::try_new(1 << 58), Err(CapacityError::OutOfMemory { .. })));
        // Zero-sized items need no buffer at all, however many there are.
        let (mut tx, mut rx) = Ring::<()>::try_new(1 << 40).unwrap();
        assert_eq!(tx.push(()), Ok(()));
        assert_eq!(rx.pop(), Some(()));
    }

    #[test]
    fn capacity_one_alternates() {
        let (mut tx, mut rx) = Ring::new(1);
        for i in 0..10 {
            assert_eq!(tx.push(i), Ok(()));
            assert_eq!(tx.push(i), Err(i));
            assert_eq!(rx.pop(), Some(i));
            assert_eq!(rx.pop(), None);
        }
    }

    #[test]
    fn read_chunk_wraps_into_two_slices() {
        let (mut tx, mut rx) = Ring::new(4);
        assert_eq!(tx.push_slice(&[1, 2, 3]), 3);
        assert_eq!(rx.pop(), Some(1));
        assert_eq!(rx.pop(), Some(2));
        assert_eq!(tx.push_slice(&[4, 5, 6, 7]), 3);
        let chunk = rx.read_chunk(10);
        assert_eq!(chunk.len(), 4);
        assert_eq!(chunk.as_slices(), (&[3, 4][..], &[5, 6][..]));
        chunk.commit(1);
        // A chunk that is not committed consumes nothing.
        assert_eq!(rx.read_chunk(2).as_slices(), (&[4][..], &[5][..]));
        let mut out = vec![];
        assert_eq!(rx.pop_into(&mut out, 100), 3);
        assert_eq!(out, [4, 5, 6]);
        assert!(rx.read_chunk(5).is_empty());
    }

    #[test]
    fn push_iter_does_not_lose_items() {
        let (mut tx, mut rx) = Ring::new(4);
        let mut it = 0..10;
        assert_eq!(tx.push_iter(&mut it), 4);
        assert_eq!(it.next(), Some(4));
        assert_eq!(rx.pop(), Some(0));
        assert_eq!(tx.push_iter(std::iter::empty()), 0);
        assert!(!tx.push_all(&[7, 8]));
        assert!(tx.push_all(&[7]));
        assert!(tx.push_all(&[]));
        assert_eq!(rx.pop(), Some(1));
        assert!(tx.push_all(&[8]));
        assert_eq!(tx.len(), 4);
        assert_eq!(tx.slots(), 0);
        assert_eq!(rx.len(), 4);
    }

    #[test]
    fn abandoned_when_the_other_end_drops() {
        let (tx, rx) = Ring::<u8>::new(2);
        assert!(!tx.is_abandoned() && !rx.is_abandoned());
        drop(rx);
        assert!(tx.is_abandoned());
        let (tx, rx) = Ring::<u8>::new(2);
        drop(tx);
        assert!(rx.is_abandoned());
    }

    struct Counted(Rc<Cell<usize>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn every_item_is_dropped_exactly_once() {
        let drops = Rc::new(Cell::new(0));
        let (mut tx, mut rx) = Ring::new(8);
        for _ in 0..7 {
            assert!(tx.push(Counted(drops.clone())).is_ok());
        }
        drop(rx.pop()); // 1
        rx.read_chunk(2).commit_all(); // 3
        rx.read_chunk(2).commit(1); // 4
        assert_eq!(rx.read_chunk(2).len(), 2); // not committed: still 4
        assert_eq!(drops.get(), 4);
        let mut out = Vec::new();
        rx.pop_into(&mut out, 1);
        assert_eq!(drops.get(), 4);
        drop(out); // 5
        drop(tx);
        assert_eq!(drops.get(), 5);
        drop(rx); // the last two queued
        assert_eq!(drops.get(), 7);
    }

    #[test]
    fn handles_are_send() {
        fn send<T: Send>() {}
        send::<Producer<String>>();
        send::<Consumer<String>>();
    }
}
