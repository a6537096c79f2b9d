//! Scan-resistant eviction: S3-FIFO.
//!
//! S3-FIFO (Yang et al., SOSP 2023) keeps three FIFO queues:
//!
//! - **small** (1% of the capacity, at least one entry): every new key
//!   enters here. Most keys are seen once ("one-hit wonders"); they leave
//!   from here quickly without disturbing the hot set, which is what makes
//!   the cache scan-resistant.
//! - **main** (the other 99%): a key reaches it by being read while in
//!   small, or by coming back soon after it was evicted (a ghost hit). Main
//!   is a CLOCK: its tail is evicted only if it was not read since it last
//!   passed the tail; otherwise it is reinserted at the head with one less
//!   credit.
//! - **ghost**: fingerprints of keys recently evicted from small, no values,
//!   as many as half the main queue's share of the entries.
//!
//! The paper's small queue is 10% and its ghost as large as main; on the
//! Zipf and scan-mixed traces of `cache-missratio` a 1% small queue and a
//! half-size ghost were better at every capacity (the ghost then admits to
//! main only keys that come back soon, which is a sharper frequency filter;
//! the measurements are in the README), so those are the constants.
//!
//! Each entry carries a 2-bit frequency, bumped (up to [`MAX_FREQ`]) on a
//! hit. Decisions, exactly (the property tests compare the table with a
//! reference model of these rules):
//!
//! - insert of a new key: if its fingerprint is in the ghost, remove it from
//!   the ghost and push the key at the head of main; else at the head of
//!   small. Its frequency starts at 0.
//! - to make room: if small holds its share (count >= 1% of the entry
//!   limit, or weight >= 1% of the weight limit) or main is empty,
//!   take small's tail: expired -> dropped; frequency >= [`PROMOTE_FREQ`] ->
//!   moved to main's head with frequency 0; else evicted and its fingerprint
//!   recorded in the ghost (allocated at the first eviction). Otherwise take main's tail: expired -> dropped;
//!   frequency > 0 -> decremented and moved to main's head; else evicted.
//!   Repeat until the new entry fits.
//!
//! The queues are intrusive doubly linked lists threaded through the table's
//! slots (two `u32` links per entry, with the queue id and frequency packed in
//! their top bits), so removal by key is O(1) and no queue has a separate
//! allocation.
//!
//! The ghost is a direct-mapped array of 32-bit fingerprints, half as many
//! as the main queue's share of the entry limit (2 bytes per entry): a newer
//! eviction overwrites whatever shared its bucket, so it remembers recent
//! evictions with a probability that decays with age, at a fixed memory cost.
//! `fingerprint = (hash >> 32) | 1`, `bucket = fingerprint * len >> 32`.

use crate::clock::Nanos;
use std::sync::atomic::{AtomicU32 as StdAtomicU32, Ordering::Relaxed};

/// Largest frequency an entry counts to.
pub const MAX_FREQ: u8 = 3;
/// Frequency at which an entry leaving small moves to main instead of out.
pub const PROMOTE_FREQ: u8 = 1;
/// Small queue's share of the capacity, in percent.
pub const SMALL_PERCENT: u64 = 1;
/// Ghost buckets per main-queue entry (its share of the limit): 1/2.
pub const GHOST_DIVISOR: usize = 2;

/// "No neighbour" in a link.
pub(crate) const NIL: u32 = (1 << 30) - 1;
const INDEX: u32 = (1 << 30) - 1;

impl Clone for Meta {
    fn clone(&self) -> Self {
        Self { prev: self.prev, next: StdAtomicU32::new(self.next.load(Relaxed)), expires: self.expires }
    }
}

/// Which queue an entry is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// Not on a queue (only transiently, while being moved).
    None = 0,
    /// The small probationary FIFO.
    Small = 1,
    /// The main CLOCK queue.
    Main = 2,
}

/// Per-entry policy and expiry metadata: 16 bytes.
#[derive(Debug)]
pub(crate) struct Meta {
    /// Newer neighbour (towards the head); queue id in the top 2 bits.
    prev: u32,
    /// Older neighbour (towards the tail); frequency in the top 2 bits.
    /// Atomic (a `std` one: it is not part of any loom model) so that
    /// lock-free readers can bump the frequency of an entry they share;
    /// with `&mut` it is a plain integer.
    next: StdAtomicU32,
    /// Deadline, or [`super::ttl::NEVER`].
    pub(crate) expires: Nanos,
}

impl Meta {
    #[inline(always)]
    pub(crate) const fn new(expires: Nanos) -> Self {
        Self { prev: NIL, next: StdAtomicU32::new(NIL), expires }
    }

    /// The newer neighbour (towards the head), or [`NIL`].
    #[inline(always)]
    pub(crate) fn prev(&self) -> u32 {
        self.prev & INDEX
    }

    /// The older neighbour (towards the tail), or [`NIL`].
    #[inline(always)]
    pub(crate) fn next(&self) -> u32 {
        self.next.load(Relaxed) & INDEX
    }

    #[inline(always)]
    fn set_prev(&mut self, i: u32) {
        self.prev = (self.prev & !INDEX) | i;
    }

    #[inline(always)]
    fn set_next(&mut self, i: u32) {
        let n = self.next.get_mut();
        *n = (*n & !INDEX) | i;
    }

    /// The queue this entry is on.
    #[inline(always)]
    pub(crate) fn queue(&self) -> Queue {
        match self.prev >> 30 {
            1 => Queue::Small,
            2 => Queue::Main,
            _ => Queue::None,
        }
    }

    #[inline(always)]
    fn set_queue(&mut self, q: Queue) {
        self.prev = (self.prev & INDEX) | ((q as u32) << 30);
    }

    /// The entry's access frequency (0..=3).
    #[inline(always)]
    pub(crate) fn freq(&self) -> u8 {
        (self.next.load(Relaxed) >> 30) as u8
    }

    #[inline(always)]
    pub(crate) fn set_freq(&mut self, f: u8) {
        debug_assert!(f <= MAX_FREQ);
        let n = self.next.get_mut();
        *n = (*n & INDEX) | ((f as u32) << 30);
    }

    /// Records a hit: one more frequency credit, saturating (and not writing
    /// the cache line once saturated).
    #[inline(always)]
    pub(crate) fn touch(&mut self) {
        let n = self.next.get_mut();
        if *n < (MAX_FREQ as u32) << 30 {
            *n += 1 << 30;
        }
    }

    /// [`touch`](Self::touch) by one of several lock-free readers sharing
    /// the entry (writers are excluded meanwhile): two racing readers may
    /// count one hit between them, which a frequency estimate tolerates.
    #[inline(always)]
    pub(crate) fn touch_shared(&self) {
        let n = self.next.load(Relaxed);
        if n < (MAX_FREQ as u32) << 30 {
            self.next.store(n + (1 << 30), Relaxed);
        }
    }
}

/// Access to the metadata of linked slots.
pub(crate) trait MetaStore {
    /// Metadata of slot `i`, which holds an entry.
    fn meta(&self, i: u32) -> &Meta;
    /// Mutable metadata of slot `i`, which holds an entry.
    fn meta_mut(&mut self, i: u32) -> &mut Meta;
}

/// An intrusive FIFO: push at the head, take from the tail.
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) len: usize,
}

impl List {
    pub(crate) const fn new() -> Self {
        Self { head: NIL, tail: NIL, len: 0 }
    }

    /// Links slot `i` (not on any queue) at the head as queue `q`.
    #[inline]
    pub(crate) fn push_head<M: MetaStore + ?Sized>(&mut self, store: &mut M, i: u32, q: Queue) {
        debug_assert!(i < NIL);
        let old = self.head;
        {
            let m = store.meta_mut(i);
            debug_assert_eq!(m.queue(), Queue::None);
            m.set_prev(NIL);
            m.set_next(old);
            m.set_queue(q);
        }
        if old == NIL {
            self.tail = i;
        } else {
            store.meta_mut(old).set_prev(i);
        }
        self.head = i;
        self.len += 1;
    }

    /// Unlinks slot `i`, which is on this list.
    #[inline]
    pub(crate) fn unlink<M: MetaStore + ?Sized>(&mut self, store: &mut M, i: u32) {
        let (p, n) = {
            let m = store.meta(i);
            (m.prev(), m.next())
        };
        if p == NIL {
            debug_assert_eq!(self.head, i);
            self.head = n;
        } else {
            store.meta_mut(p).set_next(n);
        }
        if n == NIL {
            debug_assert_eq!(self.tail, i);
            self.tail = p;
        } else {
            store.meta_mut(n).set_prev(p);
        }
        let m = store.meta_mut(i);
        m.set_prev(NIL);
        m.set_next(NIL);
        m.set_queue(Queue::None);
        self.len -= 1;
    }

    /// The slot after `i` towards the tail (older), for walking a list.
    #[cfg(test)]
    pub(crate) fn older<M: MetaStore + ?Sized>(store: &M, i: u32) -> u32 {
        store.meta(i).next()
    }

    /// The slot before `i` towards the head (newer).
    #[cfg(test)]
    pub(crate) fn newer<M: MetaStore + ?Sized>(store: &M, i: u32) -> u32 {
        store.meta(i).prev()
    }
}

/// Fingerprint of a hash in the ghost (never 0, which marks a free bucket).
#[inline(always)]
pub const fn ghost_fingerprint(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
}

/// Bucket of a fingerprint in a ghost of `len` buckets.
#[inline(always)]
pub const fn ghost_bucket(fp: u32, len: usize) -> usize {
    ((fp as u64 * len as u64) >> 32) as usize
}

/// Recently evicted keys, as fingerprints in a direct-mapped array.
#[derive(Debug, Default)]
pub(crate) struct Ghost {
    fps: Box<[u32]>,
}

impl Ghost {
    pub(crate) fn new() -> Self {
        Self { fps: Box::new([]) }
    }

    /// Number of buckets (0 until the first eviction).
    pub(crate) fn len(&self) -> usize {
        self.fps.len()
    }

    /// Resizes to `len` buckets, keeping what fits.
    pub(crate) fn resize(&mut self, len: usize) {
        if len == self.fps.len() {
            return;
        }
        let mut fps = vec![0u32; len].into_boxed_slice();
        if len > 0 {
            for &fp in self.fps.iter().filter(|&&fp| fp != 0) {
                fps[ghost_bucket(fp, len)] = fp;
            }
        }
        self.fps = fps;
    }

    /// Records an eviction.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64) {
        let len = self.fps.len();
        if len > 0 {
            let fp = ghost_fingerprint(hash);
            self.fps[ghost_bucket(fp, len)] = fp;
        }
    }

    /// True (and forgets it) if `hash` was recently evicted.
    #[inline]
    pub(crate) fn take(&mut self, hash: u64) -> bool {
        let len = self.fps.len();
        if len == 0 {
            return false;
        }
        let fp = ghost_fingerprint(hash);
        let b = &mut self.fps[ghost_bucket(fp, len)];
        if *b == fp {
            *b = 0;
            true
        } else {
            false
        }
    }

    /// Forgets everything.
    #[cfg(test)]
    pub(crate) fn clear(&mut self) {
        self.fps.iter_mut().for_each(|f| *f = 0);
    }

    /// Heap bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.fps.len() * 4
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    struct Vecs(Vec<Meta>);
    impl MetaStore for Vecs {
        fn meta(&self, i: u32) -> &Meta {
            &self.0[i as usize]
        }
        fn meta_mut(&mut self, i: u32) -> &mut Meta {
            &mut self.0[i as usize]
        }
    }

    fn order(l: &List, s: &Vecs) -> Vec<u32> {
        let mut out = vec![];
        let mut i = l.head;
        while i != NIL {
            out.push(i);
            i = List::older(s, i);
        }
        let mut back = vec![];
        let mut i = l.tail;
        while i != NIL {
            back.push(i);
            i = List::newer(s, i);
        }
        back.reverse();
        assert_eq!(out, back, "forward and backward walks agree");
        assert_eq!(out.len(), l.len);
        out
    }

    #[test]
    fn list_push_unlink_keeps_order_and_flags() {
        let mut s = Vecs(vec![Meta::new(0); 5]);
        let mut l = List::new();
        for i in 0..5 {
            s.0[i as usize].set_freq((i % 4) as u8);
            l.push_head(&mut s, i, Queue::Main);
        }
        assert_eq!(order(&l, &s), vec![4, 3, 2, 1, 0]);
        l.unlink(&mut s, 2);
        l.unlink(&mut s, 0);
        l.unlink(&mut s, 4);
        assert_eq!(order(&l, &s), vec![3, 1]);
        assert_eq!(s.0[2].queue(), Queue::None);
        assert_eq!(s.0[3].queue(), Queue::Main);
        assert_eq!(s.0[3].freq(), 3, "links do not disturb the frequency");
        l.push_head(&mut s, 0, Queue::Small);
        assert_eq!(order(&l, &s), vec![0, 3, 1]);
        assert_eq!(s.0[0].queue(), Queue::Small);
    }

    #[test]
    fn touch_saturates() {
        let mut m = Meta::new(0);
        m.set_next(17);
        for f in [1, 2, 3, 3, 3] {
            m.touch();
            assert_eq!(m.freq(), f);
            assert_eq!(m.next(), 17);
        }
    }

    #[test]
    fn ghost_remembers_and_forgets() {
        let mut g = Ghost::new();
        assert!(!g.take(5), "an unallocated ghost knows nothing");
        g.insert(5);
        g.resize(64);
        let h = 0xDEAD_BEEF_0000_0000u64;
        g.insert(h);
        assert!(g.take(h));
        assert!(!g.take(h), "a ghost hit is consumed");
        g.insert(h);
        g.resize(128);
        assert!(g.take(h), "resizing keeps fingerprints");
        g.insert(h);
        g.clear();
        assert!(!g.take(h));
        assert_eq!(g.bytes(), 512);
    }
}
