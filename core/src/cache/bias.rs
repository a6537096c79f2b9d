//! Lock-free reads for the shard lock: a read bias with asymmetric fences.
//!
//! A shard whose reads far outnumber its writes turns its read bias on.
//! While the bias is on, a get takes no lock and writes no shared cache
//! line: the reading thread announces the shard it reads in a slot of its
//! own (one per thread and cache), then checks that the bias is still on,
//! reads the table, and clears its slot. A writer takes the shard lock as
//! before; if the bias is on it first revokes it: turns it off, makes every
//! thread's announcement visible, and waits until no slot names the shard.
//! This is BRAVO (Dice and Kogan, "BRAVO: Biased Locking for Reader-Writer
//! Locks", USENIX ATC 2019) with the per-thread slots of the cache rather
//! than a global hash table.
//!
//! The announcement and the check form a Dekker pair: the reader stores to
//! its slot then loads the bias, the writer stores the bias then loads the
//! slots, and a fence between the store and the load on each side keeps
//! both from reading stale values. The reader's side runs on every get, so
//! on Linux it is a compiler fence only, and the writer's side is
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which runs a full fence
//! on every CPU running a thread of this process (about 0.15 us alone, 2.6 us
//! with another busy thread on this host). Where membarrier cannot be
//! registered (other systems, or a sandbox that forbids it) both sides use a
//! `SeqCst` fence: reads still write no shared line, but pay the fence.
//!
//! A revocation costs microseconds, so the bias is turned on only after 64
//! reads in a row on a shard found it off with no write between them, and
//! not again until 256 times the last revocation's cost has passed: writes
//! spend well under 1% of their time revoking whatever the mix.

use std::cell::Cell;

use crate::sync::{AtomicU64, AtomicUsize, CachePadded, Ordering};

/// Threads that can read without the lock at once; a thread beyond them
/// (more live threads than this have read some cache) always takes the lock.
#[cfg(not(resilience_loom))]
pub(crate) const MAX_READERS: usize = 64;
#[cfg(resilience_loom)]
pub(crate) const MAX_READERS: usize = 4;

/// Reads in a row that found the bias off, with no write between, before a
/// reader turns it on (1 under loom, so that short models reach the
/// lock-free path).
#[cfg(not(resilience_loom))]
pub(crate) const ENABLE_AFTER: u32 = 64;
#[cfg(resilience_loom)]
pub(crate) const ENABLE_AFTER: u32 = 1;
/// After a revocation that took `t`, the bias stays off for `t` times this.
pub(crate) const INHIBIT_FACTOR: u64 = 256;

/// One thread's slot in one cache: which shard it reads (index + 1, 0 when
/// none) and its lock-free hits and misses. Only its thread writes it.
#[derive(Debug, Default)]
pub(crate) struct ReaderSlot {
    active: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The reader slots of one cache: a cheap handle (the cache and each of
/// its shards hold one). The slots' pointer sits in the holder itself,
/// so finding a thread's slot reads no other cache line.
#[derive(Debug, Clone)]
pub(crate) struct Readers {
    /// A fixed-size array, so that indexing it by a reader index (checked
    /// below `MAX_READERS` just before) compiles to no second bounds check
    /// (checked in the generated code of a get).
    slots: std::sync::Arc<[CachePadded<ReaderSlot>; MAX_READERS]>,
    /// Whether readers may use a compiler fence ([`asymmetric_fences`] when
    /// the cache was built; it never changes afterwards).
    asymmetric: bool,
    /// Hits and misses of reads that shared the table under the lock (a
    /// thread without a slot, while the bias was on): read-modify-writes,
    /// as several threads count here.
    locked: std::sync::Arc<CachePadded<(AtomicU64, AtomicU64)>>,
}

/// A lock-free read in progress; dropping it (on unwind too) clears the slot.
pub(crate) struct ReadGuard<'a> {
    slot: &'a ReaderSlot,
}

impl ReadGuard<'_> {
    /// Counts a hit (only this thread writes the counter: no read-modify-write).
    #[inline]
    pub(crate) fn hit(&self) {
        bump(&self.slot.hits);
    }

    /// Counts a miss.
    #[inline]
    pub(crate) fn miss(&self) {
        bump(&self.slot.misses);
    }
}

#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Drop for ReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: a revoking writer that sees 0 also sees that every read
        // of the table this guard covered is done.
        self.slot.active.store(0, Ordering::Release);
    }
}

impl Readers {
    pub(crate) fn new() -> Self {
        fences::init();
        Self {
            slots: std::sync::Arc::new(std::array::from_fn(|_| CachePadded(ReaderSlot::default()))),
            asymmetric: asymmetric_fences(),
            locked: std::sync::Arc::new(CachePadded((AtomicU64::new(0), AtomicU64::new(0)))),
        }
    }

    /// Announces that this thread is about to read shard `shard` without
    /// the lock; `None` when this thread has no slot, or its slot is in use
    /// by a read of this cache that is still going on (a read from inside a
    /// callback of another: it must take the lock, because overwriting the
    /// slot, and clearing it when done, would let a writer past the outer
    /// read). The caller must then check that the shard's bias is still on
    /// before reading.
    #[inline]
    pub(crate) fn enter(&self, shard: usize) -> Option<ReadGuard<'_>> {
        let i = reader_index()?;
        let slot = &self.slots[i];
        // Only this thread writes its slot, so this load sees its own last
        // store.
        if slot.active.load(Ordering::Relaxed) != 0 {
            return None;
        }
        // Release, though the fence below orders it for the Dekker pair: a
        // writer that reads this value (rather than the 0 that ended this
        // thread's previous read) must also see that previous read's table
        // accesses as done, and a later plain store does not continue the
        // earlier clear's release sequence.
        slot.active.store(shard + 1, Ordering::Release);
        fences::light(self.asymmetric);
        Some(ReadGuard { slot })
    }

    /// The shard this thread is reading lock-free (index + 1), or 0.
    #[cfg(test)]
    pub(crate) fn active_here(&self) -> usize {
        reader_index().map_or(0, |i| self.slots[i].active.load(Ordering::Relaxed))
    }

    /// Waits until no thread reads shard `shard` without the lock. The
    /// caller holds the shard's lock, has turned its bias off and has run
    /// [`heavy_fence`] since: every reader either saw the bias off or is
    /// visible here.
    pub(crate) fn wait_for(&self, shard: usize) {
        // Every slot in use has an index below `high`: the index was taken
        // (and `high` raised) before its first announcement, which the
        // heavy fence made visible.
        let n = index::high().min(self.slots.len());
        for s in &self.slots[..n] {
            let mut spins = 0u32;
            while s.active.load(Ordering::Acquire) == shard + 1 {
                spins += 1;
                if spins < 100 {
                    crate::sync::spin_loop();
                } else {
                    crate::sync::thread::yield_now();
                }
            }
        }
    }

    /// Counts a hit (`true`) or a miss of a read that shared the table
    /// under the lock.
    pub(crate) fn count_locked(&self, hit: bool) {
        let c = if hit { &self.locked.0 .0 } else { &self.locked.0 .1 };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Hits and misses of every read that did not count in a table so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let locked = (self.locked.0 .0.load(Ordering::Relaxed), self.locked.0 .1.load(Ordering::Relaxed));
        self.slots.iter().fold(locked, |(h, m), s| {
            (h + s.hits.load(Ordering::Relaxed), m + s.misses.load(Ordering::Relaxed))
        })
    }
}

/// Nanoseconds since the first call: the bias policy's clock. Under loom
/// always 0 (the model must not depend on wall time).
#[inline]
pub(crate) fn now_ns() -> u64 {
    #[cfg(resilience_loom)]
    return 0;
    #[cfg(not(resilience_loom))]
    {
        static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(std::time::Instant::now);
        base.elapsed().as_nanos() as u64
    }
}

// --- Thread indexes -------------------------------------------------------

#[cfg(not(resilience_loom))]
mod index {
    use super::{Cell, MAX_READERS};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Indexes of exited threads, and the next never used.
    struct Registry {
        free: Vec<usize>,
        next: usize,
    }

    static REGISTRY: std::sync::Mutex<Registry> =
        std::sync::Mutex::new(Registry { free: Vec::new(), next: 0 });

    /// One past the highest index ever handed out.
    static HIGH: AtomicUsize = AtomicUsize::new(0);
    /// `REGISTRY.free.len()`, stored under the lock: a thread that found no
    /// index free tries again once one is (an exited thread's).
    static FREED: AtomicUsize = AtomicUsize::new(0);

    const UNSET: usize = usize::MAX;
    /// None was free when this thread asked (it reads under the lock).
    const NONE: usize = MAX_READERS;
    /// After the thread's index went back at exit.
    const GONE: usize = usize::MAX - 1;

    /// Returns the thread's index to the registry at thread exit.
    struct Release;

    impl Drop for Release {
        fn drop(&mut self) {
            let i = INDEX.with(|c| c.replace(GONE));
            if i < MAX_READERS {
                let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
                r.free.push(i);
                FREED.store(r.free.len(), Ordering::Relaxed);
            }
        }
    }

    thread_local! {
        // No destructor of its own, so reading it is one TLS load.
        static INDEX: Cell<usize> = const { Cell::new(UNSET) };
        static RELEASE: Release = const { Release };
    }

    #[cold]
    fn assign() -> usize {
        // Register the release first: if thread-locals are being torn down
        // already, take no index (the thread always locks).
        if RELEASE.try_with(|_| ()).is_err() {
            INDEX.with(|c| c.set(GONE));
            return GONE;
        }
        let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let i = r.free.pop().unwrap_or_else(|| {
            let i = r.next;
            if i < MAX_READERS {
                r.next += 1;
            }
            i // NONE when all are taken: asks again once one is freed
        });
        FREED.store(r.free.len(), Ordering::Relaxed);
        HIGH.fetch_max(i + 1, Ordering::SeqCst);
        INDEX.with(|c| c.set(i));
        i
    }

    /// This thread's reader index, if it has one (none while
    /// [`MAX_READERS`] other live threads hold one, or once its
    /// thread-locals are torn down).
    #[inline(always)]
    pub(crate) fn reader_index() -> Option<usize> {
        let i = INDEX.with(Cell::get);
        if i < MAX_READERS {
            return Some(i);
        }
        unassigned(i)
    }

    /// [`reader_index`] for a thread without an index: asks for one the
    /// first time, and again while it has none once one is free.
    #[cold]
    fn unassigned(i: usize) -> Option<usize> {
        // Relaxed: a stale count only delays the retry, or retries for
        // nothing (`assign` then finds none free, under the lock).
        if i == UNSET || (i == NONE && FREED.load(Ordering::Relaxed) > 0) {
            let i = assign();
            return (i < MAX_READERS).then_some(i);
        }
        None
    }

    /// One past the highest reader index ever handed out.
    pub(crate) fn high() -> usize {
        HIGH.load(Ordering::SeqCst)
    }
}

#[cfg(resilience_loom)]
mod index {
    use super::{Cell, MAX_READERS};

    // Reset for every model execution (a plain static would hand out other
    // indexes on the next execution, and loom needs each to replay exactly).
    loom::lazy_static! {
        static ref NEXT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
    }

    loom::thread_local! {
        static INDEX: Cell<usize> = Cell::new(usize::MAX);
    }

    /// Every slot may be in use.
    pub(crate) fn high() -> usize {
        MAX_READERS
    }

    /// Distinct for up to `MAX_READERS` threads of one model execution.
    pub(crate) fn reader_index() -> Option<usize> {
        Some(INDEX.with(|c| {
            if c.get() == usize::MAX {
                c.set(NEXT.fetch_add(1, loom::sync::atomic::Ordering::Relaxed) % MAX_READERS);
            }
            c.get()
        }))
    }
}

pub(crate) use index::reader_index;

// --- Asymmetric fences ----------------------------------------------------

#[cfg(all(target_os = "linux", not(resilience_loom)))]
mod fences {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// True once membarrier is registered for this process (never reset).
    pub(super) static ASYMMETRIC: AtomicBool = AtomicBool::new(false);

    const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
    const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes two integer arguments and touches no
        // memory of ours; an unsupported command only returns an error.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_int, 0 as libc::c_int) }
    }

    /// Registers this process for expedited private membarriers, once.
    /// Runs before any cache exists, so every thread that can reach a cache
    /// sees the final value of `ASYMMETRIC` (the cache's publication orders
    /// it) and both sides of every Dekker pair use the same kind of fence.
    pub(super) fn init() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var_os("RESILIENCE_NO_MEMBARRIER").is_some() {
                return;
            }
            let supported = membarrier(MEMBARRIER_CMD_QUERY);
            if supported >= 0
                && supported & (MEMBARRIER_CMD_PRIVATE_EXPEDITED as libc::c_long) != 0
                && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
            {
                ASYMMETRIC.store(true, Ordering::Release);
            }
        });
    }

    /// The writer's side: a full fence on every running thread of this
    /// process.
    pub(super) fn heavy() {
        if ASYMMETRIC.load(Ordering::Acquire) {
            // Once registered it does not fail (the kernel's errors are an
            // unknown command and a missing registration, and a fork keeps
            // the registration). Were it to, register again, then fall back
            // to the slow global command (no registration needed); a fence
            // of our own would not order the readers, so if even that fails,
            // abort rather than let a reader see a torn entry.
            if membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0
                && (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0
                    || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
                && membarrier(MEMBARRIER_CMD_GLOBAL) != 0
            {
                std::process::abort();
            }
        } else {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    #[inline(always)]
    pub(super) fn light(asymmetric: bool) {
        if asymmetric {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }
}

#[cfg(any(not(target_os = "linux"), resilience_loom))]
mod fences {
    pub(super) fn init() {}

    pub(super) fn heavy() {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
    }

    #[inline(always)]
    pub(super) fn light(_asymmetric: bool) {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
    }
}

/// The writer's side: between its bias store and its slot loads.
pub(crate) fn heavy_fence() {
    fences::heavy();
}

/// True when the calling thread has a reader slot, so that its reads of a
/// shard whose read bias is on take no lock (64 live threads at a time
/// have one; a thread without asks again once a slot's thread exits).
/// Asking takes a free slot for the calling thread, as its first read of a
/// biased shard would. For tests and diagnostics.
pub fn thread_has_reader_slot() -> bool {
    reader_index().is_some()
}

/// True when readers use a compiler fence only (membarrier registered).
pub fn asymmetric_fences() -> bool {
    #[cfg(all(target_os = "linux", not(resilience_loom)))]
    return fences::ASYMMETRIC.load(Ordering::Relaxed);
    #[cfg(any(not(target_os = "linux"), resilience_loom))]
    return false;
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn threads_get_distinct_indexes_and_return_them() {
        let mine = reader_index().expect("an index");
        let others: Vec<_> =
            (0..4).map(|_| std::thread::spawn(reader_index)).map(|t| t.join().unwrap().unwrap()).collect();
        // Each joined thread returned its index at exit, so one is reused.
        assert!(others.iter().all(|&i| i != mine));
        let live: Vec<_> = {
            let (tx, rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let stop_rx = std::sync::Arc::new(std::sync::Mutex::new(stop_rx));
            let ts: Vec<_> = (0..3)
                .map(|_| {
                    let (tx, stop_rx) = (tx.clone(), stop_rx.clone());
                    std::thread::spawn(move || {
                        tx.send(reader_index().unwrap()).unwrap();
                        let _ = stop_rx.lock().unwrap().recv();
                    })
                })
                .collect();
            let got: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
            drop(stop_tx);
            ts.into_iter().for_each(|t| t.join().unwrap());
            got
        };
        let mut all = live.clone();
        all.push(mine);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4, "live threads share no index: {live:?} and {mine}");
    }

    #[test]
    fn guard_clears_its_slot_and_counts() {
        let r = Readers::new();
        {
            let g = r.enter(5).expect("a slot");
            g.hit();
            g.hit();
            g.miss();
            let i = reader_index().unwrap();
            assert_eq!(r.slots[i].active.load(Ordering::Relaxed), 6);
        }
        let i = reader_index().unwrap();
        assert_eq!(r.slots[i].active.load(Ordering::Relaxed), 0);
        assert_eq!(r.counts(), (2, 1));
        r.wait_for(5); // nobody reads: returns at once
    }

    #[test]
    fn heavy_fence_runs() {
        heavy_fence();
        // On Linux hosts that allow it, membarrier is in use.
        if cfg!(target_os = "linux") {
            eprintln!("asymmetric fences: {}", asymmetric_fences());
        }
    }
}
