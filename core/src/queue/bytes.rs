//! A bounded lock-free MPMC queue of byte messages, each `0..=max_len` bytes
//! long, copied in and out (no allocation per message).
//!
//! It is the [`mpmc`](super::mpmc) ring's protocol (Vyukov's per-slot
//! sequence numbers, counted in half-steps) over slots that hold a length and
//! a fixed `max_len`-byte buffer, so hosts behind the C ABI can queue
//! variable-length messages without handing ownership of memory across it.
//!
//! Design choices:
//! - Each slot's buffer is allocated once, at construction (one allocation
//!   per slot rather than one strided block: it keeps every byte behind the
//!   `crate::sync::UnsafeCell` that loom tracks, with no pointer arithmetic
//!   across slots). Nothing is allocated after construction, except by
//!   [`BytesQueue::pop`], which returns a fresh `Vec`.
//! - The message length is an atomic written before the slot's Release
//!   store, so a consumer can read the length of the oldest message *before*
//!   claiming it: [`BytesQueue::pop_into`] with a buffer too small for that
//!   message returns [`PopError::BufferTooSmall`] and consumes nothing.
//!
//! ```
//! use resilience::queue::bytes::{BytesQueue, PopError, PushError};
//!
//! let q = BytesQueue::try_new(2, 8).unwrap();
//! q.push(b"hello").unwrap();
//! assert_eq!(q.push(b"far too long"), Err(PushError::TooLarge));
//! let mut small = [0u8; 2];
//! assert_eq!(q.pop_into(&mut small), Err(PopError::BufferTooSmall { needed: 5 }));
//! assert_eq!(q.pop().as_deref(), Some(&b"hello"[..]));
//! assert_eq!(q.pop(), None);
//! ```

use std::fmt;

use super::CapacityError;
use crate::sync::{AtomicUsize, CachePadded, Ordering, UnsafeCell};

/// Why a push failed; the message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Every slot is taken.
    Full,
    /// The message is longer than the queue's `max_len`.
    TooLarge,
}

/// Why a pop returned nothing; nothing was consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopError {
    /// No message is queued.
    Empty,
    /// The oldest message is `needed` bytes long, more than the buffer.
    BufferTooSmall {
        /// The length of the oldest message.
        needed: usize,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PushError::Full => "bytes queue is full",
            PushError::TooLarge => "message exceeds the queue's max_len",
        })
    }
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PopError::Empty => f.write_str("bytes queue is empty"),
            PopError::BufferTooSmall { needed } => write!(f, "buffer too small: message is {needed} bytes"),
        }
    }
}

impl std::error::Error for PushError {}
impl std::error::Error for PopError {}

/// One slot: its turn number, the length of its message and its buffer.
struct Slot {
    seq: AtomicUsize,
    /// Written by the producer before the Release store of `seq`; read by
    /// consumers after an Acquire load of `seq`.
    len: AtomicUsize,
    data: UnsafeCell<Box<[u8]>>,
}

/// A bounded multi-producer multi-consumer queue of byte messages. Share it
/// by reference or in an `Arc`; every method takes `&self`.
pub struct BytesQueue {
    /// Next position to pop; advanced by consumers.
    head: CachePadded<AtomicUsize>,
    /// Next position to push; advanced by producers.
    tail: CachePadded<AtomicUsize>,
    /// `capacity - 1`; the capacity is a power of two.
    mask: usize,
    max_len: usize,
    slots: Box<[CachePadded<Slot>]>,
}

// SAFETY: a slot's bytes are only touched by the one producer or the one
// consumer the sequence-number protocol admits; the rest are atomics.
unsafe impl Send for BytesQueue {}
// SAFETY: as above; every method takes `&self` and no reference into a slot
// ever leaves a method.
unsafe impl Sync for BytesQueue {}

impl BytesQueue {
    /// Builds a queue of `capacity` messages (rounded up to a power of two,
    /// at least 1) of at most `max_len` bytes each.
    pub fn try_new(capacity: usize, max_len: usize) -> Result<Self, CapacityError> {
        let cap = super::round_capacity(capacity)?;
        if cap.checked_mul(max_len.max(1)).is_none_or(|b| b > isize::MAX as usize / 2) {
            return Err(CapacityError::OutOfMemory { requested: capacity });
        }
        let mut slots: Vec<CachePadded<Slot>> = super::reserve(cap, capacity)?;
        for i in 0..cap {
            let mut data = Vec::new();
            data.try_reserve_exact(max_len)
                .map_err(|_| CapacityError::OutOfMemory { requested: capacity })?;
            data.resize(max_len, 0u8);
            slots.push(CachePadded(Slot {
                seq: AtomicUsize::new(i << 1),
                len: AtomicUsize::new(0),
                data: UnsafeCell::new(data.into_boxed_slice()),
            }));
        }
        Ok(BytesQueue {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            mask: cap - 1,
            max_len,
            slots: slots.into_boxed_slice(),
        })
    }

    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot {
        let index = pos & self.mask;
        debug_assert!(index < self.slots.len());
        // SAFETY: `index <= mask == slots.len() - 1`.
        unsafe { self.slots.get_unchecked(index) }
    }

    /// Copies `msg` into the queue.
    pub fn push(&self, msg: &[u8]) -> Result<(), PushError> {
        if msg.len() > self.max_len {
            return Err(PushError::TooLarge);
        }
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
                        // consumer reads the bytes before the Release store below.
                        slot.data.with_mut(|p| unsafe { (&mut (*p))[..msg.len()].copy_from_slice(msg) });
                        slot.len.store(msg.len(), Ordering::Relaxed);
                        slot.seq.store((pos << 1) | 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                // The slot still holds the message of `pos - capacity`: full.
                return Err(PushError::Full);
            } else {
                // Another producer took `pos`; catch up.
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the oldest message into `buf` and returns its length. When the
    /// oldest message does not fit, returns [`PopError::BufferTooSmall`]
    /// with its length and consumes nothing (a buffer of `max_len` bytes
    /// always fits).
    pub fn pop_into(&self, buf: &mut [u8]) -> Result<usize, PopError> {
        self.claim(buf)
    }

    /// Pops the oldest message into a new `Vec`, or `None` when empty.
    pub fn pop(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        // `out` grows to fit any message, so only `Empty` can come back.
        self.pop_grow(&mut out).ok().map(|_| out)
    }

    fn pop_grow(&self, out: &mut Vec<u8>) -> Result<usize, PopError> {
        loop {
            match self.pop_into(out.as_mut_slice()) {
                Ok(n) => {
                    out.truncate(n);
                    return Ok(n);
                }
                Err(PopError::BufferTooSmall { needed }) => out.resize(needed, 0),
                Err(e) => return Err(e),
            }
        }
    }

    /// The claiming loop of the pops.
    fn claim(&self, buf: &mut [u8]) -> Result<usize, PopError> {
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub((pos << 1) | 1) as isize;
            if diff == 0 {
                // Ordered after the producer's store by the Acquire above. If
                // another consumer takes `pos` meanwhile, our CAS below fails
                // and this length is discarded (or was only a hint).
                let len = slot.len.load(Ordering::Relaxed);
                if len > buf.len() {
                    return Err(PopError::BufferTooSmall { needed: len });
                }
                let out = &mut buf[..len];
                match self.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        debug_assert!(len <= self.max_len && out.len() == len);
                        // SAFETY: number `2 * pos + 1` (Acquire) = the message of `pos`
                        // is written; our CAS made us its only consumer; no producer
                        // writes the slot before the Release store below frees it.
                        slot.data.with(|p| out.copy_from_slice(unsafe { &(&(*p))[..len] }));
                        slot.seq.store(pos.wrapping_add(self.mask + 1) << 1, Ordering::Release);
                        return Ok(len);
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                // The message of `pos` has not been written: empty.
                return Err(PopError::Empty);
            } else {
                // Another consumer took `pos`; catch up.
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Pushes messages from `msgs` in order until one fails; returns how
    /// many were pushed and the error that stopped it, if any.
    pub fn push_many<'m>(&self, msgs: impl IntoIterator<Item = &'m [u8]>) -> (usize, Option<PushError>) {
        let mut n = 0;
        for m in msgs {
            if let Err(e) = self.push(m) {
                return (n, Some(e));
            }
            n += 1;
        }
        (n, None)
    }

    /// Pops up to `max` messages, appending them to `out`; returns how many.
    pub fn pop_many(&self, max: usize, out: &mut Vec<Vec<u8>>) -> usize {
        let mut n = 0;
        while n < max {
            match self.pop() {
                Some(m) => out.push(m),
                None => break,
            }
            n += 1;
        }
        n
    }

    /// The number of queued messages (pushes and pops in progress included).
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                return tail.wrapping_sub(head).min(self.capacity());
            }
        }
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of messages the queue holds when full (a power of two).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The longest message accepted, in bytes.
    #[inline]
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl fmt::Debug for BytesQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BytesQueue")
            .field("capacity", &self.capacity())
            .field("max_len", &self.max_len)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_empty_and_sizes() {
        let q = BytesQueue::try_new(3, 4).unwrap();
        assert_eq!(q.capacity(), 4);
        assert_eq!(q.max_len(), 4);
        for i in 0..4u8 {
            assert_eq!(q.push(&vec![i; i as usize]), Ok(()));
        }
        assert_eq!(q.push(b""), Err(PushError::Full));
        assert_eq!(q.push(b"12345"), Err(PushError::TooLarge));
        assert_eq!(q.len(), 4);
        for i in 0..4u8 {
            assert_eq!(q.pop(), Some(vec![i; i as usize]));
        }
        assert_eq!(q.pop(), None);
        let mut buf = [0u8; 4];
        assert_eq!(q.pop_into(&mut buf), Err(PopError::Empty));
    }

    #[test]
    fn small_buffer_consumes_nothing() {
        let q = BytesQueue::try_new(1, 8).unwrap();
        q.push(b"abcdef").unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(q.pop_into(&mut buf), Err(PopError::BufferTooSmall { needed: 6 }));
        assert_eq!(q.len(), 1);
        let mut buf = [0u8; 6];
        assert_eq!(q.pop_into(&mut buf), Ok(6));
        assert_eq!(&buf, b"abcdef");
    }

    #[test]
    fn batches_and_zero_max_len() {
        let q = BytesQueue::try_new(2, 0).unwrap();
        assert_eq!(q.push_many([&b""[..], b"", b""]), (2, Some(PushError::Full)));
        let mut out = Vec::new();
        assert_eq!(q.pop_many(5, &mut out), 2);
        assert_eq!(out, vec![Vec::<u8>::new(), Vec::new()]);
    }

    #[test]
    fn absurd_sizes_are_errors() {
        assert!(BytesQueue::try_new(usize::MAX, 1).is_err());
        assert!(BytesQueue::try_new(1 << 40, 1 << 20).is_err());
    }

    #[test]
    fn is_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<BytesQueue>();
    }
}
