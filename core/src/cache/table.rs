//! The single-owner cache table: open addressing over groups of 16 tags, with
//! S3-FIFO eviction, per-entry TTL and count/weight limits built in.
//!
//! A [`Table`] has no lock: it is meant to be owned by one thread (an engine
//! shard), or to sit behind one lock per shard in the multi-threaded
//! [`Cache`](super::Cache), whose lock-free readers share it while writers
//! are kept out. The one atomic is each entry's link-and-frequency word,
//! so that those readers can bump a frequency; with `&mut` it is a plain
//! integer and relaxed loads are plain loads, so an owner pays nothing.
//!
//! # Layout
//!
//! Two arrays of the same length (a multiple of 16 buckets):
//!
//! - control bytes, 16 per 16-byte-aligned group: EMPTY or a 7-bit tag of
//!   the key's hash (never DELETED: see the overflow counts below);
//! - slots holding `key`, `value` and 16 bytes of `Meta` (two `u32` queue
//!   links with the queue id and the 2-bit frequency packed in their top
//!   bits, and the `u64` deadline) inline.
//!
//! A hit loads one control group (one cache line, usually already hot) and
//! compares keys only in the slots whose tag matches (1/128 false-positive
//! rate per occupied bucket), then reads the deadline, bumps the frequency and
//! reads the value in the same slot: for a `u64` key and a 16-byte value the
//! slot is 40 bytes, so one or two cache lines.
//!
//! The first group of a key is `fastrange(low 32 bits of hash, groups)`, so
//! the group count need not be a power of two and a bounded table is sized
//! to its limit: `ceil(1.25 * max_entries / 16)` groups rounded up to a
//! prime (80% load when full). Probing steps by a per-key stride from the
//! hash (double hashing; a prime group count makes every stride visit every
//! group). Each group keeps an overflow count, as F14 does: how many
//! entries were placed further along a probe sequence that passed it
//! because it was full. A lookup stops at the first group whose count is
//! zero, and an insert takes the first group with a free bucket, counting
//! itself in every full group it passed; removing an entry walks its probe
//! sequence again (rehashing the key when any entry is displaced) and
//! uncounts it. So a freed bucket is always EMPTY: there are no tombstones,
//! lookups and inserts stay short at full load under constant churn, and a
//! table rebuilds only to grow (by doubling up to its final size, at 87.5%
//! occupancy). A count that reaches 255 stays there until the table grows
//! or is cleared (lookups through that group then just probe on); with the
//! default seeded hasher that needs hundreds of keys whose probes collide
//! on one group (churning 2M keys through a full 100k-entry table left no
//! count above 20).
//!
//! # Memory per entry
//!
//! Beyond key and value: 1 control byte (+ 1/16 byte of overflow count) +
//! 16 bytes of `Meta` (+ padding of the slot to the key/value alignment),
//! divided by the 80% load of a full table, + 2 bytes of ghost (4 bytes per
//! two main-queue entries). For `u64` keys: 27.3 bytes with `u64` values
//! (slot 32 bytes), 29.3 bytes with 16-byte values (slot 40 bytes); tests
//! check it with `size_of` and by measuring a full table.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use super::eviction::{Ghost, List, Meta, MetaStore, Queue, GHOST_DIVISOR, NIL, PROMOTE_FREQ, SMALL_PERCENT};
use super::group::{self, CtrlGroup, Group, GroupOps, EMPTY, WIDTH};
use super::ttl::{TimeSource, NEVER};
use super::weigher::{CapacityError, Limits, Weigher, MAX_ENTRIES};
use crate::clock::Nanos;
use crate::hash::SeededState;

/// One bucket's entry: key, value and policy metadata, inline.
#[repr(C)]
pub(crate) struct Slot<K, V> {
    key: K,
    value: V,
    meta: Meta,
}

/// Size in bytes of one bucket's slot for `K` and `V` (key, value, 16 bytes
/// of metadata, padding).
pub const fn slot_size<K, V>() -> usize {
    std::mem::size_of::<Slot<K, V>>()
}

/// Memory a full bounded table spends per entry beyond `size_of::<K>() +
/// size_of::<V>()`, in bytes: control byte, 1/16 of an overflow count and
/// slot at 80% load, plus the ghost's 4 bytes per two main-queue entries
/// (99% of the entries).
pub fn overhead_per_entry<K, V>() -> f64 {
    (1.0 + 1.0 / WIDTH as f64 + slot_size::<K, V>() as f64) / 0.8
        - (std::mem::size_of::<K>() + std::mem::size_of::<V>()) as f64
        + 4.0 * 0.99 / GHOST_DIVISOR as f64
}

/// Counters of what a table (or a whole cache) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (or an expired entry).
    pub misses: u64,
    /// New entries stored.
    pub inserts: u64,
    /// Inserts that replaced the value of a present key.
    pub updates: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries removed because their deadline passed (on read, by eviction
    /// or by a sweep).
    pub expirations: u64,
    /// Inserts refused as heavier than the table's whole weight budget (a
    /// shard's budget, in a [`Cache`](super::Cache)). Inserts born expired
    /// are not stored either, but are not counted here.
    pub rejections: u64,
}

impl Stats {
    /// Adds `other` into `self` (to sum shards).
    pub fn merge(&mut self, other: &Stats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.evictions += other.evictions;
        self.expirations += other.expirations;
        self.rejections += other.rejections;
    }
}

/// What an insert did.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted<V> {
    /// A new entry was stored.
    New,
    /// The key was present; its old value is returned.
    Replaced(V),
    /// Not stored (heavier than the weight budget, or already expired); a
    /// present entry for the key was removed and its value is returned.
    Rejected(Option<V>),
}

/// Where an insert's evicted entries go.
pub(crate) trait Evictions<K, V> {
    /// Takes one evicted (or expired-on-eviction) entry.
    fn push(&mut self, key: K, value: V);
}

/// Drops evicted entries at once (the single owner's inserts).
pub(crate) struct DropNow;

impl<K, V> Evictions<K, V> for DropNow {
    #[inline(always)]
    fn push(&mut self, _key: K, _value: V) {}
}

/// Keeps evicted entries (the first without allocating) until it is
/// dropped: the concurrent cache drops them after releasing the shard's
/// lock, so that value destructors (a cross-thread `free`, user code) do
/// not lengthen the critical section.
pub(crate) struct Deferred<K, V> {
    first: Option<(K, V)>,
    rest: Vec<(K, V)>,
}

impl<K, V> Deferred<K, V> {
    pub(crate) const fn new() -> Self {
        Self { first: None, rest: Vec::new() }
    }
}

/// Keeps the one entry a lookup may remove (it expired), to drop later.
impl<K, V> Evictions<K, V> for Option<(K, V)> {
    #[inline]
    fn push(&mut self, key: K, value: V) {
        // One lookup removes one entry: nothing is overwritten (and so
        // dropped) while the caller holds its lock.
        debug_assert!(self.is_none());
        *self = Some((key, value));
    }
}

impl<K, V> Evictions<K, V> for Deferred<K, V> {
    #[inline]
    fn push(&mut self, key: K, value: V) {
        if self.first.is_none() {
            self.first = Some((key, value));
        } else {
            self.rest.push((key, value));
        }
    }
}

/// The entries a [`Table::clear_deferred`] took out; dropping it drops them.
pub(crate) struct Cleared<K, V> {
    /// The control bytes of `slots`, as the table left them.
    ctrl: Box<[CtrlGroup]>,
    slots: Slots<K, V>,
}

impl<K, V> Drop for Cleared<K, V> {
    fn drop(&mut self) {
        // SAFETY: `ctrl` describes `slots` (both were taken out of the table
        // together, and nothing changes them since), and nothing reads the
        // slots after this.
        unsafe { self.slots.drop_full(&self.ctrl) };
    }
}

/// The slot array. Slot `i` is initialised exactly when control byte `i` is
/// FULL; every initialised slot is on exactly one queue (small or main).
struct Slots<K, V>(Box<[MaybeUninit<Slot<K, V>>]>);

impl<K, V> Slots<K, V> {
    fn new(n: usize) -> Self {
        Self(std::iter::repeat_with(MaybeUninit::uninit).take(n).collect())
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len()
    }

    /// # Safety
    /// Slot `i` holds an entry (its control byte is FULL).
    #[inline(always)]
    unsafe fn get(&self, i: usize) -> &Slot<K, V> {
        debug_assert!(i < self.0.len());
        // SAFETY: the caller guarantees `i` is in bounds and initialised.
        unsafe { self.0.get_unchecked(i).assume_init_ref() }
    }

    /// # Safety
    /// Slot `i` holds an entry (its control byte is FULL).
    #[inline(always)]
    unsafe fn get_mut(&mut self, i: usize) -> &mut Slot<K, V> {
        debug_assert!(i < self.0.len());
        // SAFETY: the caller guarantees `i` is in bounds and initialised.
        unsafe { self.0.get_unchecked_mut(i).assume_init_mut() }
    }
}

impl<K, V> Slots<K, V> {
    /// Drops the entry of every bucket `ctrl` marks FULL (a panicking drop
    /// leaks the rest: `Slots` itself drops no contents).
    ///
    /// # Safety
    /// `ctrl` must be these slots' control bytes, and nothing may read the
    /// FULL slots afterwards (they are dropped).
    unsafe fn drop_full(&mut self, ctrl: &[CtrlGroup]) {
        if std::mem::needs_drop::<Slot<K, V>>() {
            for i in 0..self.len() {
                if group::is_full(ctrl[i / WIDTH].0[i % WIDTH]) {
                    // SAFETY: bucket `i` is FULL, so slot `i` holds an entry;
                    // each bucket is visited once, so it is dropped once.
                    unsafe { self.0[i].assume_init_drop() };
                }
            }
        }
    }
}

impl<K, V> MetaStore for Slots<K, V> {
    #[inline(always)]
    fn meta(&self, i: u32) -> &Meta {
        // SAFETY: the queues only ever link slots that hold an entry (an
        // entry is linked when written and unlinked before its slot is
        // freed), and `MetaStore` is only asked about linked slots.
        unsafe { &self.get(i as usize).meta }
    }

    #[inline(always)]
    fn meta_mut(&mut self, i: u32) -> &mut Meta {
        // SAFETY: as in `meta`.
        unsafe { &mut self.get_mut(i as usize).meta }
    }
}

/// Usable buckets of `groups` groups before a rebuild: 7/8.
#[inline(always)]
const fn usable(groups: usize) -> usize {
    groups * WIDTH / 8 * 7
}

/// Largest group count (a prime, like every count above 1).
const MAX_GROUPS: usize = 67_108_859; // the largest prime below 2^26

/// The smallest prime >= `n` (group counts are prime so that every probe
/// stride visits every group).
fn next_prime(n: usize) -> usize {
    let is_prime = |n: usize| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d));
    (n.max(2)..).find(|&p| is_prime(p)).unwrap_or(MAX_GROUPS)
}

/// Groups a table bounded to `max_entries` has when full (80% load).
fn final_groups(max_entries: usize) -> usize {
    let buckets = (max_entries as u64).saturating_mul(5).div_ceil(4);
    next_prime((buckets.div_ceil(WIDTH as u64) as usize).clamp(1, MAX_GROUPS)).min(MAX_GROUPS)
}

/// The groups a key visits: its home group, then steps of a stride drawn
/// from its hash (double hashing). Group counts are 1 or prime, so every
/// stride in `1..n` visits every group, and keys that share a home group
/// part ways after it (no primary clustering, which at 80% load with
/// tombstones made linear probing runs long).
struct Probe {
    g: usize,
    stride: usize,
    n: usize,
    hash: u64,
}

impl Probe {
    #[inline(always)]
    fn new(hash: u64, n: usize) -> Self {
        Self { g: Self::home(hash, n), stride: 0, n, hash }
    }

    /// The home group of `hash` among `n` groups: below `n` (when `n > 0`).
    #[inline(always)]
    fn home(hash: u64, n: usize) -> usize {
        ((hash as u32 as u64 * n as u64) >> 32) as usize
    }

    #[inline(always)]
    fn advance(&mut self) {
        if self.stride == 0 {
            // Computed only when the home group did not settle the lookup:
            // 1..=n-1 by fastrange (a multiply, not a division) over hash
            // bits 32..57, which neither the home group (bits 0..32) nor the
            // tag (bits 57..64) uses; the sharded cache's shard index takes
            // the lowest of them, which fastrange weighs least.
            let bits = (self.hash >> 32) & ((1 << 25) - 1);
            self.stride = 1 + ((bits * (self.n as u64 - 1)) >> 25) as usize;
        }
        self.g += self.stride;
        if self.g >= self.n {
            self.g -= self.n;
        }
    }
}

/// A bounded hash table with S3-FIFO eviction and TTL, for one owner.
///
/// `S` hashes keys ([`SeededState`], a per-table random seed, by default);
/// `G` is the control-group implementation ([`Group`], the SIMD one where
/// available; [`group::Generic`] forces the portable one).
///
/// Time-dependent operations take a [`TimeSource`]: pass a `Nanos` value, or
/// a [`LazyNow`](super::ttl::LazyNow) that reads a clock only when an entry
/// with a deadline is involved.
// Field order (`repr(C)`), for a cache shard's lock word sitting just before
// the table: the counters a hit writes share the lock's cache line; the
// arrays' pointers and the settings, which a hit only reads, come next and
// change only on a rebuild, so another core reading them is not disturbed
// by writes; what inserts and evictions write comes last.
#[repr(C)]
pub struct Table<K, V, S = SeededState, G = Group> {
    stats: Stats,
    /// The control groups: never empty (a new or cleared table has one),
    /// and always as long as `overflow`; lookups index both unchecked.
    ctrl: Box<[CtrlGroup]>,
    /// Per group: entries placed past it while it was full (saturating; 255
    /// stays until the table grows or is cleared). A lookup stops at a group
    /// whose count is 0.
    overflow: Box<[u8]>,
    slots: Slots<K, V>,
    hasher: S,
    max_groups: usize,
    count_limit: usize,
    weight_limit: u64,
    small_count_target: usize,
    small_weight_target: u64,
    bounded_count: bool,
    weigher: Option<Weigher<K, V>>,
    items: usize,
    /// Entries outside their home group (when 0, removing one needs no
    /// rehash).
    displaced: usize,
    /// Buckets that may still be filled before a rebuild.
    growth_left: usize,
    weight: u64,
    small_weight: u64,
    small: List,
    main: List,
    ghost: Ghost,
    ttl_items: usize,
    sweep_cursor: usize,
    /// No entry's deadline is before this (`u64::MAX` when none was set
    /// since the table last held no deadline): a lower bound, tightened
    /// each time a sweep completes a pass over the buckets.
    earliest: Nanos,
    /// The soonest deadline the current sweep pass has seen on an entry it
    /// kept, or that a write has set meantime on a bucket the pass had
    /// passed: `earliest` at the pass's end.
    pass_earliest: Nanos,
    _group: PhantomData<G>,
}

impl<K: Hash + Eq, V> Table<K, V> {
    /// A table holding at most `max_entries` entries, with a random seed.
    pub fn new(max_entries: usize) -> Result<Self, CapacityError> {
        Self::with_limits(Limits::entries(max_entries), None, SeededState::new())
    }
}

impl<K, V, S, G> Table<K, V, S, G>
where
    K: Hash + Eq,
    S: BuildHasher,
    G: GroupOps,
{
    /// A table with the given limits, weigher (`None`: every entry weighs 1)
    /// and hasher. Allocates one group now and grows as entries arrive.
    pub fn with_limits(
        limits: Limits,
        weigher: Option<Weigher<K, V>>,
        hasher: S,
    ) -> Result<Self, CapacityError> {
        limits.validate()?;
        let (max_groups, count_limit) = match limits.max_entries {
            Some(n) => (final_groups(n), n),
            None => (MAX_GROUPS, MAX_ENTRIES),
        };
        let weight_limit = limits.max_weight.unwrap_or(u64::MAX);
        Ok(Self {
            ctrl: vec![CtrlGroup::EMPTY; 1].into_boxed_slice(),
            overflow: vec![0u8; 1].into_boxed_slice(),
            slots: Slots::new(WIDTH),
            items: 0,
            displaced: 0,
            growth_left: usable(1),
            hasher,
            max_groups,
            count_limit,
            weight_limit,
            small_count_target: (count_limit as u64 * SMALL_PERCENT / 100).max(1) as usize,
            small_weight_target: (weight_limit / 100 * SMALL_PERCENT).max(1),
            bounded_count: limits.max_entries.is_some(),
            weigher,
            weight: 0,
            small_weight: 0,
            small: List::new(),
            main: List::new(),
            ghost: Ghost::new(),
            ttl_items: 0,
            sweep_cursor: 0,
            earliest: u64::MAX,
            pass_earliest: u64::MAX,
            stats: Stats::default(),
            _group: PhantomData,
        })
    }

    /// The hasher (the sharded cache routes with the same one).
    #[inline]
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// Hash of a key as this table computes it.
    #[inline]
    pub fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Number of entries (expired ones not yet removed included).
    #[inline]
    pub fn len(&self) -> usize {
        self.items
    }

    /// True when the table holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Entries with a deadline (expired ones not yet removed included).
    #[inline]
    pub fn expiring(&self) -> usize {
        self.ttl_items
    }

    /// False when no entry can have expired by `now` (a cheap, conservative
    /// bound: true may still find nothing to remove). What
    /// [`sweep_expired`](Self::sweep_expired) checks first.
    #[inline]
    pub fn may_hold_expired(&self, now: Nanos) -> bool {
        self.ttl_items > 0 && now >= self.earliest
    }

    /// Records a deadline just stored on the entry in bucket `i`.
    #[inline]
    fn note_deadline(&mut self, expires: Nanos, i: usize) {
        // With no other deadline held (`ttl_items` counts this one already)
        // the old bounds mean nothing.
        if self.ttl_items == 1 {
            self.earliest = expires;
            self.pass_earliest = u64::MAX;
        } else {
            self.earliest = self.earliest.min(expires);
        }
        // A bucket the current pass has yet to reach is examined then.
        if i < self.sweep_cursor {
            self.pass_earliest = self.pass_earliest.min(expires);
        }
    }

    /// Total weight of the entries.
    #[inline]
    pub fn weight(&self) -> u64 {
        self.weight
    }

    /// Most entries held at once.
    #[inline]
    pub fn max_entries(&self) -> usize {
        self.count_limit
    }

    /// Most total weight held at once (`u64::MAX` when unbounded by weight).
    #[inline]
    pub fn max_weight(&self) -> u64 {
        self.weight_limit
    }

    /// Counters since creation.
    #[inline]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Entries on the small and the main queue.
    pub fn queue_lengths(&self) -> (usize, usize) {
        (self.small.len, self.main.len)
    }

    /// Number of buckets allocated.
    pub fn buckets(&self) -> usize {
        self.slots.len()
    }

    /// Bytes allocated by the table: control bytes, slots, ghost and the
    /// table header (not what keys and values own on the heap).
    pub fn allocated_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.ctrl.len() * (std::mem::size_of::<CtrlGroup>() + 1)
            + self.slots.len() * std::mem::size_of::<Slot<K, V>>()
            + self.ghost.bytes()
    }

    #[inline(always)]
    fn weigh(weigher: Option<Weigher<K, V>>, key: &K, value: &V) -> u64 {
        match weigher {
            Some(f) => f(key, value).max(1),
            None => 1,
        }
    }

    #[inline(always)]
    fn ctrl_byte(&self, i: usize) -> u8 {
        self.ctrl[i / WIDTH].0[i % WIDTH]
    }

    #[inline(always)]
    fn set_ctrl(&mut self, i: usize, c: u8) {
        self.ctrl[i / WIDTH].0[i % WIDTH] = c;
    }

    /// The bucket holding `key`, if any. The home group is searched inline;
    /// the rest of the probe sequence (needed only when an entry overflowed
    /// past the home group) is out of line, to keep a hit's code short.
    #[inline(always)]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let tag = group::tag(hash);
        debug_assert!(!self.ctrl.is_empty() && self.overflow.len() == self.ctrl.len());
        let g = Probe::home(hash, self.ctrl.len());
        // SAFETY: `ctrl` is never empty, so `Probe::home` is below its length.
        if let Some(i) = unsafe { self.match_in_group(g, tag, key) } {
            return Some(i);
        }
        // SAFETY: as above; `overflow` is as long as `ctrl` (the two are
        // only ever replaced together, with the same length).
        if unsafe { *self.overflow.get_unchecked(g) } == 0 {
            return None;
        }
        self.find_beyond_home(hash, tag, key)
    }

    /// The bucket of group `g` holding `key`, if any.
    ///
    /// # Safety
    /// `g < self.ctrl.len()`.
    #[inline(always)]
    unsafe fn match_in_group<Q>(&self, g: usize, tag: u8, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        debug_assert!(g < self.ctrl.len());
        // SAFETY: the caller guarantees `g` is in bounds.
        let grp = G::load(unsafe { self.ctrl.get_unchecked(g) });
        for bit in grp.match_tag(tag) {
            let i = g * WIDTH + bit;
            // SAFETY: control byte `i` equals a tag, so slot `i` is FULL.
            if unsafe { self.slots.get(i) }.key.borrow() == key {
                return Some(i);
            }
        }
        None
    }

    /// [`find`](Self::find) past the home group, whose overflow count is
    /// not zero.
    #[inline(never)]
    fn find_beyond_home<Q>(&self, hash: u64, tag: u8, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let n = self.ctrl.len();
        let mut p = Probe::new(hash, n);
        for _ in 1..n {
            p.advance();
            // SAFETY: `Probe` keeps `p.g` below `n` (a stride in `1..n`,
            // and one `n` subtracted when it passes the end).
            if let Some(i) = unsafe { self.match_in_group(p.g, tag, key) } {
                return Some(i);
            }
            if self.overflow[p.g] == 0 {
                return None;
            }
        }
        None
    }

    /// First free bucket on the probe sequence of `hash` (there is one:
    /// `growth_left > 0`), counting an overflow in every full group passed.
    /// True as the second value when that is not the home group.
    #[inline]
    fn find_insert_slot(ctrl: &[CtrlGroup], overflow: &mut [u8], hash: u64) -> (usize, bool) {
        let mut p = Probe::new(hash, ctrl.len());
        let mut passed = false;
        loop {
            if let Some(bit) = G::load(&ctrl[p.g]).match_empty_or_deleted().lowest() {
                return (p.g * WIDTH + bit, passed);
            }
            overflow[p.g] = overflow[p.g].saturating_add(1);
            passed = true;
            p.advance();
        }
    }

    /// Looks `key` up, counting a hit or a miss. A hit bumps the entry's
    /// frequency; an entry whose deadline has passed is removed and counts as
    /// a miss.
    #[inline]
    pub fn get<Q, T>(&mut self, key: &Q, time: T) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        T: TimeSource,
    {
        let hash = self.hash(key);
        self.get_hashed(hash, key, time)
    }

    /// [`get`](Self::get) with the hash already computed by [`hash`](Self::hash).
    #[inline(always)]
    pub fn get_hashed<Q, T>(&mut self, hash: u64, key: &Q, time: T) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: TimeSource,
    {
        self.get_hashed_into(hash, key, time, &mut DropNow)
    }

    /// [`get_hashed`](Self::get_hashed), handing an entry that expired to
    /// `out` (the concurrent cache drops it after its lock).
    #[inline(always)]
    pub(crate) fn get_hashed_into<Q, T, E>(
        &mut self,
        hash: u64,
        key: &Q,
        mut time: T,
        out: &mut E,
    ) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: TimeSource,
        E: Evictions<K, V>,
    {
        let Some(i) = self.find(hash, key) else {
            self.stats.misses += 1;
            return None;
        };
        // SAFETY: `find` returned a FULL bucket.
        let expires = unsafe { self.slots.get(i) }.meta.expires;
        if expires != NEVER && time.now() >= expires {
            let (k, v) = self.take(i, Some(hash));
            self.stats.expirations += 1;
            self.stats.misses += 1;
            out.push(k, v);
            return None;
        }
        self.stats.hits += 1;
        // SAFETY: as above; nothing was removed.
        let slot = unsafe { self.slots.get_mut(i) };
        slot.meta.touch();
        Some(&slot.value)
    }

    /// A lookup by one of several readers sharing the table while writers
    /// are excluded (the multi-threaded cache's lock-free reads): counts
    /// nothing (the caller does), bumps the frequency with a store that a
    /// racing reader may overwrite, and reads an expired entry as absent
    /// without removing it.
    #[inline(always)]
    pub(crate) fn get_shared<Q, T>(&self, hash: u64, key: &Q, time: T) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: TimeSource,
    {
        let slot = self.find_live(hash, key, time)?;
        slot.meta.touch_shared();
        Some(&slot.value)
    }

    /// The slot holding `key`, unless absent or expired at `time`.
    #[inline(always)]
    fn find_live<Q, T>(&self, hash: u64, key: &Q, mut time: T) -> Option<&Slot<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: TimeSource,
    {
        let i = self.find(hash, key)?;
        // SAFETY: `find` returned a FULL bucket.
        let slot = unsafe { self.slots.get(i) };
        (slot.meta.expires == NEVER || time.now() < slot.meta.expires).then_some(slot)
    }

    /// Looks `key` up without counting or bumping its frequency; an expired
    /// entry reads as absent (and stays until removed).
    #[inline]
    pub fn peek<Q, T>(&self, key: &Q, time: T) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        T: TimeSource,
    {
        self.peek_hashed(self.hash(key), key, time)
    }

    /// [`peek`](Self::peek) with the hash already computed.
    #[inline]
    pub fn peek_hashed<Q, T>(&self, hash: u64, key: &Q, time: T) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: TimeSource,
    {
        self.find_live(hash, key, time).map(|s| &s.value)
    }

    /// True when `key` has a live entry (no counters, no frequency bump).
    #[inline]
    pub fn contains<Q, T>(&self, key: &Q, time: T) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        T: TimeSource,
    {
        self.peek(key, time).is_some()
    }

    /// Stores `key -> value` with deadline `expires` ([`NEVER`] for none),
    /// evicting as needed.
    #[inline]
    pub fn insert<T: TimeSource>(&mut self, key: K, value: V, expires: Nanos, time: T) -> Inserted<V> {
        let hash = self.hash(&key);
        self.insert_hashed(hash, key, value, expires, time)
    }

    /// [`insert`](Self::insert) with the hash already computed.
    #[inline]
    pub fn insert_hashed<T: TimeSource>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        expires: Nanos,
        time: T,
    ) -> Inserted<V> {
        self.insert_evicting(hash, key, value, expires, time, &mut DropNow)
    }

    /// [`insert_hashed`](Self::insert_hashed) that hands the entries it
    /// evicts to `evicted` instead of dropping them.
    pub(crate) fn insert_evicting<T: TimeSource, E: Evictions<K, V>>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        expires: Nanos,
        mut time: T,
        evicted: &mut E,
    ) -> Inserted<V> {
        let weigher = self.weigher;
        let w = Self::weigh(weigher, &key, &value);
        let heavy = w > self.weight_limit;
        if heavy || (expires != NEVER && time.now() >= expires) {
            let old = self.find(hash, &key).map(|i| self.take(i, Some(hash)).1);
            self.stats.rejections += u64::from(heavy);
            // The refused entry goes where evicted ones go (the concurrent
            // cache drops it after its lock).
            evicted.push(key, value);
            return Inserted::Rejected(old);
        }
        if let Some(i) = self.find(hash, &key) {
            // SAFETY: `find` returned a FULL bucket.
            let slot = unsafe { self.slots.get_mut(i) };
            // The weigher is user code: it runs before anything changes.
            let old_w = Self::weigh(weigher, &slot.key, &slot.value);
            let old = std::mem::replace(&mut slot.value, value);
            let old_expires = std::mem::replace(&mut slot.meta.expires, expires);
            slot.meta.touch();
            let in_small = slot.meta.queue() == Queue::Small;
            self.weight = self.weight.saturating_sub(old_w).saturating_add(w);
            if in_small {
                self.small_weight = self.small_weight.saturating_sub(old_w).saturating_add(w);
            }
            match (old_expires != NEVER, expires != NEVER) {
                (true, false) => self.ttl_items -= 1,
                (false, true) => self.ttl_items += 1,
                _ => {}
            }
            if expires != NEVER {
                self.note_deadline(expires, i);
            }
            self.stats.updates += 1;
            if self.weight > self.weight_limit {
                // The value grew: evict others, never the entry just
                // written (off its queue meanwhile; it fits alone, as
                // `w <= weight_limit`). It goes back as its queue's newest.
                let q = if in_small { Queue::Small } else { Queue::Main };
                let i = i as u32;
                let (list, slots) = self.queue(q);
                list.unlink(slots, i);
                // Eviction runs user code (drops, hashing, the clock, the
                // weigher): the entry goes back on its queue even if that
                // panics, so the table stays whole for the next holder.
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.make_room(0, 0, &mut time, evicted);
                }));
                let (list, slots) = self.queue(q);
                list.push_head(slots, i, q);
                if let Err(panic) = made {
                    std::panic::resume_unwind(panic);
                }
            }
            return Inserted::Replaced(old);
        }
        self.make_room(1, w, &mut time, evicted);
        let queue = if self.ghost.take(hash) { Queue::Main } else { Queue::Small };
        self.reserve_one();
        let (i, passed) = Self::find_insert_slot(&self.ctrl, &mut self.overflow, hash);
        self.growth_left -= 1;
        self.displaced += usize::from(passed);
        self.set_ctrl(i, group::tag(hash));
        self.slots.0[i].write(Slot { key, value, meta: Meta::new(expires) });
        self.items += 1;
        self.weight = self.weight.saturating_add(w);
        if expires != NEVER {
            self.ttl_items += 1;
            self.note_deadline(expires, i);
        }
        match queue {
            Queue::Main => self.main.push_head(&mut self.slots, i as u32, Queue::Main),
            _ => {
                self.small.push_head(&mut self.slots, i as u32, Queue::Small);
                self.small_weight = self.small_weight.saturating_add(w);
            }
        }
        self.stats.inserts += 1;
        Inserted::New
    }

    /// Removes `key`, returning its entry (expired or not).
    pub fn remove<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.remove_hashed(hash, key)
    }

    /// [`remove`](Self::remove) with the hash already computed.
    pub fn remove_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.find(hash, key)?;
        Some(self.take(i, Some(hash)))
    }

    /// Removes at most `max` expired entries, examining at most `16 * max`
    /// buckets from where the previous sweep stopped. Returns how many it
    /// removed. Costs nothing when no entry has a deadline, or when no
    /// deadline can have passed yet (a lower bound on the deadlines held,
    /// tightened at the end of each full pass over the buckets).
    pub fn sweep_expired<T: TimeSource>(&mut self, max: usize, time: T) -> usize {
        self.sweep_expired_into(max, time, &mut DropNow)
    }

    /// [`sweep_expired`](Self::sweep_expired), handing the removed entries
    /// to `out` (the concurrent cache drops them after its lock).
    pub(crate) fn sweep_expired_into<T: TimeSource, E: Evictions<K, V>>(
        &mut self,
        max: usize,
        mut time: T,
        out: &mut E,
    ) -> usize {
        if self.ttl_items == 0 || max == 0 {
            return 0;
        }
        let now = time.now();
        if now < self.earliest {
            return 0;
        }
        let n = self.slots.len();
        let budget = max.saturating_mul(16).min(n);
        let mut removed = 0;
        for _ in 0..budget {
            let i = self.sweep_cursor;
            let last = i + 1 == n;
            // Moved on first: an entry whose removal panics is not met
            // again at once by every later sweep.
            self.sweep_cursor = if last { 0 } else { i + 1 };
            if group::is_full(self.ctrl_byte(i)) {
                // SAFETY: control byte `i` is FULL.
                let e = unsafe { self.slots.get(i) }.meta.expires;
                if e != NEVER && now >= e {
                    let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.take(i, None)));
                    match taken {
                        Ok((k, v)) => {
                            self.stats.expirations += 1;
                            removed += 1;
                            out.push(k, v);
                        }
                        Err(panic) => {
                            // A weigher or hash panicked before anything
                            // changed: the entry stays, so its deadline
                            // bounds this pass.
                            self.pass_earliest = self.pass_earliest.min(e);
                            if last {
                                self.end_pass();
                            }
                            std::panic::resume_unwind(panic);
                        }
                    }
                } else if e != NEVER {
                    self.pass_earliest = self.pass_earliest.min(e);
                }
            }
            if last {
                self.end_pass();
            }
            if removed == max || self.ttl_items == 0 {
                break;
            }
        }
        removed
    }

    /// A sweep pass reached the last bucket: every entry held now was
    /// examined and kept, or written behind the cursor since (buckets do
    /// not move between rebuilds, and a rebuild starts a new pass), so the
    /// pass's bound bounds them all; so does the running one.
    fn end_pass(&mut self) {
        let pass = std::mem::replace(&mut self.pass_earliest, u64::MAX);
        self.earliest = self.earliest.max(pass);
    }

    /// Removes every entry and returns to the initial allocation (counters
    /// are kept).
    pub fn clear(&mut self) {
        drop(self.clear_deferred());
    }

    /// [`clear`](Self::clear), returning the old entries to drop when the
    /// caller likes (the concurrent cache: after its lock). The table is
    /// reset before any entry is dropped: a `Drop` that panics then leaves
    /// an empty, consistent table behind (the entries not yet dropped leak)
    /// instead of one still listing dropped ones.
    pub(crate) fn clear_deferred(&mut self) -> Cleared<K, V> {
        let ctrl = std::mem::replace(&mut self.ctrl, vec![CtrlGroup::EMPTY; 1].into_boxed_slice());
        let slots = std::mem::replace(&mut self.slots, Slots::new(WIDTH));
        self.overflow = vec![0u8; 1].into_boxed_slice();
        self.items = 0;
        self.displaced = 0;
        self.growth_left = usable(1);
        self.weight = 0;
        self.small_weight = 0;
        self.small = List::new();
        self.main = List::new();
        self.ghost = Ghost::new();
        self.ttl_items = 0;
        self.sweep_cursor = 0;
        self.earliest = u64::MAX;
        self.pass_earliest = u64::MAX;
        Cleared { ctrl, slots }
    }

    /// Every entry, in bucket order (expired ones not yet removed included).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        (0..self.slots.len()).filter(|&i| group::is_full(self.ctrl_byte(i))).map(move |i| {
            // SAFETY: control byte `i` is FULL.
            let s = unsafe { self.slots.get(i) };
            (&s.key, &s.value)
        })
    }

    /// The entries in buckets `start..`, each with its bucket index, for
    /// cursor-style scans (resume at the last index + 1). An entry present
    /// from the first call to the last is seen once unless the table was
    /// rebuilt in between (growth moves entries).
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = (usize, &K, &V)> + '_ {
        (start.min(self.slots.len())..self.slots.len()).filter(|&i| group::is_full(self.ctrl_byte(i))).map(
            move |i| {
                // SAFETY: control byte `i` is FULL.
                let s = unsafe { self.slots.get(i) };
                (i, &s.key, &s.value)
            },
        )
    }

    /// The queue holding `key`, and its frequency (for tests and tools).
    pub fn policy_state<Q>(&self, key: &Q) -> Option<(Queue, u8)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.find(self.hash(key), key)?;
        // SAFETY: `find` returned a FULL bucket.
        let m = &unsafe { self.slots.get(i) }.meta;
        Some((m.queue(), m.freq()))
    }

    /// Evicts until one more entry of weight `extra_weight` fits (or the
    /// table is empty).
    fn make_room<T: TimeSource, E: Evictions<K, V>>(
        &mut self,
        extra: usize,
        extra_weight: u64,
        time: &mut T,
        evicted: &mut E,
    ) {
        while self.items + extra > self.count_limit
            || self.weight.saturating_add(extra_weight) > self.weight_limit
        {
            if !self.evict_one(time, evicted) {
                break;
            }
        }
    }

    fn ghost_target(&self) -> usize {
        let entries = if self.bounded_count { self.count_limit } else { usable(self.ctrl.len()) };
        (entries.saturating_sub(self.small_count_target) / GHOST_DIVISOR).max(1)
    }

    /// Removes one entry by the S3-FIFO rules (see [`super::eviction`]).
    /// False when the table is empty.
    fn evict_one<T: TimeSource, E: Evictions<K, V>>(&mut self, time: &mut T, evicted: &mut E) -> bool {
        loop {
            let from_small = self.small.len > 0
                && (self.main.len == 0
                    || self.small.len >= self.small_count_target
                    || self.small_weight >= self.small_weight_target);
            let i = if from_small {
                self.small.tail
            } else if self.main.len > 0 {
                self.main.tail
            } else {
                return false;
            };
            debug_assert!(i != NIL);
            let m = self.slots.meta(i).clone();
            if m.expires != NEVER && time.now() >= m.expires {
                let (k, v) = self.take(i as usize, None);
                evicted.push(k, v);
                self.stats.expirations += 1;
                return true;
            }
            let mut hash = None;
            if from_small {
                if m.freq() >= PROMOTE_FREQ {
                    // SAFETY: `i` is linked, so it holds an entry.
                    let s = unsafe { self.slots.get(i as usize) };
                    let w = Self::weigh(self.weigher, &s.key, &s.value);
                    self.small_weight = self.small_weight.saturating_sub(w);
                    self.small.unlink(&mut self.slots, i);
                    self.slots.meta_mut(i).set_freq(0);
                    self.main.push_head(&mut self.slots, i, Queue::Main);
                    continue;
                }
                // SAFETY: `i` is linked, so it holds an entry.
                let h = self.hasher.hash_one(&unsafe { self.slots.get(i as usize) }.key);
                if self.ghost.len() == 0 {
                    self.ghost.resize(self.ghost_target());
                }
                self.ghost.insert(h);
                hash = Some(h);
            } else if m.freq() > 0 {
                self.main.unlink(&mut self.slots, i);
                self.slots.meta_mut(i).set_freq(m.freq() - 1);
                self.main.push_head(&mut self.slots, i, Queue::Main);
                continue;
            }
            let (k, v) = self.take(i as usize, hash);
            evicted.push(k, v);
            self.stats.evictions += 1;
            return true;
        }
    }

    /// Queue `q`'s list (`Small`, else `Main`), with the slots it links.
    fn queue(&mut self, q: Queue) -> (&mut List, &mut Slots<K, V>) {
        let list = if q == Queue::Small { &mut self.small } else { &mut self.main };
        (list, &mut self.slots)
    }

    /// Frees bucket `i` (FULL) and returns its entry; `hash` is its key's
    /// hash when the caller has it (else it is computed if needed).
    fn take(&mut self, i: usize, hash: Option<u64>) -> (K, V) {
        let g = i / WIDTH;
        // User code first (the weigher, the hasher), before anything changes.
        // SAFETY: bucket `i` is FULL.
        let entry = unsafe { self.slots.get(i) };
        let w = Self::weigh(self.weigher, &entry.key, &entry.value);
        debug_assert!(
            hash.is_none_or(|h| h == self.hasher.hash_one(&entry.key)),
            "a `*_hashed` call was given a hash that is not the key's"
        );
        if self.displaced > 0 {
            // Uncount the entry in the groups its insert passed, if any.
            let hash = hash.unwrap_or_else(|| self.hasher.hash_one(&entry.key));
            let mut p = Probe::new(hash, self.ctrl.len());
            if p.g != g {
                self.displaced -= 1;
                for _ in 0..self.ctrl.len() {
                    let c = &mut self.overflow[p.g];
                    if *c < u8::MAX {
                        // Saturating: a wrong hash from a `*_hashed` caller
                        // (a broken contract) must not panic halfway.
                        *c = c.saturating_sub(1);
                    }
                    p.advance();
                    if p.g == g {
                        break;
                    }
                }
            }
        }
        let m = self.slots.meta(i as u32).clone();
        match m.queue() {
            Queue::None => debug_assert!(false, "every entry is on a queue"),
            q => {
                let (list, slots) = self.queue(q);
                list.unlink(slots, i as u32);
            }
        }
        self.growth_left += 1;
        self.set_ctrl(i, EMPTY);
        self.items -= 1;
        if m.expires != NEVER {
            self.ttl_items -= 1;
        }
        // SAFETY: bucket `i` was FULL and its control byte now says it is
        // free, so this is the only read of the entry: it moves out once.
        let Slot { key, value, .. } = unsafe { self.slots.0[i].assume_init_read() };
        self.weight = self.weight.saturating_sub(w);
        if m.queue() == Queue::Small {
            self.small_weight = self.small_weight.saturating_sub(w);
        }
        (key, value)
    }

    /// Makes sure one more bucket may be filled: rebuilds, doubling the
    /// size if more than half full (without tombstones it always is).
    fn reserve_one(&mut self) {
        if self.growth_left > 0 {
            return;
        }
        let n = self.ctrl.len();
        let new_n = if (self.items + 1) * 2 > usable(n) { next_prime(n * 2).min(self.max_groups) } else { n };
        self.rebuild(new_n.max(1));
    }

    /// Moves every entry into fresh arrays of `groups` groups, keeping the
    /// order of both queues, each entry's frequency and deadline.
    fn rebuild(&mut self, groups: usize) {
        debug_assert!(usable(groups) > self.items);
        let mut ctrl = vec![CtrlGroup::EMPTY; groups].into_boxed_slice();
        let mut overflow = vec![0u8; groups].into_boxed_slice();
        let mut displaced = 0;
        let mut slots: Slots<K, V> = Slots::new(groups * WIDTH);
        let mut lists = [List::new(), List::new()];
        for (li, q) in [(0, Queue::Small), (1, Queue::Main)] {
            let old = if li == 0 { self.small } else { self.main };
            let mut i = old.tail;
            while i != NIL {
                // SAFETY: `i` is linked, so it holds an entry.
                let hash = self.hasher.hash_one(&unsafe { self.slots.get(i as usize) }.key);
                // The entry moves out exactly once (each slot is on one list
                // once) and nothing below can panic before it is written to
                // the new array; the old array is freed without dropping
                // entries (`Slots` has no drop glue for its contents).
                // SAFETY: `i` is linked, so it holds an entry; it is read out once (above).
                let mut slot = unsafe { self.slots.0[i as usize].assume_init_read() };
                let newer = slot.meta.prev();
                let freq = slot.meta.freq();
                slot.meta = Meta::new(slot.meta.expires);
                slot.meta.set_freq(freq);
                let (j, passed) = Self::find_insert_slot(&ctrl, &mut overflow, hash);
                displaced += usize::from(passed);
                ctrl[j / WIDTH].0[j % WIDTH] = group::tag(hash);
                slots.0[j].write(slot);
                lists[li].push_head(&mut slots, j as u32, q);
                i = newer;
            }
        }
        self.ctrl = ctrl;
        self.overflow = overflow;
        self.displaced = displaced;
        self.slots = slots;
        [self.small, self.main] = lists;
        self.growth_left = usable(groups) - self.items;
        // Entries moved: a new sweep pass begins (`earliest` still bounds
        // them all).
        self.sweep_cursor = 0;
        self.pass_earliest = u64::MAX;
        if !self.bounded_count && self.ghost.len() > 0 {
            self.ghost.resize(self.ghost_target());
        }
    }

    /// Checks that no entry's deadline is before the sweep's lower bound.
    /// For tests.
    #[cfg(test)]
    fn check_deadline_bound(&self) {
        for i in 0..self.slots.len() {
            if group::is_full(self.ctrl_byte(i)) {
                // SAFETY: control byte `i` is FULL.
                let e = unsafe { self.slots.get(i) }.meta.expires;
                assert!(e == NEVER || e >= self.earliest, "deadline {e} before the bound {}", self.earliest);
            }
        }
    }

    /// Recomputes the overflow counts and the displaced count from the
    /// entries and checks them against the table's (a saturated count only
    /// has to be at least the true one). For tests.
    #[cfg(test)]
    fn check_overflow_counts(&self) {
        let n = self.ctrl.len();
        let mut want = vec![0usize; n];
        let mut displaced = 0;
        let mut free = 0;
        for i in 0..self.slots.len() {
            if !group::is_full(self.ctrl_byte(i)) {
                assert_eq!(self.ctrl_byte(i), EMPTY, "a free bucket is EMPTY, never a tombstone");
                free += 1;
                continue;
            }
            // SAFETY: bucket `i` is FULL.
            let hash = self.hasher.hash_one(&unsafe { self.slots.get(i) }.key);
            let mut p = Probe::new(hash, n);
            if p.g != i / WIDTH {
                displaced += 1;
            }
            let mut steps = 0;
            while p.g != i / WIDTH {
                want[p.g] += 1;
                p.advance();
                steps += 1;
                assert!(steps < n, "entry {i} is not on its probe sequence");
            }
        }
        assert_eq!(self.displaced, displaced, "displaced count");
        for (g, (&have, &want)) in self.overflow.iter().zip(&want).enumerate() {
            // A saturated count stays whatever the true count became (it only
            // makes lookups probe on); every other count is exact.
            if have != u8::MAX {
                assert_eq!(usize::from(have), want, "overflow count of group {g}");
            }
        }
        assert_eq!(self.growth_left, usable(n) - self.items, "growth_left");
        assert_eq!(free, self.slots.len() - self.items);
    }
}

impl<K, V, S, G> Drop for Table<K, V, S, G> {
    fn drop(&mut self) {
        // SAFETY: `ctrl` describes `slots`; the table goes away after this.
        unsafe { self.slots.drop_full(&self.ctrl) };
    }
}

impl<K, V, S, G> std::fmt::Debug for Table<K, V, S, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.items)
            .field("buckets", &self.slots.len())
            .field("weight", &self.weight)
            .field("small", &self.small.len)
            .field("main", &self.main.len)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::cache::group::Generic;

    fn table<G: GroupOps>(n: usize) -> Table<u64, u64, SeededState, G> {
        Table::with_limits(Limits::entries(n), None, SeededState::with_seed(7)).unwrap()
    }

    /// A table of a 100-unit weight budget, weighing values with `weigh`.
    fn weighted<V>(weigh: Weigher<u64, V>) -> Table<u64, V> {
        Table::with_limits(Limits::weight(100), Some(weigh), SeededState::new()).unwrap()
    }

    fn basic<G: GroupOps>() {
        let mut t = table::<G>(1000);
        assert_eq!(t.get(&1, 0), None);
        assert_eq!(t.insert(1, 10, NEVER, 0), Inserted::New);
        assert_eq!(t.insert(1, 11, NEVER, 0), Inserted::Replaced(10));
        assert_eq!(t.get(&1, 0), Some(&11));
        assert!(t.contains(&1, 0));
        assert_eq!(t.remove(&1), Some((1, 11)));
        assert_eq!(t.remove(&1), None);
        assert!(t.is_empty());
        for i in 0..900 {
            t.insert(i, i * 2, NEVER, 0);
        }
        assert_eq!(t.len(), 900);
        for i in 0..900 {
            assert_eq!(t.get(&i, 0), Some(&(i * 2)), "key {i}");
        }
        let s = t.stats();
        assert_eq!((s.hits, s.misses, s.inserts, s.updates), (901, 1, 901, 1));
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.get(&5, 0), None);
    }

    #[test]
    fn basic_simd() {
        basic::<Group>();
    }

    #[test]
    fn basic_portable() {
        basic::<Generic>();
    }

    #[test]
    fn bounded_table_never_exceeds_its_limit_or_its_final_size() {
        for n in [1usize, 2, 13, 14, 15, 16, 100, 1000] {
            let mut t = table::<Group>(n);
            for i in 0..(n as u64 * 5 + 50) {
                t.insert(i, i, NEVER, 0);
                assert!(t.len() <= n);
                if i % 3 == 0 {
                    t.get(&(i / 2), 0);
                }
                if i % 7 == 0 {
                    t.remove(&(i / 3));
                }
            }
            assert!(t.buckets() <= final_groups(n) * WIDTH, "n={n}");
            assert_eq!(t.len(), t.iter().count());
        }
    }

    /// Overflow counts stay exact under random inserts, updates, removes,
    /// lookups, expiry (lazy, by sweep, during eviction), growth and clear,
    /// with both control-group implementations.
    fn overflow_counts_stay_exact<G: GroupOps>() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for n in [16usize, 100, 1000] {
            let mut t = table::<G>(n);
            let keys = n as u64 * 2;
            for step in 0..(n * 30) {
                let r = next();
                let k = r % keys;
                let now = step as u64;
                match (r >> 32) % 10 {
                    0..=4 => {
                        let expires = if (r >> 40) % 4 == 0 { now + (r >> 44) % 50 } else { NEVER };
                        t.insert(k, k, expires, now);
                    }
                    5 | 6 => {
                        t.remove(&k);
                    }
                    7 | 8 => {
                        t.get(&k, now);
                    }
                    _ => {
                        t.sweep_expired(4, now);
                    }
                }
                if step % 7 == 0 || n <= 100 {
                    t.check_overflow_counts();
                }
            }
            t.check_overflow_counts();
            t.clear();
            t.check_overflow_counts();
            assert!(t.get(&1, 0).is_none());
        }
    }

    #[test]
    fn overflow_counts_stay_exact_simd() {
        overflow_counts_stay_exact::<Group>();
    }

    #[test]
    fn overflow_counts_stay_exact_portable() {
        overflow_counts_stay_exact::<Generic>();
    }

    /// Churn at full load neither rebuilds the table nor lengthens lookups:
    /// a freed bucket is EMPTY, so there are no tombstones to clean up.
    #[test]
    fn churn_at_full_load_does_not_rebuild() {
        let n = 4096;
        let mut t = table::<Group>(n);
        for k in 0..n as u64 {
            t.insert(k, k, NEVER, 0);
        }
        let buckets = t.buckets();
        let ctrl = t.ctrl.as_ptr();
        for k in n as u64..n as u64 * 50 {
            t.insert(k, k, NEVER, 0);
        }
        assert_eq!(t.len(), n);
        assert_eq!(t.buckets(), buckets);
        assert_eq!(t.ctrl.as_ptr(), ctrl, "no rebuild under churn");
        t.check_overflow_counts();
        // Every resident key is found; a miss stops within a few groups.
        let resident: Vec<u64> = t.iter().map(|(k, _)| *k).collect();
        for k in &resident {
            assert!(t.peek(k, 0).is_some());
        }
        let overflowed = t.overflow.iter().filter(|&&c| c > 0).count();
        assert!(overflowed < t.ctrl.len(), "some group ends every probe");
    }

    /// Every key with the same hash: one probe sequence, counts past 255
    /// saturate and stay, and every key is still found and removable.
    #[test]
    fn saturated_overflow_counts_stay_correct() {
        #[derive(Clone, Default)]
        struct Same;
        struct SameHasher;
        impl std::hash::Hasher for SameHasher {
            fn finish(&self) -> u64 {
                0x0123_4567_89AB_CDEF
            }
            fn write(&mut self, _: &[u8]) {}
        }
        impl BuildHasher for Same {
            type Hasher = SameHasher;
            fn build_hasher(&self) -> SameHasher {
                SameHasher
            }
        }
        let mut t: Table<u64, u64, Same> = Table::with_limits(Limits::entries(400), None, Same).unwrap();
        for k in 0..400u64 {
            t.insert(k, k * 3, NEVER, 0);
        }
        assert_eq!(t.len(), 400);
        assert_eq!(*t.overflow.iter().max().unwrap(), u8::MAX, "the home group saturated");
        t.check_overflow_counts();
        for k in 0..400u64 {
            assert_eq!(t.get(&k, 0), Some(&(k * 3)));
        }
        for k in (0..400u64).step_by(2) {
            assert_eq!(t.remove(&k), Some((k, k * 3)));
        }
        t.check_overflow_counts();
        for k in 0..400u64 {
            assert_eq!(t.peek(&k, 0).copied(), (k % 2 == 1).then_some(k * 3), "key {k}");
        }
        for k in 400..600u64 {
            t.insert(k, k, NEVER, 0);
        }
        t.check_overflow_counts();
        assert_eq!(t.len(), 400);
    }

    #[test]
    fn group_counts_are_prime() {
        assert_eq!(next_prime(0), 2);
        assert_eq!(next_prime(2), 2);
        assert_eq!(next_prime(8), 11);
        assert_eq!(next_prime(65_536), 65_537);
        assert!(final_groups(usize::MAX / 8) <= MAX_GROUPS);
        let mut p = Probe::new(12345, 11);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..11 {
            seen.insert(p.g);
            p.advance();
        }
        assert_eq!(seen.len(), 11, "a probe visits every group of a prime count");
    }

    #[test]
    fn per_entry_overhead_under_32_bytes_for_u64_keys() {
        assert_eq!(std::mem::size_of::<Meta>(), 16);
        assert_eq!(slot_size::<u64, u64>(), 32);
        assert_eq!(slot_size::<u64, Box<[u8]>>(), 40);
        assert!(overhead_per_entry::<u64, u64>() < 32.0);
        assert!(overhead_per_entry::<u64, Box<[u8]>>() < 32.0);
        assert!(overhead_per_entry::<u64, [u8; 16]>() < 32.0);
        // Measured on a full table: allocation per entry beyond key+value.
        for n in [10_000usize, 100_000] {
            let mut t: Table<u64, Box<[u8]>> = Table::new(n).unwrap();
            for i in 0..(n as u64 * 3) {
                t.insert(i, vec![0u8; 16].into_boxed_slice(), NEVER, 0);
            }
            assert_eq!(t.len(), n);
            let per = t.allocated_bytes() as f64 / n as f64 - 24.0;
            assert!(per < 32.0, "{per} bytes per entry at n={n}");
        }
    }

    #[test]
    fn drops_every_value_once() {
        use std::rc::Rc;
        let token = Rc::new(());
        {
            let mut t: Table<u64, Rc<()>> = Table::new(50).unwrap();
            for i in 0..500 {
                t.insert(i, token.clone(), NEVER, 0);
                if i % 5 == 4 {
                    t.remove(&(i - 1));
                }
            }
            assert_eq!(Rc::strong_count(&token), 1 + t.len());
            t.clear();
            assert_eq!(Rc::strong_count(&token), 1);
            for i in 0..40 {
                t.insert(i, token.clone(), NEVER, 0);
            }
        }
        assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn iter_from_resumes_a_scan_without_repeats_or_gaps() {
        let mut t: Table<u64, u64> = Table::new(1000).unwrap();
        for k in 0..700u64 {
            t.insert(k, k * 2, NEVER, 0);
        }
        let all: Vec<(u64, u64)> = t.iter().map(|(k, v)| (*k, *v)).collect();
        // Three entries a call, resuming after the last bucket seen.
        let (mut from, mut got) = (0, Vec::new());
        loop {
            let batch: Vec<(usize, u64, u64)> =
                t.iter_from(from).take(3).map(|(i, k, v)| (i, *k, *v)).collect();
            let Some(last) = batch.last() else { break };
            from = last.0 + 1;
            assert!(batch.windows(2).all(|w| w[0].0 < w[1].0), "bucket order");
            got.extend(batch.iter().map(|&(_, k, v)| (k, v)));
        }
        assert_eq!(got, all);
        assert_eq!(got.len(), 700);
        assert_eq!(t.iter_from(usize::MAX).count(), 0);
    }

    #[test]
    fn ttl_expires_lazily_and_by_sweep() {
        let mut t = table::<Group>(100);
        t.insert(1, 1, 100, 0);
        t.insert(2, 2, 200, 0);
        t.insert(3, 3, NEVER, 0);
        assert_eq!(t.get(&1, 99), Some(&1));
        assert_eq!(t.get(&1, 100), None, "expired at its deadline");
        assert_eq!(t.len(), 2);
        assert!(!t.contains(&2, 250));
        assert_eq!(t.sweep_expired(10, 250), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().expirations, 2);
        assert_eq!(t.insert(4, 4, 5, 10), Inserted::Rejected(None), "born expired");
        assert_eq!(t.sweep_expired(10, u64::MAX), 0, "nothing has a deadline");
    }

    #[test]
    fn a_sweep_before_the_first_deadline_examines_nothing() {
        let mut t = table::<Group>(1000);
        assert!(!t.may_hold_expired(u64::MAX), "no deadline held");
        t.insert(1, 1, 300, 0);
        t.insert(2, 2, 100, 0);
        t.insert(3, 3, NEVER, 0);
        assert!(!t.may_hold_expired(99) && t.may_hold_expired(100));
        assert_eq!(t.sweep_expired(1, 99), 0);
        assert_eq!(t.sweep_cursor, 0, "not a bucket examined");
        // Removing the soonest leaves the bound where it was (a lower
        // bound) until a sweep's full pass tightens it.
        assert_eq!(t.remove(&2), Some((2, 2)));
        assert!(t.may_hold_expired(150));
        assert_eq!(t.sweep_expired(usize::MAX, 150), 0);
        assert!(!t.may_hold_expired(299) && t.may_hold_expired(300), "tightened to 300");
        t.insert(4, 4, 200, 0);
        assert!(t.may_hold_expired(200), "a new deadline lowers it");
        assert_eq!(t.sweep_expired(usize::MAX, 300), 2);
        assert!(!t.may_hold_expired(u64::MAX), "no deadline left");
        t.insert(5, 5, 1000, 0);
        assert!(!t.may_hold_expired(999), "the first deadline after none sets the bound afresh");
    }

    #[test]
    fn a_sweep_moves_past_an_entry_whose_removal_panics() {
        static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        fn weigh(_: &u64, v: &u64) -> u64 {
            if *v == 13 && ARMED.load(std::sync::atomic::Ordering::SeqCst) {
                panic!("the weigher panicked");
            }
            1
        }
        let mut t: Table<u64, u64> = weighted(weigh);
        for k in 0..40 {
            t.insert(k, k, 10, 0);
        }
        ARMED.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut panics = 0;
        for _ in 0..200 {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.sweep_expired(1, 20)));
            panics += usize::from(r.is_err());
            t.check_deadline_bound();
        }
        assert_eq!(t.len(), 1, "every other expired entry swept");
        assert!((1..200).contains(&panics), "{panics} sweeps panicked");
        assert!(t.may_hold_expired(20), "the entry left is still due");
        ARMED.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(t.sweep_expired(usize::MAX, 20), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn the_deadline_bound_holds_under_random_writes_reads_and_sweeps() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut t = table::<Group>(200);
        let mut now = 1u64;
        for _ in 0..200_000 {
            let k = next(300);
            match next(10) {
                0..=3 => {
                    let e = if next(4) == 0 { NEVER } else { now + 1 + next(500) };
                    t.insert(k, k, e, now);
                }
                4 => drop(t.remove(&k)),
                5 => drop(t.get(&k, now)),
                6 => {
                    t.sweep_expired(1 + next(8) as usize, now);
                    if !t.may_hold_expired(now) {
                        let due = (0..t.slots.len())
                            .filter(|&i| group::is_full(t.ctrl_byte(i)))
                            // SAFETY: control byte `i` is FULL.
                            .map(|i| unsafe { t.slots.get(i) }.meta.expires)
                            .filter(|&e| e != NEVER && e <= now)
                            .count();
                        assert_eq!(due, 0, "an expired entry that a sweep would skip");
                    }
                }
                7 => now += next(50),
                8 if next(500) == 0 => t.clear(),
                _ => {}
            }
            t.check_deadline_bound();
        }
        assert!(t.stats().expirations > 0, "sweeps and reads removed expired entries");
    }

    #[test]
    fn weight_limit_and_heavy_entries() {
        let mut t: Table<u64, Vec<u8>> = weighted(|_, v: &Vec<u8>| v.len() as u64);
        assert_eq!(t.insert(1, vec![0; 101], NEVER, 0), Inserted::Rejected(None));
        for i in 0..50 {
            t.insert(i, vec![0; 10], NEVER, 0);
            assert!(t.weight() <= 100);
        }
        assert_eq!(t.len(), 10);
        t.insert(1000, vec![0; 100], NEVER, 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.weight(), 100);
    }

    /// A value whose drop panics when asked to.
    struct Grenade(Vec<u8>, bool);

    impl Drop for Grenade {
        fn drop(&mut self) {
            if self.1 && !std::thread::panicking() {
                panic!("a value's drop panicked");
            }
        }
    }

    #[test]
    fn a_panic_while_a_growing_update_makes_room_leaves_the_table_whole() {
        let mut t: Table<u64, Grenade> = weighted(|_, v: &Grenade| v.0.len() as u64);
        t.insert(1, Grenade(vec![0; 10], false), NEVER, 0);
        t.insert(2, Grenade(vec![0; 10], true), NEVER, 0);
        let grown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.insert(1, Grenade(vec![0; 95], false), NEVER, 0);
        }));
        assert!(grown.is_err(), "evicting 2 ran its panicking drop");
        assert_eq!(t.get(&1, 0).map(|v| v.0.len()), Some(95), "the update stays, on its queue");
        assert_eq!((t.len(), t.weight()), (1, 95));
        // Still evictable like any entry: queues and weights add up.
        for k in 10..30 {
            t.insert(k, Grenade(vec![0; 30], false), NEVER, 0);
            assert!(t.weight() <= 100);
        }
        assert!(t.get(&1, 0).is_none(), "1 was evicted in turn");
    }

    /// Counts the drops of values it was cloned from, to catch a double drop.
    struct Counted(std::rc::Rc<std::cell::Cell<u32>>, bool);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            if self.1 && !std::thread::panicking() {
                panic!("a value's drop panicked");
            }
        }
    }

    #[test]
    fn a_panicking_drop_during_clear_leaves_an_empty_table_and_drops_nothing_twice() {
        let drops = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut t: Table<u64, Counted> = Table::new(8).unwrap();
        for k in 0..8 {
            t.insert(k, Counted(drops.clone(), k == 2), NEVER, 0);
        }
        let cleared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.clear()));
        assert!(cleared.is_err(), "the third value's drop panicked");
        let dropped = drops.get();
        assert!((1..=8).contains(&dropped));
        assert_eq!((t.len(), t.weight(), t.iter().count()), (0, 0, 0));
        t.check_overflow_counts();
        // The table works on; nothing cleared is dropped again.
        for k in 100..120 {
            t.insert(k, Counted(drops.clone(), false), NEVER, 0);
        }
        assert_eq!(t.len(), 8);
        assert_eq!(drops.get(), dropped + 12, "only the 12 evicted new values were dropped since");
        drop(t);
        assert_eq!(drops.get(), dropped + 20);
    }

    #[test]
    fn a_panicking_weigher_changes_nothing() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static BOOM: AtomicBool = AtomicBool::new(false);
        #[allow(clippy::ptr_arg)] // a `Weigher<u64, Vec<u8>>` takes `&Vec<u8>`
        fn weigh(_: &u64, v: &Vec<u8>) -> u64 {
            assert!(!BOOM.load(Ordering::Relaxed), "the weigher panicked");
            v.len() as u64
        }
        let mut t: Table<u64, Vec<u8>> =
            Table::with_limits(Limits::weight(100), Some(weigh), SeededState::new()).unwrap();
        t.insert(1, vec![0; 10], 50, 0);
        t.insert(2, vec![0; 10], NEVER, 0);
        let before = (t.len(), t.weight(), t.expiring());
        BOOM.store(true, Ordering::Relaxed);
        let update = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.insert(1, vec![0; 20], NEVER, 0);
        }));
        let remove = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.remove(&2)));
        BOOM.store(false, Ordering::Relaxed);
        assert!(update.is_err() && remove.is_err());
        assert_eq!((t.len(), t.weight(), t.expiring()), before, "nothing changed");
        assert_eq!(t.get(&1, 0).map(Vec::len), Some(10));
        assert_eq!(t.remove(&1).map(|(_, v)| v.len()), Some(10));
        assert_eq!(t.remove(&2).map(|(_, v)| v.len()), Some(10));
        assert_eq!((t.len(), t.weight(), t.expiring()), (0, 0, 0));
        t.check_overflow_counts();
    }

    #[test]
    fn a_growing_update_evicts_others_not_itself() {
        let mut t: Table<u64, Vec<u8>> = weighted(|_, v: &Vec<u8>| v.len() as u64);
        // 1 and 2 in main (read often), then one-hit entries fill small; 1 is
        // the next main victim when 2 has been read since.
        t.insert(1, vec![0; 10], NEVER, 0);
        t.insert(2, vec![0; 10], NEVER, 0);
        for _ in 0..3 {
            t.get(&1, 0);
            t.get(&2, 0);
        }
        for k in 10..110 {
            t.insert(k, vec![0; 1], NEVER, 0);
        }
        for _ in 0..3 {
            t.get(&2, 0);
        }
        for victim_first in [1u64, 2] {
            if t.get(&victim_first, 0).is_none() {
                t.insert(victim_first, vec![0; 10], NEVER, 0);
            }
        }
        assert_eq!(t.insert(1, vec![7; 95], NEVER, 0), Inserted::Replaced(vec![0; 10]));
        assert_eq!(t.get(&1, 0).map(|v| v.len()), Some(95), "the update itself stays");
        assert!(t.weight() <= 100, "weight {}", t.weight());
        // An update to exactly the whole budget leaves that entry alone.
        assert!(matches!(t.insert(1, vec![1; 100], NEVER, 0), Inserted::Replaced(_)));
        assert_eq!((t.len(), t.weight()), (1, 100));
        assert_eq!(t.get(&1, 0), Some(&vec![1; 100]));
    }

    #[test]
    fn scan_does_not_flush_the_hot_set() {
        let mut t = table::<Group>(1000);
        for round in 0..5 {
            // The hot set is read a few times per round...
            for _ in 0..3 {
                for k in 0..500u64 {
                    if t.get(&k, 0).is_none() {
                        t.insert(k, k, NEVER, 0);
                    }
                }
            }
            // A one-time scan of 5000 new keys between rounds.
            for k in 0..5000u64 {
                let k = 1_000_000 + round * 10_000 + k;
                if t.get(&k, 0).is_none() {
                    t.insert(k, k, NEVER, 0);
                }
            }
        }
        let hot = (0..500u64).filter(|k| t.contains(k, 0)).count();
        assert!(hot >= 450, "only {hot} of 500 hot keys survived the scans");
    }
}
