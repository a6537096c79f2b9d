//! The multi-threaded cache: [`Table`]s in shards, each behind a short lock,
//! with lock-free reads while a shard is read-mostly.
//!
//! A key's hash picks its shard (bits 32.. of the hash, so the table's own
//! bucket and tag bits stay independent). Each shard is one [`Table`] behind
//! a spin lock padded to its own cache lines: an uncontended lock is one
//! compare-and-swap to take and one plain store to release, and every
//! critical section is one table operation (a lookup and a `clone`, or an
//! insert with its evictions), so contention is short. A waiter spins
//! briefly, then yields its time slice.
//!
//! Reads go lock-free while a shard's read bias is on (see the [`bias`]
//! module): after 64 locked reads in a row with no write
//! between, gets, `contains`, `len` and `stats` share the table without the
//! lock, writing only a cache line of the calling thread's own (so two
//! cores reading one shard no longer trade its lock's line). A hit of
//! `get_or_insert_with` is a read too (lock-free, or under the lock beside
//! the lock-free readers when the calling thread has no reader slot): only
//! a miss that starts a load writes. A sweep of a shard where no deadline
//! can have passed yet is a read. A lock-free
//! hit bumps the entry's frequency with a plain atomic store, and a
//! lock-free read of an expired entry is a miss that leaves the entry for
//! the next write or [`sweep_expired`](Cache::sweep_expired) to remove. The
//! first write revokes the bias: it waits for the readers in flight (a
//! `membarrier` on Linux, microseconds), and the bias stays off for 256
//! times that long, so revocations cost write-heavy use little.
//!
//! Callbacks that run under a shard lock or inside a lock-free read —
//! `Hash`/`Eq` of the key, `Clone` of the value, the weigher, the clock, the
//! closure given to [`get_with`](Cache::get_with) — must not call back into
//! the same cache (a write would deadlock; a read from inside a lock-free
//! read takes the lock, so that its thread's announcement stays up) and
//! should be short. Replaced values and evicted entries are dropped after
//! the lock is released.
//!
//! As with any lock, `fork` while other threads read or write a cache
//! leaves their reads and locks in progress for ever in the child: a child
//! process must not use a cache that other threads were using at the fork.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use super::bias::{self, ReadGuard, Readers};
use super::table::{Deferred, Inserted, Stats, Table};
use super::ttl::{self, LazyNow, TimeSource};
use super::weigher::{CapacityError, Limits, Weigher};
use crate::clock::{self, Clock, MonotonicClock, Nanos};
use crate::hash::SeededState;
use crate::sync::{
    spin_loop, thread, Arc, AtomicBool, AtomicUsize, CachePadded, Condvar, Mutex, Ordering, UnsafeCell,
};
use std::sync::atomic::{AtomicU32 as StdAtomicU32, AtomicU64 as StdAtomicU64, Ordering as StdOrdering};

/// The handle to the time source. A `std` `Arc` even under loom: the clock is
/// not part of what the model checks, and loom's `Arc` cannot hold a `dyn`.
pub type SharedClock = std::sync::Arc<dyn Clock>;

/// [`LazyNow`] over the cache's clock handle: the handle is dereferenced
/// only when an entry with a deadline asks for the time, so a read of a
/// table without deadlines does not even compute the clock's address.
struct ClockNow<'a> {
    clock: &'a SharedClock,
    at: Option<Nanos>,
}

impl<'a> ClockNow<'a> {
    #[inline(always)]
    fn new(clock: &'a SharedClock) -> Self {
        Self { clock, at: None }
    }
}

impl ttl::TimeSource for ClockNow<'_> {
    #[inline]
    fn now(&mut self) -> Nanos {
        *self.at.get_or_insert_with(|| self.clock.now())
    }
}

/// A spin lock (CAS to take, store to release, spin then yield on
/// contention) with a read bias: while `bias` is set, readers share the
/// value without taking the lock (see [`bias`](super::bias)).
#[repr(C)] // the lock word first, beside the counters a locked hit writes
pub(crate) struct ShardLock<T> {
    locked: AtomicBool,
    /// Set and cleared only by the lock's holder; read by lock-free readers.
    bias: AtomicBool,
    /// Reads in a row that took the lock with the bias off, no write between
    /// (only the holder touches it: a `std` atomic, outside the loom model).
    streak: StdAtomicU32,
    value: UnsafeCell<T>,
    /// The bias may not be turned on before this ([`bias::now_ns`]).
    reenable_at: StdAtomicU64,
    readers: Readers,
    /// This shard's index, as readers announce it.
    id: usize,
}

// SAFETY: the lock gives `&mut T` to one thread at a time (the CAS that takes
// it is Acquire, the store that releases it is Release, so each holder sees
// the previous holder's writes). While the bias is on, several threads read
// through `&T` at once and no holder takes `&mut T` (a holder revokes the
// bias and waits for every reader first), so `T` must also be `Sync`.
unsafe impl<T: Send + Sync> Sync for ShardLock<T> {}

struct Unlock<'a>(&'a AtomicBool);

impl Drop for Unlock<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<T> ShardLock<T> {
    pub(crate) fn new(value: T, readers: Readers, id: usize) -> Self {
        Self {
            locked: AtomicBool::new(false),
            bias: AtomicBool::new(false),
            streak: StdAtomicU32::new(0),
            value: UnsafeCell::new(value),
            reenable_at: StdAtomicU64::new(0),
            readers,
            id,
        }
    }

    #[inline]
    fn lock(&self) -> Unlock<'_> {
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
        Unlock(&self.locked)
    }

    /// Runs `f` with exclusive access to the value (released on unwind too),
    /// revoking the read bias first if it is on. A write: it also resets the
    /// read streak that turns the bias on.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let _unlock = self.lock();
        // Relaxed: only lock holders write `bias`, and the lock orders them.
        if self.bias.load(Ordering::Relaxed) {
            self.revoke();
        }
        self.streak.store(0, StdOrdering::Relaxed);
        // SAFETY: this thread holds the lock until `_unlock` drops and the
        // bias is off with no lock-free reader left (`revoke`), so no other
        // reference to the value exists meanwhile.
        self.value.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// A read that could not go lock-free: under the lock, `exclusive` with
    /// `&mut T` if the bias is off (then perhaps turns the bias on), or
    /// `shared` with `&T` beside the lock-free readers if it is on (this
    /// thread has no reader slot, or the bias came on meanwhile).
    #[inline]
    pub(crate) fn read<A, R>(
        &self,
        arg: A,
        exclusive: impl FnOnce(&mut T, A) -> R,
        shared: impl FnOnce(&T, A) -> R,
    ) -> R {
        self.read_or_write(
            arg,
            |t, arg| Ok(exclusive(t, arg)),
            |t, arg| Ok(shared(t, arg)),
            |_, _| unreachable!("a read never asks to write"),
        )
    }

    /// A read that may turn out to need a write (a miss that must start a
    /// load), under the lock: `exclusive` with `&mut T` if the bias is off,
    /// `shared` with `&T` beside the lock-free readers if it is on. When the
    /// one that ran answers `Ok`, that was a read (the bias stays on, or the
    /// read counts toward turning it on); on `Err` the bias is revoked if on
    /// and `write` runs with `&mut T`, as [`with`](Self::with) would.
    #[inline]
    pub(crate) fn read_or_write<A, R>(
        &self,
        arg: A,
        exclusive: impl FnOnce(&mut T, A) -> Result<R, A>,
        shared: impl FnOnce(&T, A) -> Result<R, A>,
        write: impl FnOnce(&mut T, A) -> R,
    ) -> R {
        let _unlock = self.lock();
        let arg = if self.bias.load(Ordering::Relaxed) {
            // SAFETY: holding the lock excludes every writer; the other
            // threads reading now (lock-free) hold `&T` too.
            match self.value.with(|p| shared(unsafe { &*p }, arg)) {
                Ok(r) => return r,
                Err(arg) => {
                    self.revoke();
                    arg
                }
            }
        } else {
            // SAFETY: the lock is held and the bias is off (and was off for
            // the last holder's release, so no lock-free reader remains): no
            // other reference to the value exists.
            match self.value.with_mut(|p| exclusive(unsafe { &mut *p }, arg)) {
                Ok(r) => {
                    self.count_read();
                    return r;
                }
                Err(arg) => arg,
            }
        };
        self.streak.store(0, StdOrdering::Relaxed);
        // SAFETY: the lock is held and the bias is off with no lock-free
        // reader left (it was off for the last holder's release, or `revoke`
        // just waited for the readers): no other reference exists.
        self.value.with_mut(|p| write(unsafe { &mut *p }, arg))
    }

    /// Counts a read that held the lock with the bias off; after
    /// [`bias::ENABLE_AFTER`] in a row (and once the last revocation's
    /// inhibition has passed) turns the bias on. The lock is held.
    #[inline]
    fn count_read(&self) {
        let streak = self.streak.load(StdOrdering::Relaxed) + 1;
        if streak < bias::ENABLE_AFTER {
            self.streak.store(streak, StdOrdering::Relaxed);
        } else {
            self.streak.store(0, StdOrdering::Relaxed);
            if bias::now_ns() >= self.reenable_at.load(StdOrdering::Relaxed) {
                // Release: a reader that sees it on sees every write before.
                self.bias.store(true, Ordering::Release);
            }
        }
    }

    /// Runs a read-only `f` on the value: lock-free if the bias is on, else
    /// under the lock (not counted as a read toward turning the bias on).
    pub(crate) fn peek<R>(&self, f: impl Fn(&T) -> R) -> R {
        if let Some(r) = self.read_lock_free(&self.readers, self.id, |t, _| f(t)) {
            return r;
        }
        let _unlock = self.lock();
        // SAFETY: the lock excludes writers; lock-free readers (if the bias
        // is on) hold `&T` as this does.
        self.value.with(|p| f(unsafe { &*p }))
    }

    /// Reads the value without the lock if the bias is on: `f` runs with
    /// `&T` and this thread's read guard; `None` when the bias is off or this
    /// thread has no reader slot (then take the lock). `readers` and `id`
    /// are this lock's own: the cache passes its copies, which sit on the
    /// line a get reads anyway, rather than this lock's, on its last line.
    #[inline(always)]
    pub(crate) fn read_lock_free<R>(
        &self,
        readers: &Readers,
        id: usize,
        f: impl FnOnce(&T, &ReadGuard<'_>) -> R,
    ) -> Option<R> {
        debug_assert!(id == self.id);
        if !self.bias.load(Ordering::Relaxed) {
            return None;
        }
        let guard = readers.enter(id)?;
        // Acquire: pairs with the Release that turned the bias on, so the
        // table reads below see every write made before.
        if !self.bias.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: this thread announced itself (`enter`, then the light
        // fence) before seeing the bias on, so a writer that turns it off
        // afterwards waits for `guard` to drop before taking `&mut T`
        // (`revoke`); until then every user of the value holds `&T`.
        Some(self.value.with(|p| f(unsafe { &*p }, &guard)))
    }

    /// Turns the bias off and waits for the lock-free readers (the lock is
    /// held). Timed, so that the bias stays off for long enough that
    /// revocations cost writers a small share of their time.
    #[cold]
    fn revoke(&self) {
        let t0 = bias::now_ns();
        self.bias.store(false, Ordering::Relaxed);
        bias::heavy_fence();
        self.readers.wait_for(self.id);
        let t1 = bias::now_ns();
        let off = (t1 - t0).saturating_mul(bias::INHIBIT_FACTOR);
        self.reenable_at.store(t1.saturating_add(off), StdOrdering::Relaxed);
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 100 {
                    spins += 1;
                    spin_loop();
                } else {
                    thread::yield_now();
                }
            }
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }
}

/// What a finished load left for the callers waiting on it.
enum LoadState<V> {
    Running,
    Value(V),
    Error(std::sync::Arc<dyn std::any::Any + Send + Sync>),
    /// The loader panicked (or its value could not be published): waiters
    /// retry, and one of them becomes the loader.
    Abandoned,
}

/// Rendezvous between one loader and the callers that asked for the same key.
struct LoadSlot<V> {
    state: Mutex<LoadState<V>>,
    done: Condvar,
}

impl<V> LoadSlot<V> {
    fn new() -> Self {
        Self { state: Mutex::new(LoadState::Running), done: Condvar::new() }
    }

    fn finish(&self, outcome: LoadState<V>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = outcome;
        drop(s);
        self.done.notify_all();
    }
}

impl<V: Clone> LoadSlot<V> {
    /// Blocks until the loader finishes; clones its outcome.
    fn wait(&self) -> LoadState<V> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while matches!(*s, LoadState::Running) {
            s = self.done.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        match &*s {
            LoadState::Value(v) => LoadState::Value(v.clone()),
            LoadState::Error(e) => LoadState::Error(e.clone()),
            _ => LoadState::Abandoned,
        }
    }
}

struct Load<K, V> {
    hash: u64,
    key: K,
    slot: Arc<LoadSlot<V>>,
    /// The key was written or removed (or the cache cleared) while the load
    /// ran: the newer state wins, so the loaded value is not stored.
    superseded: bool,
}

/// A shard on its own cache lines.
type PaddedShard<K, V, S> = CachePadded<ShardLock<Shard<K, V, S>>>;

#[repr(C)] // the table first (see `ShardLock`)
struct Shard<K, V, S> {
    table: Table<K, V, S>,
    /// Loads in flight for keys of this shard (few: at most one per thread).
    loads: Vec<Load<K, V>>,
}

impl<K, V, S> Shard<K, V, S> {
    /// Marks the load of `key`, if one runs, as superseded by a write.
    #[inline]
    fn supersede<Q>(&mut self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        for l in self.loads.iter_mut().filter(|l| l.hash == hash && l.key.borrow() == key) {
            l.superseded = true;
        }
    }
}

/// A concurrent, bounded, sharded cache with S3-FIFO eviction and TTL.
///
/// It is `Sync` when `K` and `V` are `Send + Sync` (lock-free readers share
/// entries). `V: Clone` because reads return a copy (use `Arc<T>` for large values, or
/// [`get_with`](Self::get_with) to read in place). Built by
/// [`Cache::builder`]; see the [module documentation](super) for the design.
pub struct Cache<K, V, S = SeededState> {
    shards: Box<[PaddedShard<K, V, S>]>,
    /// `shards.len() - 1`; the length is a power of two (the builder
    /// refuses any other), so `hash & mask` indexes `shards`.
    mask: usize,
    hasher: S,
    clock: SharedClock,
    default_ttl: Option<Nanos>,
    sweep_cursor: AtomicUsize,
    readers: Readers,
}

/// Builds a [`Cache`]; every bad setting is reported by [`build`](Self::build).
pub struct CacheBuilder<K, V, S = SeededState> {
    max_entries: Option<usize>,
    max_weight: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    default_ttl: Option<Duration>,
    shards: Option<usize>,
    clock: Option<SharedClock>,
    hasher: S,
}

impl<K, V, S> std::fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_entries", &self.max_entries)
            .field("max_weight", &self.max_weight)
            .field("weigher", &self.weigher.is_some())
            .field("default_ttl", &self.default_ttl)
            .field("shards", &self.shards)
            .finish()
    }
}

/// Largest shard count.
pub const MAX_SHARDS: usize = 1 << 16;

/// Default shard count: four per CPU, rounded up to a power of two, at most
/// 1024, and fewer when that would leave a shard under 64 entries or under
/// 64 units of weight.
pub fn default_shards(max_entries: Option<usize>, max_weight: Option<u64>) -> usize {
    // A query, not a thread: `std` directly even under loom.
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut n = (cpus * 4).next_power_of_two().min(1024);
    let small =
        |n: usize| max_entries.is_some_and(|m| m / n < 64) || max_weight.is_some_and(|w| w / (n as u64) < 64);
    while n > 1 && small(n) {
        n /= 2;
    }
    n
}

/// Shard `i`'s part of a limit split over `shards`: the parts differ by at
/// most one and add up to exactly `limit`.
fn share(limit: u64, shards: usize, i: usize) -> u64 {
    let n = shards as u64;
    limit / n + u64::from((i as u64) < limit % n)
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// A builder with no limits yet (set `max_entries` and/or `max_weight`).
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder {
            max_entries: None,
            max_weight: None,
            weigher: None,
            default_ttl: None,
            shards: None,
            clock: None,
            hasher: SeededState::new(),
        }
    }

    /// A cache of at most `max_entries` entries with default settings.
    pub fn new(max_entries: usize) -> Result<Self, CapacityError> {
        Self::builder().max_entries(max_entries).build()
    }
}

impl<K, V, S> CacheBuilder<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// Most entries held at once, in all (divided among the shards, whose
    /// parts differ by at most one).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// Most total weight held at once, in all (divided among the shards, so
    /// one entry may weigh at most `max_weight / shards`, rounded down).
    pub fn max_weight(mut self, w: u64) -> Self {
        self.max_weight = Some(w);
        self
    }

    /// The weight of an entry; a pure function (see
    /// [`weigher`](super::weigher)). Without one, every entry weighs 1.
    pub fn weigher(mut self, f: Weigher<K, V>) -> Self {
        self.weigher = Some(f);
        self
    }

    /// Time to live of entries inserted without an explicit one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Number of shards: a power of two (default: [`default_shards`]).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }

    /// The clock for TTLs (default: the monotonic clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The key hasher (default: [`SeededState::new`], a random seed).
    pub fn hasher<S2: BuildHasher + Clone>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            max_entries: self.max_entries,
            max_weight: self.max_weight,
            weigher: self.weigher,
            default_ttl: self.default_ttl,
            shards: self.shards,
            clock: self.clock,
            hasher,
        }
    }

    /// Builds the cache, or says which setting is wrong.
    pub fn build(self) -> Result<Cache<K, V, S>, CapacityError> {
        let limits = Limits { max_entries: self.max_entries, max_weight: self.max_weight };
        match limits.validate() {
            Err(CapacityError::TooManyEntries) => {}
            other => other?,
        }
        let default_ttl = match self.default_ttl {
            Some(d) if d.is_zero() => return Err(CapacityError::ZeroTtl),
            d => d.map(clock::nanos),
        };
        let shards = match self.shards {
            Some(n) if n == 0 || !n.is_power_of_two() || n > MAX_SHARDS => {
                return Err(CapacityError::BadShardCount)
            }
            Some(n) => n,
            None => default_shards(self.max_entries, self.max_weight),
        };
        if self.max_entries.is_some_and(|m| m < shards) || self.max_weight.is_some_and(|w| w < shards as u64)
        {
            return Err(CapacityError::MoreShardsThanEntries);
        }
        let readers = Readers::new();
        let mut v = Vec::with_capacity(shards);
        for i in 0..shards {
            // Exact shares, so the whole cache never holds more than asked.
            let per_shard = Limits {
                max_entries: self.max_entries.map(|m| share(m as u64, shards, i) as usize),
                max_weight: self.max_weight.map(|w| share(w, shards, i)),
            };
            let table = Table::with_limits(per_shard, self.weigher, self.hasher.clone())?;
            v.push(CachePadded(ShardLock::new(Shard { table, loads: Vec::new() }, readers.clone(), i)));
        }
        Ok(Cache {
            shards: v.into_boxed_slice(),
            mask: shards - 1,
            hasher: self.hasher,
            clock: self.clock.unwrap_or_else(|| std::sync::Arc::new(MonotonicClock)),
            default_ttl,
            sweep_cursor: AtomicUsize::new(0),
            readers,
        })
    }
}

/// Unregisters a load and wakes its waiters if the loader unwinds.
struct LoadGuard<'a, K, V, S> {
    shard: &'a ShardLock<Shard<K, V, S>>,
    slot: &'a Arc<LoadSlot<V>>,
    armed: bool,
}

impl<K, V, S> Drop for LoadGuard<'_, K, V, S> {
    fn drop(&mut self) {
        if self.armed {
            let slot = self.slot;
            let load = self.shard.with(|s| {
                let at = s.loads.iter().position(|l| Arc::ptr_eq(&l.slot, slot));
                at.map(|i| s.loads.swap_remove(i))
            });
            drop(load);
            slot.finish(LoadState::Abandoned);
        }
    }
}

enum Step<V> {
    Hit(V),
    Wait(Arc<LoadSlot<V>>),
    Load(Arc<LoadSlot<V>>),
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    #[inline(always)]
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.mask
    }

    #[inline(always)]
    fn shard(&self, hash: u64) -> &ShardLock<Shard<K, V, S>> {
        self.shard_at(self.shard_index(hash))
    }

    /// Shard `id`, an index from [`shard_index`](Self::shard_index).
    #[inline(always)]
    fn shard_at(&self, id: usize) -> &ShardLock<Shard<K, V, S>> {
        debug_assert!(id < self.shards.len());
        // SAFETY: `shard_index` masks with `mask`, which is the shard count
        // (a power of two, fixed at build) minus one.
        unsafe { self.shards.get_unchecked(id) }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The clock the cache reads for TTLs.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// A copy of the value for `key`, if present and not expired.
    #[inline(always)]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_with(key, V::clone)
    }

    /// [`get`](Self::get) at time `now`.
    #[inline]
    pub fn get_at<Q>(&self, key: &Q, now: Nanos) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_with_at(key, now, V::clone)
    }

    /// Runs `f` on the value for `key` in place (no clone), under the shard
    /// lock or as a lock-free reader: keep `f` short and do not touch the
    /// cache from it (a writer of the shard waits for it to return).
    #[inline(always)]
    pub fn get_with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.get_hashed_with(hash, key, ClockNow::new(&self.clock), f)
    }

    /// [`get_with`](Self::get_with) at time `now`.
    #[inline]
    pub fn get_with_at<Q, R>(&self, key: &Q, now: Nanos, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.get_hashed_with(hash, key, now, f)
    }

    /// Runs `f` on the shard of `hash` as a lock-free reader, if its bias is
    /// on and this thread has a reader slot.
    #[inline(always)]
    fn lock_free<R>(&self, hash: u64, f: impl FnOnce(&Shard<K, V, S>, &ReadGuard<'_>) -> R) -> Option<R> {
        let id = self.shard_index(hash);
        self.shard_at(id).read_lock_free(&self.readers, id, f)
    }

    /// A get: lock-free while the shard's read bias is on, else under the
    /// lock. A lock-free read counts its hit or miss in this thread's slot
    /// and leaves an expired entry for a writer or a sweep to remove.
    #[inline(always)]
    fn get_hashed_with<Q, R, T>(&self, hash: u64, key: &Q, mut time: T, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: ttl::TimeSource,
    {
        let mut f = Some(f);
        let fast = self.lock_free(hash, |s, guard| match s.table.get_shared(hash, key, &mut time) {
            Some(v) => {
                guard.hit();
                f.take().map(|f| f(v))
            }
            None => {
                guard.miss();
                None
            }
        });
        if let Some(r) = fast {
            return r;
        }
        let f = f?; // `None` only if `f` ran (and then `fast` was `Some`)
        self.get_locked(hash, key, time, f)
    }

    /// The rest of [`get_hashed_with`](Self::get_hashed_with) when the read
    /// could not go lock-free: out of line, so that the lock-free path
    /// inlines into its caller short.
    #[inline(never)]
    fn get_locked<Q, R, T>(&self, hash: u64, key: &Q, time: T, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: ttl::TimeSource,
    {
        let readers = &self.readers;
        // An entry found expired is removed under the lock, dropped after.
        let mut expired = None;
        self.shard(hash).read(
            (time, f),
            |s, (time, f)| s.table.get_hashed_into(hash, key, time, &mut expired).map(f),
            |s, (time, f)| {
                let found = s.table.get_shared(hash, key, time);
                readers.count_locked(found.is_some());
                found.map(f)
            },
        )
    }

    /// True when `key` has a live entry (not counted as a hit or a miss).
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.contains_hashed(hash, key, ClockNow::new(&self.clock))
    }

    /// [`contains`](Self::contains) at time `now`.
    pub fn contains_at<Q>(&self, key: &Q, now: Nanos) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.contains_hashed(hash, key, now)
    }

    fn contains_hashed<Q, T>(&self, hash: u64, key: &Q, mut time: T) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        T: ttl::TimeSource,
    {
        if let Some(found) = self.lock_free(hash, |s, _| s.table.peek_hashed(hash, key, &mut time).is_some())
        {
            return found;
        }
        self.shard(hash).read(
            time,
            |s, time| s.table.peek_hashed(hash, key, time).is_some(),
            |s, time| s.table.peek_hashed(hash, key, time).is_some(),
        )
    }

    /// Stores `key -> value` with the default TTL (if any).
    pub fn insert(&self, key: K, value: V) {
        let ttl = self.default_ttl;
        self.insert_inner(key, value, ttl, None);
    }

    /// Stores `key -> value` with time to live `ttl` (`None`: never expires,
    /// whatever the default).
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Option<Duration>) {
        self.insert_inner(key, value, ttl.map(clock::nanos), None);
    }

    /// Stores `key -> value` at time `now` with time to live `ttl` in
    /// nanoseconds (`None`: never expires).
    pub fn insert_at(&self, key: K, value: V, ttl: Option<Nanos>, now: Nanos) {
        self.insert_inner(key, value, ttl, Some(now));
    }

    /// [`insert_with_ttl`](Self::insert_with_ttl) with the TTL in
    /// nanoseconds, saying whether the entry was stored: `false` when it
    /// weighs more than a shard's weight budget (`max_weight / shards`) or is
    /// born expired; any previous entry for the key is then removed too.
    pub fn try_insert(&self, key: K, value: V, ttl: Option<Nanos>) -> bool {
        self.insert_inner(key, value, ttl, None)
    }

    /// [`try_insert`](Self::try_insert) at time `now`.
    pub fn try_insert_at(&self, key: K, value: V, ttl: Option<Nanos>, now: Nanos) -> bool {
        self.insert_inner(key, value, ttl, Some(now))
    }

    /// Stores the entry; returns whether it was stored (not rejected).
    fn insert_inner(&self, key: K, value: V, ttl: Option<Nanos>, now: Option<Nanos>) -> bool {
        let hash = self.hasher.hash_one(&key);
        // With a TTL the clock is read here, outside the lock.
        let mut time = LazyNow::or_known(&*self.clock, now);
        let expires = ttl::deadline(ttl.map_or(0, |_| time.now()), ttl);
        // The replaced value and the evicted entries are dropped after the
        // lock is released (in this order).
        let mut evicted = Deferred::new();
        let old = self.shard(hash).with(|s| {
            if !s.loads.is_empty() {
                s.supersede(hash, &key);
            }
            s.table.insert_evicting(hash, key, value, expires, time, &mut evicted)
        });
        let stored = !matches!(old, Inserted::Rejected(_));
        drop(old);
        drop(evicted);
        stored
    }

    /// Removes `key`, returning its value (expired or not).
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.shard(hash)
            .with(|s| {
                if !s.loads.is_empty() {
                    s.supersede(hash, key);
                }
                s.table.remove_hashed(hash, key)
            })
            .map(|(_, v)| v)
    }

    /// The value for `key`, loading it with `load` on a miss. Only one load
    /// per key runs at a time: concurrent callers for the same key wait for
    /// it and get its value, or its error (the same `Arc<E>`). A loaded value
    /// is stored with the default TTL. If the loader panics, its waiters are
    /// woken and one of them loads instead; a waiter whose error type differs
    /// from the loader's also loads itself. If the key is written or removed,
    /// or the cache cleared, while the load runs, that newer state wins: the
    /// loaded value goes to the caller and its waiters but is not stored. Do
    /// not call it for the same key from inside `load` (it would wait for
    /// itself).
    #[inline]
    pub fn get_or_insert_with<E, F>(&self, key: K, load: F) -> Result<V, std::sync::Arc<E>>
    where
        F: FnOnce() -> Result<V, E>,
        E: Send + Sync + 'static,
    {
        let hash = self.hasher.hash_one(&key);
        // A hit while the bias is on takes no lock (a miss is counted below).
        let fast = self.lock_free(hash, |s, guard| {
            let v = s.table.get_shared(hash, &key, ClockNow::new(&self.clock))?;
            guard.hit();
            Some(v.clone())
        });
        if let Some(Some(v)) = fast {
            return Ok(v);
        }
        self.get_or_insert_with_locked(hash, key, load)
    }

    /// The rest of [`get_or_insert_with`](Self::get_or_insert_with) when
    /// the lookup could not go lock-free or missed: out of line, as
    /// [`get_locked`](Self::get_locked) is.
    #[inline(never)]
    fn get_or_insert_with_locked<E, F>(&self, hash: u64, key: K, load: F) -> Result<V, std::sync::Arc<E>>
    where
        F: FnOnce() -> Result<V, E>,
        E: Send + Sync + 'static,
    {
        let shard = self.shard(hash);
        let clock = &*self.clock;
        let mut key = Some(key);
        let readers = &self.readers;
        // The load of `k` in flight, if any, to wait for (a read).
        let running = |s: &Shard<K, V, S>, k: &K| {
            s.loads.iter().find(|l| l.hash == hash && l.key == *k).map(|l| Step::Wait(l.slot.clone()))
        };
        loop {
            // An entry found expired is removed under the lock, dropped after.
            let mut expired = None;
            // Under the lock: a hit, or a load to wait for, is a read (beside
            // the lock-free readers if the bias is on: no revocation); only a
            // miss with no load running writes, to register this caller's.
            let step = shard.read_or_write(
                &mut key,
                |s, key| {
                    let Some(k) = key.as_ref() else { return Ok(None) };
                    if let Some(v) = s.table.get_hashed_into(hash, k, LazyNow::new(clock), &mut expired) {
                        return Ok(Some(Step::Hit(v.clone())));
                    }
                    running(s, k).map(Some).ok_or(key) // the miss is counted
                },
                |s, key| {
                    let Some(k) = key.as_ref() else { return Ok(None) };
                    let found = s.table.get_shared(hash, k, LazyNow::new(clock));
                    readers.count_locked(found.is_some());
                    if let Some(v) = found {
                        return Ok(Some(Step::Hit(v.clone())));
                    }
                    running(s, k).map(Some).ok_or(key)
                },
                |s, key| {
                    let key = key.take()?;
                    let slot = Arc::new(LoadSlot::new());
                    s.loads.push(Load { hash, key, slot: slot.clone(), superseded: false });
                    Some(Step::Load(slot))
                },
            );
            drop(expired);
            match step {
                Some(Step::Hit(v)) => return Ok(v),
                Some(Step::Wait(slot)) => match slot.wait() {
                    LoadState::Value(v) => return Ok(v),
                    LoadState::Error(e) => {
                        if let Ok(e) = e.downcast::<E>() {
                            return Err(e);
                        }
                    }
                    _ => {}
                },
                Some(Step::Load(slot)) => return self.run_load(hash, &slot, load),
                None => unreachable!("the key is only given up by a caller that then loads"),
            }
        }
    }

    fn run_load<E, F>(&self, hash: u64, slot: &Arc<LoadSlot<V>>, load: F) -> Result<V, std::sync::Arc<E>>
    where
        F: FnOnce() -> Result<V, E>,
        E: Send + Sync + 'static,
    {
        let shard = self.shard(hash);
        let mut guard = LoadGuard { shard, slot, armed: true };
        let result = load().map_err(std::sync::Arc::new);
        let mut time = LazyNow::new(&*self.clock);
        let expires = ttl::deadline(self.default_ttl.map_or(0, |_| time.now()), self.default_ttl);
        let mut evicted = Deferred::new(); // dropped after the lock, as on insert
        let published = shard.with(|s| {
            let at = s.loads.iter().position(|l| Arc::ptr_eq(&l.slot, slot))?;
            let load = s.loads.swap_remove(at);
            Some(match &result {
                Ok(_) if load.superseded => Inserted::Rejected(None),
                Ok(v) => s.table.insert_evicting(hash, load.key, v.clone(), expires, time, &mut evicted),
                Err(_) => Inserted::Rejected(None),
            })
        });
        // The waiters' copy is made while the guard is armed (a panicking
        // clone abandons the load, which wakes them); `finish` runs no user
        // code, and the replaced value is dropped only after it.
        let outcome = match &result {
            Ok(v) => LoadState::Value(v.clone()),
            Err(e) => LoadState::Error(e.clone()),
        };
        guard.armed = false;
        slot.finish(outcome);
        drop(published);
        drop(evicted);
        result
    }

    /// Entries held by all shards (expired ones not yet removed included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.peek(|s| s.table.len())).sum()
    }

    /// True when no shard holds anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight held.
    pub fn weight(&self) -> u64 {
        self.shards.iter().map(|s| s.peek(|s| s.table.weight())).sum()
    }

    /// Looks up every key of `keys`, in order, calling `f(i, value)` for
    /// key `i`: `Some` for a hit (counted, and the entry's frequency bumped,
    /// as [`get_with`](Self::get_with) does, and like it under the shard
    /// lock or as a lock-free reader), `None` for absent or expired. The
    /// clock is read at most once for the whole batch (or `now` is used).
    /// Keep `f` short and do not touch the cache from it (a writer of the
    /// shard would wait for it).
    pub fn get_many_with<Q>(&self, keys: &[&Q], now: Option<Nanos>, mut f: impl FnMut(usize, Option<&V>))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Hashing a block of keys before the first lock lets the hashes'
        // multiply chains overlap (a lock is a full fence: hashed between
        // locks, each key's hash would wait for the previous lookup).
        const BLOCK: usize = 64;
        let mut lazy = LazyNow::new(&*self.clock);
        let mut fixed = now;
        let mut hashes = [0u64; BLOCK];
        for (b, chunk) in keys.chunks(BLOCK).enumerate() {
            for (h, k) in hashes.iter_mut().zip(chunk) {
                *h = self.hasher.hash_one(k);
            }
            for (j, (&h, k)) in hashes.iter().zip(chunk).enumerate() {
                let i = b * BLOCK + j;
                let hit = match fixed.as_mut() {
                    Some(t) => self.get_hashed_with(h, *k, t, |v| f(i, Some(v))),
                    None => self.get_hashed_with(h, *k, &mut lazy, |v| f(i, Some(v))),
                };
                if hit.is_none() {
                    f(i, None);
                }
            }
        }
    }

    /// Removes every entry (counters are kept); loads running meanwhile do
    /// not store their values.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let old = s.with(|s| {
                s.loads.iter_mut().for_each(|l| l.superseded = true);
                s.table.clear_deferred()
            });
            drop(old); // after the lock, as evictions are
        }
    }

    /// Shards whose gets currently take no lock (their read bias is on; see
    /// the [module documentation](super)). For tests and diagnostics.
    pub fn lock_free_shards(&self) -> usize {
        self.shards.iter().filter(|s| s.bias.load(Ordering::Relaxed)).count()
    }

    /// Counters summed over the shards.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for s in self.shards.iter() {
            total.merge(&s.peek(|s| s.table.stats()));
        }
        let (hits, misses) = self.readers.counts();
        total.hits += hits;
        total.misses += misses;
        total
    }

    /// Removes up to `max` expired entries, resuming where the last sweep
    /// stopped (shard by shard; each shard examines at most `16 * max`
    /// buckets). Returns how many it removed. Call it from a timer or an
    /// idle loop; nothing sweeps by itself. A shard where no deadline can
    /// have passed (see [`Table::may_hold_expired`]) is only read (its read
    /// bias stays on).
    pub fn sweep_expired(&self, max: usize) -> usize {
        let mut now = LazyNow::new(&*self.clock);
        let t = now.now();
        self.sweep_expired_at(max, t)
    }

    /// [`sweep_expired`](Self::sweep_expired) at time `now`.
    pub fn sweep_expired_at(&self, max: usize, now: Nanos) -> usize {
        let n = self.shards.len();
        let start = self.sweep_cursor.fetch_add(1, Ordering::Relaxed);
        let mut removed = 0;
        for k in 0..n {
            if removed >= max {
                break;
            }
            let s = &self.shards[(start + k) & self.mask];
            // A shard where no deadline can have passed has nothing to
            // sweep: looked at as a read, so that such a sweep revokes no
            // bias.
            if s.peek(|s| s.table.may_hold_expired(now)) {
                // Dropped after the lock, as an insert's evictions are.
                let mut expired = Deferred::new();
                removed += s.with(|s| s.table.sweep_expired_into(max - removed, now, &mut expired));
                drop(expired);
            }
        }
        removed
    }
}

impl<K, V, S> std::fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.shards.len())
            .field("default_ttl", &self.default_ttl)
            .finish()
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[allow(clippy::borrowed_box)] // the weigher's signature is fn(&K, &V)
    fn bytes_cache(max_weight: u64) -> Cache<Box<[u8]>, Box<[u8]>> {
        Cache::builder()
            .max_weight(max_weight)
            .shards(1)
            .weigher(|k: &Box<[u8]>, v: &Box<[u8]>| (k.len() + v.len()) as u64)
            .build()
            .expect("valid limits")
    }

    /// Reads `key` until the shard's bias is on (it takes `ENABLE_AFTER`
    /// locked reads with no write between).
    fn bias_on(c: &Cache<u64, u64>, key: u64) {
        let mut reads = 0;
        while c.lock_free_shards() == 0 {
            c.get(&key);
            reads += 1;
            assert!(reads <= bias::ENABLE_AFTER as usize, "the bias should be on by now");
        }
    }

    #[test]
    fn the_read_bias_comes_on_after_a_streak_of_reads_and_off_at_a_write() {
        let c: Cache<u64, u64> = Cache::builder().max_entries(64).shards(1).build().unwrap();
        c.insert(1, 10);
        for _ in 0..bias::ENABLE_AFTER - 1 {
            assert_eq!(c.get(&1), Some(10));
        }
        c.insert(2, 20); // a write resets the streak
        for _ in 0..bias::ENABLE_AFTER - 1 {
            assert_eq!(c.get(&2), Some(20));
        }
        assert_eq!(c.lock_free_shards(), 0, "one read short of the streak");
        assert_eq!(c.get(&3), None);
        assert_eq!(c.lock_free_shards(), 1);
        // Lock-free now: hits, misses, `contains`, `get_with`, `len`, stats.
        assert_eq!(c.get(&1), Some(10));
        assert_eq!(c.get(&9), None);
        assert!(c.contains(&2) && !c.contains(&9));
        assert_eq!(c.get_with(&2, |v| v + 1), Some(21));
        assert_eq!(c.get_or_insert_with(1, || Err::<u64, ()>(())), Ok(10));
        assert_eq!((c.len(), c.weight()), (2, 2));
        assert_eq!(c.lock_free_shards(), 1, "reads do not revoke");
        let s = c.stats();
        let reads = 2 * (bias::ENABLE_AFTER as u64 - 1) + 1 + 4; // `contains` counts nothing
        assert_eq!((s.hits + s.misses, s.misses), (reads, 2), "every read counted once");
        c.insert(3, 30);
        assert_eq!(c.lock_free_shards(), 0, "a write revokes the bias");
        assert_eq!(c.get(&3), Some(30));
    }

    /// A read from inside a lock-free read's callback (misuse, but safe
    /// code) must not end the outer read's announcement: a writer would
    /// then take the table while the outer callback still holds `&V`.
    #[test]
    fn a_read_inside_a_lock_free_callback_keeps_writers_out() {
        use std::sync::atomic::AtomicBool as StdBool;
        let c = std::sync::Arc::new(Cache::<u64, u64>::builder().max_entries(64).shards(1).build().unwrap());
        c.insert(1, 10);
        c.insert(2, 20);
        bias_on(&c, 2);
        let removed = std::sync::Arc::new(StdBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let (c, removed) = (c.clone(), removed.clone());
            std::thread::spawn(move || {
                rx.recv().unwrap();
                assert_eq!(c.remove(&1), Some(10));
                removed.store(true, StdOrdering::SeqCst);
            })
        };
        let seen = c.get_with(&1, |v| {
            assert_eq!(c.readers.active_here(), 1, "the outer read is lock-free");
            assert_eq!(c.get(&2), Some(20)); // nested: takes the lock
            assert_eq!(c.len(), 2);
            assert_eq!(c.readers.active_here(), 1, "still announced after the nested reads");
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            assert!(!removed.load(StdOrdering::SeqCst), "a writer got past a lock-free reader");
            *v
        });
        assert_eq!(seen, Some(10));
        writer.join().unwrap();
        assert_eq!(c.get(&1), None);
        assert_eq!(c.readers.active_here(), 0);
    }

    #[test]
    fn get_or_insert_with_hits_are_reads_that_turn_the_bias_on() {
        let c: Cache<u64, u64> = Cache::builder().max_entries(64).shards(1).build().unwrap();
        assert_eq!(c.get_or_insert_with(1, || Ok::<_, ()>(10)), Ok(10)); // a load: a write
        for _ in 0..bias::ENABLE_AFTER {
            assert_eq!(c.get_or_insert_with(1, || Err::<u64, ()>(())), Ok(10));
        }
        assert_eq!(c.lock_free_shards(), 1, "hits alone turned the bias on");
        assert_eq!(c.get_or_insert_with(1, || Err::<u64, ()>(())), Ok(10));
        assert_eq!(c.lock_free_shards(), 1, "a hit does not revoke");
        assert_eq!(c.get_or_insert_with(2, || Ok::<_, ()>(20)), Ok(20));
        assert_eq!(c.lock_free_shards(), 0, "a miss that loads writes, and revokes");
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (bias::ENABLE_AFTER as u64 + 1, 2), "every call counted once");
    }

    #[test]
    fn a_sweep_that_can_find_nothing_keeps_the_bias() {
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(0));
        let c: Cache<u64, u64> =
            Cache::builder().max_entries(64).shards(1).clock(clock.clone()).build().unwrap();
        c.insert(1, 10);
        c.insert_with_ttl(2, 20, Some(Duration::from_nanos(100)));
        bias_on(&c, 1);
        assert_eq!(c.sweep_expired(10), 0);
        assert_eq!(c.lock_free_shards(), 1, "no deadline has passed: only read");
        clock.set(100);
        assert_eq!(c.sweep_expired(10), 1);
        assert_eq!(c.lock_free_shards(), 0, "a sweep that may remove writes");
        assert_eq!(c.len(), 1);
    }

    /// What each dropped [`DropProbe`] recorded: was the lock held.
    type Drops = Arc<std::sync::Mutex<Vec<bool>>>;

    /// A value that records, when dropped, whether the shard lock it
    /// points at was held.
    struct DropProbe {
        lock: *const AtomicBool,
        locked_at_drop: Drops,
    }

    // SAFETY: the pointer is only read (an atomic load) while the cache it
    // points into is alive, on whichever thread drops the value.
    unsafe impl Send for DropProbe {}
    // SAFETY: as above; `&DropProbe` gives no access to the pointer.
    unsafe impl Sync for DropProbe {}

    impl Clone for DropProbe {
        fn clone(&self) -> Self {
            Self { lock: self.lock, locked_at_drop: self.locked_at_drop.clone() }
        }
    }

    impl Drop for DropProbe {
        fn drop(&mut self) {
            // SAFETY: the test keeps the cache alive while its values drop.
            let held = unsafe { &*self.lock }.load(Ordering::SeqCst);
            self.locked_at_drop.lock().unwrap().push(held);
        }
    }

    #[test]
    fn evicted_replaced_cleared_and_refused_values_drop_after_the_lock_is_released() {
        let c: Cache<u64, DropProbe> = Cache::builder().max_entries(2).shards(1).build().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let probe = DropProbe { lock: &c.shards[0].locked, locked_at_drop: seen.clone() };
        for k in 0..6 {
            c.insert(k, probe.clone()); // evicts from the third on
        }
        c.insert(5, probe.clone()); // replaces
        assert!(c.get_or_insert_with(9, || Ok::<_, ()>(probe.clone())).is_ok()); // loads, evicts
        let s = c.stats();
        assert_eq!((s.evictions, s.updates), (5, 1));
        c.clear();
        // Refused (born expired), also when it replaces a present entry.
        c.insert_with_ttl(20, probe.clone(), Some(Duration::ZERO));
        c.insert(21, probe.clone());
        c.insert_with_ttl(21, probe.clone(), Some(Duration::ZERO));
        assert_eq!(c.len(), 0);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            13,
            "five evicted, one replaced, the load's result and its waiters' copy, two cleared, two refused and the one they removed"
        );
        assert!(seen.iter().all(|&held| !held), "a value dropped under the shard lock: {seen:?}");
    }

    /// A one-shard cache of 64 entries on a manual clock at 0, and a probe
    /// pointing at its lock with the list its drops record into (the
    /// shards live in a boxed slice: moving the cache keeps the pointer
    /// valid).
    fn ttl_probe_cache() -> (Arc<crate::clock::ManualClock>, Cache<u64, DropProbe>, DropProbe, Drops) {
        let clock = Arc::new(crate::clock::ManualClock::new(0));
        let c = Cache::builder().max_entries(64).shards(1).clock(clock.clone()).build().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let probe = DropProbe { lock: &c.shards[0].locked, locked_at_drop: seen.clone() };
        (clock, c, probe, seen)
    }

    #[test]
    fn swept_values_drop_after_the_lock_is_released() {
        let (clock, c, probe, seen) = ttl_probe_cache();
        for k in 0..5 {
            c.insert_with_ttl(k, probe.clone(), Some(Duration::from_nanos(100)));
        }
        clock.set(100);
        assert_eq!(c.sweep_expired(64), 5);
        assert_eq!(c.len(), 0);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 5);
        assert!(seen.iter().all(|&held| !held), "a swept value dropped under the shard lock: {seen:?}");
    }

    #[test]
    fn values_found_expired_by_a_locked_read_drop_after_the_lock_is_released() {
        let (clock, c, probe, seen) = ttl_probe_cache();
        c.insert_with_ttl(1, probe.clone(), Some(Duration::from_nanos(100)));
        c.insert_with_ttl(2, probe.clone(), Some(Duration::from_nanos(100)));
        clock.set(100);
        assert_eq!(c.lock_free_shards(), 0, "the bias is off: gets lock, and remove what expired");
        assert!(c.get(&1).is_none());
        assert!(c.get_or_insert_with(2, || Ok::<_, ()>(probe.clone())).is_ok());
        let s = c.stats();
        assert_eq!((s.expirations, c.len()), (2, 1));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "two expired, the load's result and its waiters' copy");
        assert!(seen.iter().all(|&held| !held), "a value dropped under the shard lock: {seen:?}");
    }

    #[test]
    fn a_lock_free_read_bumps_the_frequency_that_eviction_reads() {
        let c: Cache<u64, u64> = Cache::builder().max_entries(10).shards(1).build().unwrap();
        c.insert(1, 1);
        c.insert(2, 2);
        bias_on(&c, 2);
        assert_eq!(c.get(&1), Some(1)); // lock-free
        assert_eq!(c.get(&1), Some(1));
        let freq = c.shards[0].with(|s| s.table.policy_state(&1).map(|(_, f)| f));
        assert_eq!(freq, Some(2), "both lock-free hits counted");
    }

    #[test]
    fn a_lock_free_read_of_an_expired_entry_misses_and_leaves_it_to_a_sweep() {
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(0));
        let c: Cache<u64, u64> =
            Cache::builder().max_entries(64).shards(1).clock(clock.clone()).build().unwrap();
        c.insert_with_ttl(1, 10, Some(Duration::from_nanos(100)));
        c.insert(2, 20);
        bias_on(&c, 2);
        clock.set(100);
        assert_eq!(c.get(&1), None, "expired");
        assert!(!c.contains(&1));
        assert_eq!(c.lock_free_shards(), 1);
        assert_eq!(c.len(), 2, "still held: a lock-free read removes nothing");
        assert_eq!(c.sweep_expired(10), 1);
        assert_eq!(c.len(), 1);
        assert_eq!(c.stats().expirations, 1);
    }

    #[test]
    fn try_insert_reports_rejection_and_drops_the_old_value() {
        let c = bytes_cache(100);
        assert!(c.try_insert(b"k".to_vec().into(), vec![1; 49].into(), None));
        assert_eq!(c.get_with(&b"k"[..], |v| v.len()), Some(49));
        assert!(!c.try_insert(b"k".to_vec().into(), vec![2; 100].into(), None), "101 > 100");
        assert!(!c.contains(&b"k"[..]), "a rejected write removes the old value");
        assert_eq!(c.stats().rejections, 1);
        assert!(c.try_insert_at(b"t".to_vec().into(), vec![3; 10].into(), Some(5), 1_000));
        assert!(c.contains_at(&b"t"[..], 1_004));
        assert!(!c.contains_at(&b"t"[..], 1_005));
        assert!(!c.try_insert_at(b"x".to_vec().into(), vec![0; 100].into(), Some(5), 0), "too heavy");
    }

    #[test]
    fn the_whole_cache_never_holds_more_than_its_limits() {
        for (max, shards) in [(9usize, 8usize), (65, 64), (1001, 8), (8, 8)] {
            let c: Cache<u64, u64> = Cache::builder().max_entries(max).shards(shards).build().unwrap();
            for k in 0..(20 * max as u64) {
                c.insert(k, k);
                assert!(c.len() <= max, "{} entries in a cache of {max} over {shards} shards", c.len());
            }
            let w: Cache<u64, u64> =
                Cache::builder().max_weight(max as u64).shards(shards).weigher(|_, _| 1).build().unwrap();
            for k in 0..(20 * max as u64) {
                w.insert(k, k);
                assert!(w.weight() <= max as u64, "weight {} over {max}", w.weight());
            }
        }
        // Shards chosen automatically fit a small weight budget too.
        let c: Cache<u64, u64> = Cache::builder().max_weight(7).weigher(|_, _| 1).build().unwrap();
        assert_eq!(c.shard_count(), 1);
    }

    /// `get_many_with` answers each key as `get_with_at` would, in key order
    /// and across blocks, and counts the same hits and misses.
    #[test]
    fn get_many_matches_one_get_per_key() {
        use crate::key::{ByteKey, ByteStr};
        let many: Cache<ByteKey, u32> = Cache::builder().max_entries(4096).shards(8).build().unwrap();
        let one: Cache<ByteKey, u32> = Cache::builder().max_entries(4096).shards(8).build().unwrap();
        let name = |i: u32| format!("key:{i}:{}", "x".repeat(i as usize % 24)).into_bytes();
        for i in 0..300u32 {
            let ttl = (i % 3 == 0).then_some(50);
            many.insert_at(ByteKey::from(name(i)), i, ttl, 1_000);
            one.insert_at(ByteKey::from(name(i)), i, ttl, 1_000);
        }
        // Present, absent and expired keys, repeated, over several blocks.
        let names: Vec<Vec<u8>> = (0..150u32).map(|j| name((j * 7) % 400)).collect();
        let keys: Vec<&ByteStr> = names.iter().map(|n| ByteStr::new(n)).collect();
        let mut got = Vec::new();
        many.get_many_with(&keys, Some(1_060), |i, v| got.push((i, v.copied())));
        let want: Vec<(usize, Option<u32>)> =
            keys.iter().enumerate().map(|(i, k)| (i, one.get_with_at(*k, 1_060, |v| *v))).collect();
        assert_eq!(got, want);
        assert!(want.iter().any(|(_, v)| v.is_none()) && want.iter().any(|(_, v)| v.is_some()));
        assert_eq!(many.stats(), one.stats());
        let mut n = 0;
        many.get_many_with::<ByteStr>(&[], None, |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
