//! Idempotency keys: begin / complete / abandon records with leases.
//!
//! A client sends a request with an idempotency key; the server calls
//! [`Store::begin`] with that key and a fingerprint of the request, and
//! either does the work (it got [`Begin::Started`] and an owner token) or
//! answers from the record. When the work is done the owner calls
//! [`Store::complete`] with the response bytes, which are then replayed to
//! every retry for the retention time; if the work failed in a way that may
//! be retried, the owner calls [`Store::abandon`] instead. This is the scheme
//! of Stripe's idempotency keys and of the IETF draft "The Idempotency-Key
//! HTTP Header Field".
//!
//! ```
//! use resilience::idempotency::{Begin, Config, Store};
//! use resilience::clock::SECOND;
//!
//! let store = Store::new(Config::default()).unwrap();
//! let (key, fingerprint) = (b"order-42", b"sha256-of-the-request");
//! match store.begin(key, fingerprint, 30 * SECOND).unwrap() {
//!     Begin::Started { token, .. } => {
//!         let response = b"201 Created"; // ... do the work once ...
//!         store.complete(key, token, response).unwrap();
//!     }
//!     Begin::Completed { response } => assert_eq!(&response[..], b"201 Created"),
//!     Begin::InProgress { retry_after } => { /* 409, Retry-After */ }
//!     Begin::Mismatch => { /* 422: same key, different request */ }
//! }
//! ```
//!
//! # Semantics
//!
//! - **Keys and fingerprints are bytes**, compared exactly. The caller
//!   fingerprints the request however it likes (a hash of method, path and
//!   body, say); an empty fingerprint is allowed and then only the key
//!   matters. Keys must be 1..=[`Config::max_key_len`] bytes (255 by
//!   default, as Stripe), fingerprints at most [`Config::max_fingerprint_len`]
//!   (64, room for SHA-512), responses at most [`Config::max_response_len`].
//! - **Answer priority** in `begin`, for a live record: a different
//!   fingerprint answers [`Begin::Mismatch`] first, whether the record is in
//!   progress or completed — a caller who reuses a key for another request
//!   learns so at once. Otherwise an in-progress record answers
//!   [`Begin::InProgress`] with the lease time left as `retry_after`, and a
//!   completed one [`Begin::Completed`] with the stored response.
//! - **Leases.** A started record belongs to its token until `now + lease`.
//!   Once the lease has run out the record is stale: the next `begin` takes
//!   over (whatever its fingerprint: a request that never completed leaves
//!   no result to protect) and gets a new token with `takeover: true`, and
//!   the stale owner's later `complete` / `abandon` is refused
//!   ([`Error::NotOwner`]; [`Error::AlreadyCompleted`] once the new owner
//!   has completed; [`Error::NotFound`] if the record is gone). A `begin`
//!   answered [`Error::Full`] removes nothing, not even that stale record.
//!   Until someone takes over, the stale owner may still complete: its work
//!   is done and storing it prevents a duplicate. A stale record may be
//!   evicted for room at any time; a sweep removes it only one retention
//!   period ([`Config::retention`]) after its lease ran out, so a frequent
//!   background sweep does not cut that window short.
//! - **Owner tokens** are non-zero `u64`s, unique within a store (a keyed
//!   permutation of a counter, so no two begins get the same token) and not
//!   predictable from earlier tokens without the store's random key. A token
//!   is valid only for the record generation it was issued for.
//! - **Retention.** A completed record is replayed until `now + retention`
//!   (exclusive; 24 hours by default, as Stripe), then it is as if it never
//!   existed: the next `begin` starts afresh. Expired records are removed
//!   lazily when their key is touched, under budget pressure, and by the
//!   bounded [`Store::sweep_expired`].
//! - **Byte budget.** Every record is charged [`record_cost`]: its key
//!   (twice: map and deadline index), fingerprint and response plus
//!   [`RECORD_OVERHEAD`]. The budget [`Config::max_bytes`] is split evenly
//!   between the shards. To admit a new record (or a response), a shard
//!   removes completed records and stale in-progress records, earliest
//!   deadline first (retention end, lease end). In-progress records with a
//!   live lease are never evicted: when they alone fill the shard, `begin`
//!   answers [`Error::Full`] — shed load — and removes nothing; `complete`
//!   answers `Full` too and leaves the record in progress, so the owner can
//!   retry or abandon.
//! - **Time** is monotonic nanoseconds; every call has an `_at` variant that
//!   takes `now`. A clock that steps backwards is tolerated (deadlines are
//!   simply not reached yet).
//!
//! # Concurrency
//!
//! [`Store`] is `N` shards (a power of two), each a [`Table`] behind a mutex
//! from [`crate::sync`]; a key's shard is chosen by a seeded hash. Critical
//! sections are short (one hash lookup, at most a few index updates) and no
//! user code runs under a lock; the response bytes are copied before the lock
//! is taken and handed back as a shared `Arc<[u8]>` (a reference count, no
//! copy) on replay. [`Table`] is one shard on its own, for single-owner use.

mod table;

pub use table::Table;

use crate::clock::{Clock, MonotonicClock, Nanos};
use crate::hash::SeededState;
use crate::sync::{Arc, AtomicUsize, CachePadded, Mutex, MutexGuard, Ordering};
use std::collections::hash_map::RandomState;
use std::fmt;

/// An owner token: proves that the caller started the record. Never 0.
pub type Token = u64;

/// Bytes charged per record beyond its key, fingerprint and response: an
/// estimate of the map slot, the deadline-index entry and the allocation
/// headers of its buffers.
pub const RECORD_OVERHEAD: usize = 192;

/// The bytes a record is charged against the budget.
pub const fn record_cost(key_len: usize, fingerprint_len: usize, response_len: usize) -> usize {
    2 * key_len + fingerprint_len + response_len + RECORD_OVERHEAD
}

/// Hours, in nanoseconds.
const HOUR: Nanos = 3600 * crate::clock::SECOND;

/// Configuration of a [`Store`] (or a [`Table`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Number of shards, a power of two in 1..=4096 (default 16). The byte
    /// budget is split evenly between them.
    pub shards: usize,
    /// Byte budget for all records ([`record_cost`] each); default 64 MiB.
    /// `max_bytes / shards` must hold one record of maximum size.
    pub max_bytes: usize,
    /// Retention of completed records used by [`Store::complete`]; default
    /// 24 hours. Must be non-zero.
    pub retention: Nanos,
    /// Longest key accepted, in bytes (default 255, Stripe's limit).
    pub max_key_len: usize,
    /// Longest fingerprint accepted, in bytes (default 64).
    pub max_fingerprint_len: usize,
    /// Longest response accepted, in bytes (default 1 MiB).
    pub max_response_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            shards: 16,
            max_bytes: 64 << 20,
            retention: 24 * HOUR,
            max_key_len: 255,
            max_fingerprint_len: 64,
            max_response_len: 1 << 20,
        }
    }
}

impl Config {
    #[cfg(all(test, not(resilience_loom)))]
    pub(crate) fn small_for_tests() -> Self {
        Self {
            shards: 1,
            max_bytes: 64 << 10,
            retention: 1_000,
            max_key_len: 32,
            max_fingerprint_len: 16,
            max_response_len: 256,
        }
    }
}

/// The argument limits, copied out of a [`Config`] after validation.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_key_len: usize,
    max_fingerprint_len: usize,
    max_response_len: usize,
    retention: Nanos,
}

impl Limits {
    fn from_config(c: &Config) -> Result<Self, Error> {
        if c.max_key_len == 0 {
            return Err(Error::InvalidConfig("max_key_len must be at least 1"));
        }
        if c.retention == 0 {
            return Err(Error::InvalidConfig("retention must be non-zero"));
        }
        // Keeps record_cost far from overflow.
        let cap = 1usize << 40;
        if c.max_key_len > cap || c.max_fingerprint_len > cap || c.max_response_len > cap {
            return Err(Error::InvalidConfig("a length limit is absurdly large"));
        }
        Ok(Self {
            max_key_len: c.max_key_len,
            max_fingerprint_len: c.max_fingerprint_len,
            max_response_len: c.max_response_len,
            retention: c.retention,
        })
    }

    fn max_record_cost(&self) -> usize {
        record_cost(self.max_key_len, self.max_fingerprint_len, self.max_response_len)
    }

    fn check_key(&self, key: &[u8]) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > self.max_key_len {
            return Err(Error::KeyTooLong { len: key.len(), max: self.max_key_len });
        }
        Ok(())
    }

    fn check_begin(&self, key: &[u8], fingerprint: &[u8], lease: Nanos) -> Result<(), Error> {
        self.check_key(key)?;
        if fingerprint.len() > self.max_fingerprint_len {
            return Err(Error::FingerprintTooLong { len: fingerprint.len(), max: self.max_fingerprint_len });
        }
        if lease == 0 {
            return Err(Error::ZeroLease);
        }
        Ok(())
    }

    fn check_complete(&self, key: &[u8], response_len: usize, retention: Nanos) -> Result<(), Error> {
        self.check_key(key)?;
        if response_len > self.max_response_len {
            return Err(Error::ResponseTooLong { len: response_len, max: self.max_response_len });
        }
        if retention == 0 {
            return Err(Error::ZeroRetention);
        }
        Ok(())
    }
}

/// The answer of `begin`. Equality compares response bytes.
#[derive(Debug, Clone)]
pub enum Begin {
    /// The caller owns the record and must `complete` or `abandon` it with
    /// `token` before the lease runs out.
    Started {
        /// The owner token.
        token: Token,
        /// Whether a stale in-progress record (its owner's lease ran out) was
        /// replaced: the earlier attempt may have done part of the work.
        takeover: bool,
    },
    /// Another caller owns the record; try again after `retry_after`
    /// nanoseconds (the time left on its lease, at least 1).
    InProgress {
        /// Nanoseconds until the current lease runs out.
        retry_after: Nanos,
    },
    /// The request was already done: replay `response`.
    Completed {
        /// The stored response (shared, not copied).
        response: Arc<[u8]>,
    },
    /// The key is held by a record with a different fingerprint.
    Mismatch,
}

// By hand: loom's `Arc` has no `PartialEq`.
impl PartialEq for Begin {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Begin::Started { token: a, takeover: x }, Begin::Started { token: b, takeover: y }) => {
                a == b && x == y
            }
            (Begin::InProgress { retry_after: a }, Begin::InProgress { retry_after: b }) => a == b,
            (Begin::Completed { response: a }, Begin::Completed { response: b }) => a[..] == b[..],
            (Begin::Mismatch, Begin::Mismatch) => true,
            _ => false,
        }
    }
}

impl Eq for Begin {}

impl Begin {
    /// The owner token, if started.
    pub fn token(&self) -> Option<Token> {
        match self {
            Begin::Started { token, .. } => Some(*token),
            _ => None,
        }
    }

    /// The stored response, if completed.
    pub fn response(&self) -> Option<&[u8]> {
        match self {
            Begin::Completed { response } => Some(response),
            _ => None,
        }
    }

    /// Copies the stored response into `buf` for callers that own their
    /// memory (the C ABI): `Ok(len)` with the bytes written (0 when there is
    /// no response), or `Err(needed)` when `buf` is shorter than the
    /// response, writing nothing.
    pub fn write_response(&self, buf: &mut [u8]) -> Result<usize, usize> {
        let Some(r) = self.response() else { return Ok(0) };
        match buf.get_mut(..r.len()) {
            Some(dst) => {
                dst.copy_from_slice(r);
                Ok(r.len())
            }
            None => Err(r.len()),
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The key is empty.
    EmptyKey,
    /// The key is longer than [`Config::max_key_len`].
    KeyTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The fingerprint is longer than [`Config::max_fingerprint_len`].
    FingerprintTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The response is longer than [`Config::max_response_len`].
    ResponseTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A lease of 0 ns would run out at once.
    ZeroLease,
    /// A retention of 0 ns would expire at once.
    ZeroRetention,
    /// The configuration is inconsistent (which limit, in words).
    InvalidConfig(&'static str),
    /// The budget is taken by in-progress records: shed load and retry later.
    Full,
    /// No live record for the key (never begun, abandoned, expired, evicted
    /// or taken over and gone).
    NotFound,
    /// The record is in progress under another token (a stale owner whose
    /// lease was taken over, or a wrong token).
    NotOwner,
    /// The record is already completed.
    AlreadyCompleted,
}

impl Error {
    /// Whether the error is about the arguments or configuration (the
    /// caller's bug) rather than the state of the store.
    pub fn is_invalid_argument(&self) -> bool {
        !matches!(self, Error::Full | Error::NotFound | Error::NotOwner | Error::AlreadyCompleted)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EmptyKey => f.write_str("idempotency key is empty"),
            Error::KeyTooLong { len, max } => write!(f, "idempotency key of {len} bytes exceeds {max}"),
            Error::FingerprintTooLong { len, max } => write!(f, "fingerprint of {len} bytes exceeds {max}"),
            Error::ResponseTooLong { len, max } => write!(f, "response of {len} bytes exceeds {max}"),
            Error::ZeroLease => f.write_str("lease must be non-zero"),
            Error::ZeroRetention => f.write_str("retention must be non-zero"),
            Error::InvalidConfig(why) => write!(f, "invalid idempotency config: {why}"),
            Error::Full => f.write_str("idempotency store full of in-progress records"),
            Error::NotFound => f.write_str("no live idempotency record for this key"),
            Error::NotOwner => f.write_str("token does not own this idempotency record"),
            Error::AlreadyCompleted => f.write_str("idempotency record already completed"),
        }
    }
}

impl std::error::Error for Error {}

/// Counters and occupancy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `begin` calls that started a record (takeovers included).
    pub started: u64,
    /// Started records that replaced a stale in-progress record.
    pub takeovers: u64,
    /// `begin` calls answered with a stored response.
    pub replays: u64,
    /// `begin` calls answered "in progress".
    pub in_progress: u64,
    /// `begin` calls answered "mismatch".
    pub mismatches: u64,
    /// `begin` calls refused with [`Error::Full`].
    pub full: u64,
    /// Successful `complete` calls.
    pub completed: u64,
    /// `complete` calls refused with [`Error::Full`].
    pub complete_full: u64,
    /// Successful `abandon` calls.
    pub abandoned: u64,
    /// Records removed before their deadline to make room.
    pub evicted: u64,
    /// Records removed after their deadline (lazily or by a sweep).
    pub expired: u64,
    /// Records held now.
    pub records: u64,
    /// Of which in progress.
    pub in_progress_records: u64,
    /// Bytes charged to the budget now.
    pub bytes_used: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.started += o.started;
        self.takeovers += o.takeovers;
        self.replays += o.replays;
        self.in_progress += o.in_progress;
        self.mismatches += o.mismatches;
        self.full += o.full;
        self.completed += o.completed;
        self.complete_full += o.complete_full;
        self.abandoned += o.abandoned;
        self.evicted += o.evicted;
        self.expired += o.expired;
        self.records += o.records;
        self.in_progress_records += o.in_progress_records;
        self.bytes_used += o.bytes_used;
    }
}

/// A thread-safe idempotency store: shards of [`Table`]s behind mutexes.
///
/// Every method is thread-safe and takes `&self`; the variants without
/// `_at` read the store's clock.
#[derive(Debug)]
pub struct Store<C = MonotonicClock> {
    shards: Box<[CachePadded<Mutex<Table>>]>,
    route: SeededState,
    mask: usize,
    sweep_cursor: AtomicUsize,
    limits: Limits,
    clock: C,
}

impl Store<MonotonicClock> {
    /// A store on the monotonic clock.
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_clock(config, MonotonicClock)
    }
}

impl<C: Clock> Store<C> {
    /// A store reading time from `clock` (a `ManualClock` in tests).
    pub fn with_clock(config: Config, clock: C) -> Result<Self, Error> {
        let limits = Limits::from_config(&config)?;
        let n = config.shards;
        if n == 0 || !n.is_power_of_two() || n > 4096 {
            return Err(Error::InvalidConfig("shards must be a power of two in 1..=4096"));
        }
        let budget = config.max_bytes / n;
        if budget < limits.max_record_cost() {
            return Err(Error::InvalidConfig("max_bytes / shards must hold one record of maximum size"));
        }
        let key = RandomState::new();
        let shards = (0..n)
            .map(|i| {
                let tokens = table::Tokens::new(key.clone(), i as u64, n as u64);
                CachePadded(Mutex::new(Table::with_parts(limits, budget, tokens)))
            })
            .collect();
        Ok(Self {
            shards,
            route: SeededState::new(),
            mask: n - 1,
            sweep_cursor: AtomicUsize::new(0),
            limits,
            clock,
        })
    }

    /// The index of the shard that holds `key` (the engine routes by it).
    pub fn shard_of(&self, key: &[u8]) -> usize {
        (self.route.hash_bytes(key) >> 32) as usize & self.mask
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Table> {
        // No code panics while holding a shard lock, so a poisoned lock still
        // guards a consistent table.
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Store::begin_at`] at the clock's now.
    pub fn begin(&self, key: &[u8], fingerprint: &[u8], lease: Nanos) -> Result<Begin, Error> {
        self.limits.check_begin(key, fingerprint, lease)?;
        // The clock is read under the shard lock, so the times that one
        // key's record sees never go backwards between racing callers (a
        // lease can never look longer than it is).
        let mut table = self.lock(self.shard_of(key));
        let now = self.clock.now();
        table.begin_at(key, fingerprint, lease, now)
    }

    /// Claims `key` for the request fingerprinted `fingerprint` with a lease
    /// of `lease` ns from `now`, or answers from its record (see [`Begin`]
    /// and the module documentation for the priority of answers).
    ///
    /// Errors: an invalid argument ([`Error::is_invalid_argument`]), or
    /// [`Error::Full`] when in-progress records fill the key's shard.
    pub fn begin_at(&self, key: &[u8], fingerprint: &[u8], lease: Nanos, now: Nanos) -> Result<Begin, Error> {
        self.limits.check_begin(key, fingerprint, lease)?;
        self.lock(self.shard_of(key)).begin_at(key, fingerprint, lease, now)
    }

    /// [`Store::complete_at`] with the configured retention, at the clock's
    /// now.
    pub fn complete(&self, key: &[u8], token: Token, response: &[u8]) -> Result<(), Error> {
        let retention = self.limits.retention;
        self.limits.check_complete(key, response.len(), retention)?;
        let shared = crate::sync::arc_slice(response);
        // As in `begin`: the clock is read under the shard lock.
        let mut table = self.lock(self.shard_of(key));
        let now = self.clock.now();
        table.complete_shared(key, token, shared, retention, now)
    }

    /// Stores `response` for `key`, to be replayed until `now + retention`,
    /// if `token` owns the record.
    ///
    /// Errors: an invalid argument; [`Error::NotFound`] if there is no live
    /// record; [`Error::NotOwner`] if another token owns it;
    /// [`Error::AlreadyCompleted`]; [`Error::Full`] if the response does not
    /// fit (the record stays in progress).
    pub fn complete_at(
        &self,
        key: &[u8],
        token: Token,
        response: &[u8],
        retention: Nanos,
        now: Nanos,
    ) -> Result<(), Error> {
        self.limits.check_complete(key, response.len(), retention)?;
        // Copied before the lock is taken.
        let shared = crate::sync::arc_slice(response);
        self.lock(self.shard_of(key)).complete_shared(key, token, shared, retention, now)
    }

    /// [`Store::abandon_at`] at the clock's now.
    pub fn abandon(&self, key: &[u8], token: Token) -> Result<(), Error> {
        self.limits.check_key(key)?;
        let mut table = self.lock(self.shard_of(key));
        let now = self.clock.now();
        table.abandon_at(key, token, now)
    }

    /// Releases `key` if `token` owns its in-progress record, so that a
    /// retry starts afresh. Errors as [`Store::complete_at`] (never `Full`).
    pub fn abandon_at(&self, key: &[u8], token: Token, now: Nanos) -> Result<(), Error> {
        self.limits.check_key(key)?;
        self.lock(self.shard_of(key)).abandon_at(key, token, now)
    }

    /// [`Store::sweep_expired_at`] at the clock's now.
    pub fn sweep_expired(&self, max: usize) -> usize {
        self.sweep_expired_at(self.clock.now(), max)
    }

    /// Removes up to `max` records that are over at `now` (completed past
    /// retention; in progress with a lease that ran out one
    /// [`Config::retention`] ago), returning how many. Visits
    /// shards round-robin from where the previous sweep stopped, taking one
    /// shard lock at a time.
    pub fn sweep_expired_at(&self, now: Nanos, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let n = self.shards.len();
        let start = self.sweep_cursor.load(Ordering::Relaxed) % n;
        let mut removed = 0;
        let mut last = start;
        for i in 0..n {
            if removed >= max {
                break;
            }
            last = (start + i) % n;
            removed += self.lock(last).sweep_expired_at(now, max - removed);
        }
        self.sweep_cursor.store((last + 1) % n, Ordering::Relaxed);
        removed
    }

    /// Counters and occupancy summed over the shards (each read under its
    /// own lock, so the sum is not one atomic snapshot).
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for i in 0..self.shards.len() {
            let s = self.lock(i).stats();
            total.add(&s);
        }
        total
    }

    /// The store's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        assert!(Store::new(Config::default()).is_ok());
        for bad in [
            Config { shards: 0, ..Config::default() },
            Config { shards: 3, ..Config::default() },
            Config { shards: 8192, ..Config::default() },
            Config { retention: 0, ..Config::default() },
            Config { max_key_len: 0, ..Config::default() },
            Config { max_bytes: 1 << 20, ..Config::default() },
            Config { max_response_len: usize::MAX, ..Config::default() },
        ] {
            assert!(matches!(Store::new(bad.clone()), Err(Error::InvalidConfig(_))), "{bad:?}");
        }
        assert!(matches!(
            Table::new(&Config { max_bytes: 10, ..Config::default() }),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn write_response_reports_the_size_needed() {
        let b = Begin::Completed { response: crate::sync::arc_slice(b"hello") };
        let mut small = [0u8; 3];
        assert_eq!(b.write_response(&mut small), Err(5));
        assert_eq!(small, [0; 3]);
        let mut big = [0u8; 8];
        assert_eq!(b.write_response(&mut big), Ok(5));
        assert_eq!(&big[..5], b"hello");
        assert_eq!(Begin::Mismatch.write_response(&mut small), Ok(0));
        assert_eq!(Begin::Started { token: 9, takeover: false }.token(), Some(9));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let store = Store::new(Config::default()).unwrap();
        let long = vec![b'k'; 256];
        let e = store.begin(&long, b"", 1).unwrap_err();
        assert_eq!(e, Error::KeyTooLong { len: 256, max: 255 });
        assert!(e.is_invalid_argument());
        assert_eq!(e.to_string(), "idempotency key of 256 bytes exceeds 255");
        assert!(!Error::Full.is_invalid_argument());
    }
}
