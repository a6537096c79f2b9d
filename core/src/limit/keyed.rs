//! Many token buckets by key, in a bounded, sharded table.

use super::{Answer, AutoClock, Decision, Denied, Gcra, Quota};
use crate::clock::{Clock, Nanos};
use crate::hash::SeededState;
use crate::sync::{spin_loop, thread, AtomicBool, AtomicU64, AtomicUsize, CachePadded, Ordering, UnsafeCell};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

/// What a [`KeyedLimiter`] answers for a new key when its table is full of
/// live keys (keys whose bucket has not refilled yet). Either way the event
/// is counted in [`KeyedStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// Deny the request ([`Reason::TableFull`](super::Reason::TableFull)): no key escapes its limit,
    /// at the price of refusing new keys until old ones refill.
    Deny,
    /// Allow it as if the key's bucket were full, and keep no state
    /// ([`Reason::Untracked`](super::Reason::Untracked)): new keys are served, but are not limited
    /// until there is room for them.
    AllowUntracked,
}

/// Counters of a [`KeyedLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyedStats {
    /// Keys tracked now.
    pub keys: usize,
    /// The bound on tracked keys.
    pub capacity: usize,
    /// Keys dropped because their bucket had refilled.
    pub reclaimed: u64,
    /// Sweeps of a shard for refilled buckets.
    pub sweeps: u64,
    /// New keys denied because the table was full ([`FullPolicy::Deny`]).
    pub denied_full: u64,
    /// New keys allowed without state ([`FullPolicy::AllowUntracked`]).
    pub allowed_untracked: u64,
}

/// One key's bucket: the key, its hash and its TAT. 16 bytes beside the key
/// (`size_of::<Option<Slot<K>>>()` is 32 for `u64` and `Box<[u8]>` keys).
#[derive(Debug)]
struct Slot<K> {
    hash: u64,
    tat: Nanos,
    key: K,
}

/// Open addressing with linear probing over `Option<Slot<K>>`, indexed by
/// the hash's high bits (`(hash * len) >> 64`, so `len` need not be a power
/// of two). Grows by 7/4 when more than 7/8 full, up to `max_slots`, which
/// holds `cap` keys at most 7/8 full: once past its first 16 slots, a table
/// has at most two slots per key.
#[derive(Debug)]
struct Table<K> {
    slots: Vec<Option<Slot<K>>>,
    len: usize,
    cap: usize,
    max_slots: usize,
    /// The largest TAT of a reclaimed key (<= the sweep's `now`): new keys
    /// start from it instead of 0, so that reclaiming a key never makes a
    /// later call with an earlier `now` (a clock going backwards) more
    /// generous than keeping the key would have been.
    horizon: Nanos,
    /// No bucket can have refilled before this (the smallest TAT left by the
    /// last sweep): a full table does not sweep again before it.
    next_sweep: Nanos,
    reclaimed: u64,
    sweeps: u64,
}

const MIN_SLOTS: usize = 16;

/// Mixes a hasher's output so that both its low bits (the shard) and its
/// high bits (the home slot) depend on every input bit: `with_options` takes
/// any `BuildHasher`, and an identity hasher over structured keys (multiples
/// of 64, say) would otherwise put every key in one shard, which then reports
/// the table full at a fraction of `max_keys`, and probe every key from one
/// slot. One multiply, folded.
#[inline(always)]
fn spread(hash: u64) -> u64 {
    let m = (hash as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (m as u64) ^ ((m >> 64) as u64)
}

#[inline]
fn home(hash: u64, len: usize) -> usize {
    ((hash as u128 * len as u128) >> 64) as usize
}

fn empty_slots<K>(n: usize) -> Vec<Option<Slot<K>>> {
    let mut v = Vec::with_capacity(n);
    v.resize_with(n, || None);
    v
}

enum Probe {
    Found(usize),
    Vacant,
}

impl<K> Table<K> {
    fn new(cap: usize) -> Self {
        let max_slots = cap.saturating_mul(8).div_ceil(7).max(1);
        Table {
            slots: Vec::new(),
            len: 0,
            cap,
            max_slots,
            horizon: 0,
            next_sweep: 0,
            reclaimed: 0,
            sweeps: 0,
        }
    }

    #[inline]
    fn probe<Q>(&self, hash: u64, key: &Q) -> Probe
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let n = self.slots.len();
        if n == 0 {
            return Probe::Vacant;
        }
        let mut i = home(hash, n);
        // Terminates: the table always keeps a vacant slot (len <= 7/8 n or
        // len <= cap < max_slots).
        loop {
            match &self.slots[i] {
                None => return Probe::Vacant,
                Some(s) if s.hash == hash && s.key.borrow() == key => return Probe::Found(i),
                Some(_) => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
    }

    /// Puts `slot` in the first vacant slot of its probe sequence (the key is
    /// known to be absent).
    fn place(&mut self, slot: Slot<K>) {
        let n = self.slots.len();
        let mut i = home(slot.hash, n);
        while self.slots[i].is_some() {
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        self.slots[i] = Some(slot);
    }

    /// Rebuilds the table with `n` slots, keeping the slots `keep` accepts.
    fn rebuild(&mut self, n: usize, mut keep: impl FnMut(&Slot<K>) -> bool) {
        let old = std::mem::replace(&mut self.slots, empty_slots(n));
        self.len = 0;
        for slot in old.into_iter().flatten() {
            if keep(&slot) {
                self.place(slot);
                self.len += 1;
            }
        }
    }

    /// Drops every key whose bucket is full at `now` (TAT <= now).
    fn sweep(&mut self, now: Nanos) -> usize {
        self.sweeps += 1;
        let before = self.len;
        let mut horizon = self.horizon;
        let mut next = Nanos::MAX;
        self.rebuild(self.slots.len(), |s| {
            if s.tat <= now {
                horizon = horizon.max(s.tat);
                false
            } else {
                next = next.min(s.tat);
                true
            }
        });
        self.horizon = horizon;
        self.next_sweep = next;
        let freed = before - self.len;
        self.reclaimed += freed as u64;
        freed
    }

    /// Sweeps if a bucket may have refilled since the last sweep; returns
    /// how many keys were dropped.
    fn sweep_if_due(&mut self, now: Nanos) -> usize {
        if now >= self.next_sweep && self.len > 0 {
            self.sweep(now)
        } else {
            0
        }
    }

    /// Makes room for one more key within this shard's own cap (sweeping if
    /// that is full); returns whether there is room and how many keys a
    /// sweep dropped.
    fn make_room(&mut self, now: Nanos) -> (bool, usize) {
        let mut freed = 0;
        if self.len >= self.cap {
            freed = self.sweep_if_due(now);
            if self.len >= self.cap {
                return (false, freed);
            }
        }
        let n = self.slots.len();
        if (self.len + 1) * 8 > n * 7 && n < self.max_slots {
            let grown = (n.saturating_mul(7) / 4).max(MIN_SLOTS).min(self.max_slots);
            self.rebuild(grown, |_| true);
        }
        (true, freed)
    }

    fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<Slot<K>>>()
    }
}

/// One GCRA step on the bucket in slot `i` of `t` (which holds a key),
/// storing its new state.
#[inline(always)]
fn step_slot<K, A: Answer>(gcra: &Gcra, t: &mut Table<K>, i: usize, quantity: u64, now: Nanos) -> A {
    let Some(slot) = &mut t.slots[i] else { unreachable!("probe found an empty slot") };
    let (d, next) = A::step(gcra, slot.tat, now, quantity);
    if let Some(next) = next {
        slot.tat = next;
    }
    d
}

/// A table shard behind a small spin lock (the critical sections are a
/// probe and a few arithmetic operations; waiters spin briefly, then yield).
struct Shard<K> {
    locked: AtomicBool,
    table: UnsafeCell<Table<K>>,
}

// SAFETY: the table is only reached through `with`, which holds the lock, so
// at most one thread accesses it at a time; moving keys between threads that
// way needs `K: Send`, nothing more (as for `Mutex<T>`).
unsafe impl<K: Send> Send for Shard<K> {}
// SAFETY: as above: shared references only lead to the table under the lock.
unsafe impl<K: Send> Sync for Shard<K> {}

struct Unlock<'a>(&'a AtomicBool);

impl Drop for Unlock<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<K> Shard<K> {
    fn new(cap: usize) -> Self {
        Shard { locked: AtomicBool::new(false), table: UnsafeCell::new(Table::new(cap)) }
    }

    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut Table<K>) -> R) -> R {
        let mut spins = 0u32;
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 100 {
                    spins += 1;
                    spin_loop();
                } else {
                    thread::yield_now();
                }
            }
        }
        // Released on drop, also if `f` unwinds (a key's `Eq` may panic; the
        // table is consistent at every point where user code runs).
        let _unlock = Unlock(&self.locked);
        // SAFETY: this thread holds the lock (the Acquire exchange above
        // succeeded and the Release store in `Unlock` has not run), so no
        // other reference to the table exists while `f` runs.
        self.table.with_mut(|t| f(unsafe { &mut *t }))
    }
}

/// Token buckets by key: one [`Quota`] for every key, at most `max_keys`
/// keys tracked.
///
/// The keys live in a sharded open-addressing table (shard by the hash's low
/// bits, slot by its high bits), seeded [`SeededState`] hashing, one small
/// spin lock per shard held for a probe and the GCRA arithmetic. Per key the
/// table keeps 16 bytes beside the key (hash and TAT) and at most two slots
/// per key, so at most 64 bytes per key with the key's inline part for keys
/// up to 16 bytes inline (`u64`, `Box<[u8]>`), plus the key's heap bytes.
///
/// A key whose bucket has refilled (TAT <= now) carries no information: when
/// a shard is full, its refilled keys are dropped, which changes no answer.
/// If the shard is still full of live keys, the [`FullPolicy`] answers.
/// Requests that need no state (quantity 0, denials of a new key) never
/// insert.
///
/// Keys can be looked up by anything they borrow as: a
/// `KeyedLimiter<Box<[u8]>>` takes `&[u8]`.
///
/// ```
/// use resilience::limit::{FullPolicy, KeyedLimiter, Quota};
/// use resilience::clock::SECOND;
///
/// let limiter: KeyedLimiter<Box<[u8]>> =
///     KeyedLimiter::new(Quota::new(1, 1, SECOND).unwrap(), 10_000, FullPolicy::Deny);
/// assert!(limiter.acquire_at(&b"alice"[..], 2, SECOND).allowed);
/// assert!(!limiter.acquire_at(&b"alice"[..], 1, SECOND).allowed);
/// assert!(limiter.acquire_at(&b"bob"[..], 1, SECOND).allowed);
/// ```
pub struct KeyedLimiter<K, S = SeededState, C = AutoClock> {
    gcra: Gcra,
    shards: Box<[CachePadded<Shard<K>>]>,
    shard_mask: u64,
    /// Whether the hasher's output needs [`spread`]: every hasher but the
    /// crate's own [`SeededState`], whose output is already mixed.
    mix: bool,
    hasher: S,
    clock: C,
    policy: FullPolicy,
    capacity: usize,
    /// Keys tracked in all shards; never above `capacity`.
    keys: AtomicUsize,
    denied_full: AtomicU64,
    allowed_untracked: AtomicU64,
}

impl<K, S, C> std::fmt::Debug for KeyedLimiter<K, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("quota", &self.gcra.quota)
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Default shard count: 16 per CPU, a power of two, at most 1024.
fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cpus * 16).next_power_of_two().min(1024)
}

impl<K: Hash + Eq> KeyedLimiter<K> {
    /// A limiter tracking at most `max_keys` keys, with a random hash seed,
    /// [`AutoClock`] and the default shard count.
    pub fn new(quota: Quota, max_keys: usize, policy: FullPolicy) -> Self {
        let clock = AutoClock::for_window(quota.burst_window());
        Self::with_options(quota, max_keys, policy, default_shards(), SeededState::new(), clock)
    }
}

impl<K: Hash + Eq, S: BuildHasher, C: Clock> KeyedLimiter<K, S, C> {
    /// A limiter with every option: `shards` is rounded up to a power of two
    /// and down to `max_keys` (at least 1).
    pub fn with_options(
        quota: Quota,
        max_keys: usize,
        policy: FullPolicy,
        shards: usize,
        hasher: S,
        clock: C,
    ) -> Self {
        let n = shards.clamp(1, max_keys.max(1)).next_power_of_two();
        let n = if n > max_keys.max(1) { n / 2 } else { n }.max(1);
        // Each shard may hold up to twice its share (plus a little, for small
        // tables): the exact bound is the shared key count, so an unlucky
        // spread of keys over shards does not make the table full early.
        let share = max_keys.div_ceil(n);
        let shard_cap = share.saturating_mul(2).saturating_add(64).min(max_keys);
        let shards: Box<[CachePadded<Shard<K>>]> =
            (0..n).map(|_| CachePadded(Shard::new(shard_cap))).collect();
        KeyedLimiter {
            gcra: Gcra::new(quota),
            shard_mask: n as u64 - 1,
            // `type_name`, not `TypeId`: no `'static` bound on `S`. Two
            // names are equal only for the same type within one build; a
            // false "equal" would only cost spread, never correctness.
            mix: std::any::type_name::<S>() != std::any::type_name::<crate::hash::SeededState>(),
            shards,
            hasher,
            clock,
            policy,
            capacity: max_keys,
            keys: AtomicUsize::new(0),
            denied_full: AtomicU64::new(0),
            allowed_untracked: AtomicU64::new(0),
        }
    }

    /// The quota every key gets.
    pub fn quota(&self) -> &Quota {
        &self.gcra.quota
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Takes `quantity` tokens from `key`'s bucket now.
    #[inline]
    pub fn acquire<Q>(&self, key: &Q, quantity: u64) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        self.acquire_at(key, quantity, self.clock.now())
    }

    /// Takes `quantity` tokens from `key`'s bucket at `now` (same answers
    /// as [`TokenBucket::acquire_at`](super::TokenBucket::acquire_at) on a
    /// bucket per key).
    #[inline]
    pub fn acquire_at<Q>(&self, key: &Q, quantity: u64, now: Nanos) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let hash = self.hash(key);
        self.acquire_hashed(hash, key, quantity, now)
    }

    /// The hasher's output for `key`, mixed unless it is mixed already.
    #[inline(always)]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        let h = self.hasher.hash_one(key);
        if self.mix {
            spread(h)
        } else {
            h
        }
    }

    // Always inlined: with several callers (the C ABI has three) LLVM keeps
    // it out of line, which cost 7 ns of a 26 ns acquire through the C ABI.
    #[inline(always)]
    fn acquire_hashed<Q, A: Answer>(&self, hash: u64, key: &Q, quantity: u64, now: Nanos) -> A
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let full = |d: A| d.when_full(self.policy, &self.denied_full, &self.allowed_untracked);
        match self.try_acquire_hashed::<Q, A>(hash, key, quantity, now) {
            Ok(d) => d,
            // Full of live keys here and in total: refilled keys may wait in
            // other shards; sweep those that are due and try once more.
            Err(_) if self.sweep_due(now) > 0 => {
                self.try_acquire_hashed::<Q, A>(hash, key, quantity, now).unwrap_or_else(full)
            }
            Err(d) => full(d),
        }
    }

    /// Takes `quantity` tokens from `key`'s bucket now if they are there,
    /// answering only yes or no (see [`Denied`]): the grants and the state
    /// are exactly those of [`acquire`](Self::acquire). A full table answers
    /// by the policy: [`FullPolicy::Deny`] gives [`Reason::TableFull`](super::Reason::TableFull),
    /// [`FullPolicy::AllowUntracked`] allows.
    #[inline]
    pub fn check<Q>(&self, key: &Q, quantity: u64) -> Result<(), Denied>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        self.check_at(key, quantity, self.clock.now())
    }

    /// [`check`](Self::check) at time `now`.
    #[inline]
    pub fn check_at<Q>(&self, key: &Q, quantity: u64, now: Nanos) -> Result<(), Denied>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let hash = self.hash(key);
        self.acquire_hashed::<Q, Result<(), Denied>>(hash, key, quantity, now)
    }

    /// Reserves one key in the shared count.
    #[inline]
    fn reserve(&self) -> bool {
        let mut cur = self.keys.load(Ordering::Relaxed);
        loop {
            if cur >= self.capacity {
                return false;
            }
            match self.keys.compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }

    #[inline]
    fn unreserve(&self, n: usize) {
        if n > 0 {
            self.keys.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// The decision, or `Err(decision without room)` when the key is new,
    /// needs state, and there is no room for it. The known-key path is
    /// inlined into the caller (the decision stays in registers); a new key
    /// takes [`acquire_vacant`](Self::acquire_vacant).
    #[inline(always)]
    fn try_acquire_hashed<Q, A: Answer>(&self, hash: u64, key: &Q, quantity: u64, now: Nanos) -> Result<A, A>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let shard = &self.shards[(hash & self.shard_mask) as usize];
        let gcra = &self.gcra;
        shard.with(|t| match t.probe(hash, key) {
            Probe::Found(i) => Ok(step_slot(gcra, t, i, quantity, now)),
            Probe::Vacant => self.acquire_vacant(t, hash, key, quantity, now),
        })
    }

    /// [`acquire_hashed`](Self::acquire_hashed) writing the decision to
    /// `out` (the batch path). A known key's decision is written under the
    /// lock straight into `out`: returned by value through the lock's
    /// closure, the 40-byte decision went through a stack temporary whose
    /// reload stalled on store forwarding (2 ns a key).
    #[inline(always)]
    fn acquire_hashed_into<Q>(&self, hash: u64, key: &Q, quantity: u64, now: Nanos, out: &mut Decision)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let shard = &self.shards[(hash & self.shard_mask) as usize];
        let gcra = &self.gcra;
        let known = shard.with(|t| match t.probe(hash, key) {
            Probe::Found(i) => {
                *out = step_slot(gcra, t, i, quantity, now);
                true
            }
            Probe::Vacant => false,
        });
        if !known {
            // A new key (or one placed meanwhile): the full path, which
            // probes again under the lock.
            *out = self.acquire_hashed(hash, key, quantity, now);
        }
    }

    /// [`try_acquire_hashed`](Self::try_acquire_hashed) for a key the shard
    /// `t` (locked) does not hold: decide from the horizon, and store the key
    /// if the decision leaves state and there is room.
    #[inline(never)]
    fn acquire_vacant<Q, A: Answer>(
        &self,
        t: &mut Table<K>,
        hash: u64,
        key: &Q,
        quantity: u64,
        now: Nanos,
    ) -> Result<A, A>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        let (d, next) = A::step(&self.gcra, t.horizon, now, quantity);
        let Some(next) = next else { return Ok(d) };
        if !self.reserve() {
            let freed = t.sweep_if_due(now);
            self.unreserve(freed);
            if freed == 0 || !self.reserve() {
                return Err(d);
            }
        }
        let (room, freed) = t.make_room(now);
        self.unreserve(freed);
        if !room {
            self.unreserve(1);
            return Err(d);
        }
        t.place(Slot { hash, tat: next, key: key.to_owned().into() });
        t.len += 1;
        t.next_sweep = t.next_sweep.min(next);
        Ok(d)
    }

    /// Sweeps every shard in which a bucket may have refilled; returns how
    /// many keys were dropped.
    fn sweep_due(&self, now: Nanos) -> usize {
        let freed = self.shards.iter().map(|s| s.with(|t| t.sweep_if_due(now))).sum();
        self.unreserve(freed);
        freed
    }

    /// [`acquire_at`](Self::acquire_at) for each key in turn, writing
    /// `out[i]` for `keys[i]`; handles `min(keys.len(), out.len())` keys and
    /// returns that count. Hashes a block of keys before taking any lock.
    pub fn acquire_many<Q>(&self, keys: &[&Q], quantity: u64, now: Nanos, out: &mut [Decision]) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<K>,
    {
        const BLOCK: usize = 16;
        let n = keys.len().min(out.len());
        let mut hashes = [0u64; BLOCK];
        for (keys, out) in keys[..n].chunks(BLOCK).zip(out[..n].chunks_mut(BLOCK)) {
            for (h, k) in hashes.iter_mut().zip(keys) {
                *h = self.hash(*k);
            }
            for ((k, o), &h) in keys.iter().zip(out.iter_mut()).zip(&hashes) {
                self.acquire_hashed_into(h, *k, quantity, now, o);
            }
        }
        n
    }

    /// Drops every key whose bucket has refilled at `now`, in every shard;
    /// returns how many. (Full shards do this by themselves; a host with
    /// idle time may call it to free memory early.)
    pub fn reclaim_at(&self, now: Nanos) -> usize {
        let freed = self.shards.iter().map(|s| s.with(|t| t.sweep(now))).sum();
        self.unreserve(freed);
        freed
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the tables (slots; not the keys' heap bytes).
    pub fn memory_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.with(|t| t.bytes())).sum::<usize>()
            + self.shards.len() * std::mem::size_of::<CachePadded<Shard<K>>>()
    }

    /// Counters.
    pub fn stats(&self) -> KeyedStats {
        let mut st = KeyedStats {
            capacity: self.capacity,
            denied_full: self.denied_full.load(Ordering::Relaxed),
            allowed_untracked: self.allowed_untracked.load(Ordering::Relaxed),
            ..KeyedStats::default()
        };
        for s in self.shards.iter() {
            s.with(|t| {
                st.keys += t.len;
                st.reclaimed += t.reclaimed;
                st.sweeps += t.sweeps;
            });
        }
        st
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SECOND};
    use crate::limit::Reason;
    use std::collections::HashMap;
    use std::mem::size_of;

    fn limiter(
        max_keys: usize,
        policy: FullPolicy,
        shards: usize,
    ) -> KeyedLimiter<u64, SeededState, ManualClock> {
        let q = Quota::new(2, 1, SECOND).unwrap();
        KeyedLimiter::with_options(
            q,
            max_keys,
            policy,
            shards,
            SeededState::with_seed(7),
            ManualClock::default(),
        )
    }

    #[test]
    fn slot_sizes_stay_within_64_bytes_per_key() {
        assert_eq!(size_of::<Option<Slot<u64>>>(), 32);
        assert_eq!(size_of::<Option<Slot<Box<[u8]>>>>(), 32);
        assert_eq!(size_of::<Option<Slot<Box<str>>>>(), 32);
        assert_eq!(size_of::<Option<Slot<Vec<u8>>>>(), 40);
        // Measured: at most two 32-byte slots per key, whatever the fill.
        let l = limiter(100_000, FullPolicy::Deny, 16);
        for n in [1_000u64, 10_000, 37_000, 100_000] {
            for k in l.len() as u64..n {
                assert!(l.acquire_at(&k, 1, SECOND).allowed);
            }
            let per_key = (l.memory_bytes() - 16 * size_of::<CachePadded<Shard<u64>>>()) as f64 / n as f64;
            assert!(per_key <= 64.0, "{per_key} bytes per key at {n} keys");
        }
        assert_eq!(l.len(), 100_000);
    }

    #[test]
    fn byte_keys_are_found_by_slice() {
        let l: KeyedLimiter<Box<[u8]>> =
            KeyedLimiter::new(Quota::new(0, 1, SECOND).unwrap(), 16, FullPolicy::Deny);
        assert!(l.acquire_at(&b"k"[..], 1, SECOND).allowed);
        assert!(!l.acquire_at(&b"k"[..], 1, SECOND).allowed);
        let v: KeyedLimiter<Vec<u8>> =
            KeyedLimiter::new(Quota::new(0, 1, SECOND).unwrap(), 16, FullPolicy::Deny);
        assert!(v.acquire_at(&b"k"[..], 1, SECOND).allowed);
        assert!(!v.acquire_at(&b"k"[..], 1, SECOND).allowed);
        let s: KeyedLimiter<String> =
            KeyedLimiter::new(Quota::new(0, 1, SECOND).unwrap(), 16, FullPolicy::Deny);
        assert!(s.acquire_at("k", 1, SECOND).allowed);
        assert!(!s.acquire_at("k", 1, SECOND).allowed);
    }

    /// An identity hasher (the nohash pattern for integer keys).
    #[derive(Clone, Default)]
    struct Identity;
    struct IdentityHasher(u64);
    impl std::hash::Hasher for IdentityHasher {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, _: &[u8]) {
            unreachable!("u64 keys only")
        }
        fn write_u64(&mut self, v: u64) {
            self.0 = v;
        }
    }
    impl BuildHasher for Identity {
        type Hasher = IdentityHasher;
        fn build_hasher(&self) -> IdentityHasher {
            IdentityHasher(0)
        }
    }

    #[test]
    fn a_weak_hasher_does_not_make_the_table_full_early() {
        let l: KeyedLimiter<u64, Identity, ManualClock> = KeyedLimiter::with_options(
            Quota::new(0, 1, SECOND).unwrap(),
            10_000,
            FullPolicy::Deny,
            64,
            Identity,
            ManualClock::new(SECOND),
        );
        for i in 0..5_000u64 {
            let d = l.acquire(&(i * 64), 1);
            assert!(d.allowed, "key {} of 5000 at capacity 10000: {:?}", i * 64, d.reason);
        }
        assert_eq!(l.len(), 5_000);
    }

    #[test]
    fn full_table_reclaims_refilled_keys_then_applies_the_policy() {
        for policy in [FullPolicy::Deny, FullPolicy::AllowUntracked] {
            let l = limiter(4, policy, 1);
            let t0 = 10 * SECOND;
            for k in 0..4u64 {
                assert!(l.acquire_at(&k, 3, t0).allowed);
            }
            // Full of live keys: the policy answers, and the event is counted.
            let d = l.acquire_at(&9, 1, t0);
            match policy {
                FullPolicy::Deny => assert_eq!((d.allowed, d.reason), (false, Reason::TableFull)),
                FullPolicy::AllowUntracked => {
                    assert_eq!((d.allowed, d.reason, d.remaining), (true, Reason::Untracked, 2))
                }
            }
            // Peeks and denials of new keys need no room.
            assert_eq!(l.acquire_at(&9, 0, t0).reason, Reason::Allowed);
            assert_eq!(l.acquire_at(&9, 4, t0).reason, Reason::ExceedsLimit);
            // After 3 s every bucket has refilled: keys are reclaimed and the
            // new key is tracked, with the answer a fresh bucket gives.
            let d = l.acquire_at(&9, 1, t0 + 3 * SECOND);
            assert_eq!((d.allowed, d.reason, d.remaining), (true, Reason::Allowed, 2));
            let st = l.stats();
            assert_eq!((st.keys, st.reclaimed, st.capacity), (1, 4, 4));
            assert_eq!(st.denied_full + st.allowed_untracked, 1);
            // Reclaimed keys come back as full buckets: nothing changed.
            assert_eq!(l.acquire_at(&0, 3, t0 + 3 * SECOND).remaining, 0);
        }
    }

    #[test]
    fn reclaiming_never_makes_an_earlier_clock_more_generous() {
        let l = limiter(1, FullPolicy::Deny, 1);
        assert!(l.acquire_at(&1, 3, 10 * SECOND).allowed); // tat = 13 s
        assert!(l.acquire_at(&2, 1, 13 * SECOND).allowed); // reclaims 1
        assert_eq!(l.stats().reclaimed, 1);
        // Key 1 at 11 s would have had 0 tokens; reclaimed it must not have 3.
        let d = l.acquire_at(&1, 3, 11 * SECOND);
        assert!(!d.allowed);
    }

    #[test]
    fn matches_independent_buckets() {
        let l = limiter(1 << 16, FullPolicy::Deny, 8);
        let gcra = Gcra::new(*l.quota());
        let mut model: HashMap<u64, Nanos> = HashMap::new();
        let mut x = 12345u64;
        let mut now = SECOND;
        let mut out = vec![Decision::EMPTY; 8];
        for i in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            now += (x >> 40) % (SECOND / 4);
            let key = (x >> 20) % 500;
            let q = (x >> 8) % 5;
            let expect = |model: &mut HashMap<u64, Nanos>, key: u64| {
                let tat = model.entry(key).or_insert(0);
                let (d, next) = gcra.decide(*tat, now, q);
                if let Some(n) = next {
                    *tat = n;
                }
                d
            };
            if i % 10 == 0 {
                let keys: Vec<u64> = (0..8).map(|j| (key + j * 7) % 500).collect();
                let refs: Vec<&u64> = keys.iter().collect();
                assert_eq!(l.acquire_many(&refs, q, now, &mut out), 8);
                for (k, d) in keys.iter().zip(&out) {
                    assert_eq!(*d, expect(&mut model, *k));
                }
            } else {
                assert_eq!(l.acquire_at(&key, q, now), expect(&mut model, key), "step {i}");
            }
        }
        assert_eq!(l.acquire_many::<u64>(&[&1, &2], 1, now, &mut []), 0);
    }

    #[test]
    fn threads_share_keys_exactly() {
        let l = std::sync::Arc::new(limiter(10_000, FullPolicy::Deny, 4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = std::sync::Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..20_000u64).filter(|i| l.acquire_at(&(i % 1000), 1, SECOND).allowed).count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 3 * 1000);
        assert_eq!(l.len(), 1000);
    }

    #[test]
    fn zero_keys_and_odd_shard_counts_do_not_panic() {
        let l = limiter(0, FullPolicy::AllowUntracked, 0);
        assert_eq!(l.acquire_at(&1, 1, SECOND).reason, Reason::Untracked);
        let l = limiter(3, FullPolicy::Deny, 1000);
        assert_eq!(l.shards.len(), 2);
        let tracked = (0..100u64).filter(|k| l.acquire_at(k, 1, SECOND).allowed).count();
        assert_eq!(tracked, 3);
        assert_eq!(l.len(), 3);
        assert_eq!(l.stats().denied_full, 97);
        assert_eq!(l.reclaim_at(100 * SECOND), 3);
        assert!(l.is_empty());
    }
}
