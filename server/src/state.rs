//! One shard's keyed state and the commands that act on it.
//!
//! Every key lives on exactly one shard, so nothing here is shared between
//! threads: the shard's tasks reach it through `Rc` and mutate it through
//! `RefCell`s. `exec` runs one command (its name already resolved to an
//! [`Op`], its arguments after the name as [`Span`]s) and writes the reply.
//!
//! The state is made of the core primitives, one instance per shard:
//! - the cache: [`resilience::cache::Table`] (S3-FIFO eviction, TTL, a
//!   weight budget of `maxmemory / shards` bytes);
//! - `CL.THROTTLE`: a [`KeyedLimiter`] per distinct `(max_burst, count,
//!   period)`, rendered with [`Decision::throttle_reply`];
//! - breakers: a [`breaker::Registry`];
//! - idempotency: an [`idempotency::Table`] with `Config::idem_budget() / shards`.
//!
//! It also keeps the `WATCH`es on its keys: each watcher (a connection id)
//! of a key, whether the key was live when watched, and whether a write has
//! touched it since. `EXEC`'s check on the shard and the transaction's
//! commands run back to back, so nothing can slip in between.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use resilience::breaker::{self, Outcome, RawPermit, Recorded, SlidingWindow};
use resilience::cache::{self, Inserted};
use resilience::clock::{self, Nanos, MILLISECOND, SECOND};
use resilience::hash::SeededState;
use resilience::idempotency::{self, Begin};
use resilience::limit::{AutoClock, Decision, FullPolicy, KeyedLimiter, Quota};

use crate::command::{self, glob, parse_i64, Op, ScanArgs};
use crate::config::Config;
use crate::resp::{Encoder, Proto, Span};

/// Where a command's reply goes. Plain bytes for the connection's own
/// shard; for a reply that crosses the mesh, large values are passed as
/// shared handles instead of being copied (see `conn`).
pub trait Sink {
    /// The byte buffer replies are encoded into.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Writes `v` as a bulk string.
    fn value(&mut self, v: &Arc<[u8]>) {
        Encoder::bulk(self.buf(), v)
    }
}

impl Sink for Vec<u8> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self
    }
}

/// Per-shard counters, reported by `INFO`.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Commands parsed on this shard's connections.
    pub ops: Cell<u64>,
    /// Connections open on this shard.
    pub connections: Cell<u64>,
    /// Writes refused (idempotency store full, breaker registry full,
    /// rate-limiter table full).
    pub rejections: Cell<u64>,
    /// `CL.THROTTLE` calls allowed.
    pub throttle_allowed: Cell<u64>,
    /// `CL.THROTTLE` calls limited.
    pub throttle_limited: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// Bytes charged per cache entry besides its key and value (the table's
/// slot and the value's allocation header).
const ENTRY_OVERHEAD: u64 = 64;

/// A cached value and its deadline (kept beside the table's copy of the
/// deadline so that `TTL` can read it).
#[derive(Debug, Clone)]
struct Entry {
    value: Arc<[u8]>,
    /// Deadline, or [`cache::ttl::NEVER`] (0) for none.
    expires: Nanos,
}

impl Entry {
    /// True when the entry has not expired at `now`.
    fn live(&self, now: Nanos) -> bool {
        self.expires == 0 || self.expires > now
    }
}

/// The expiry option named `opt` (upper case), if it is one.
fn expiry_option(opt: &[u8]) -> Option<Expiry> {
    match opt {
        b"EX" => Some(Expiry::In(SECOND)),
        b"PX" => Some(Expiry::In(MILLISECOND)),
        b"EXAT" => Some(Expiry::At(1000)),
        b"PXAT" => Some(Expiry::At(1)),
        _ => None,
    }
}

/// How `SET` (and `SETEX` / `PSETEX`) writes: the deadline (0: none) and
/// the conditions and answer asked for.
#[derive(Debug, Clone, Copy, Default)]
struct Store {
    expires: Nanos,
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
}

/// One command as the shard runs it: its name, the connection's database,
/// its arguments (spans of `buf`, keys already in stored form), the time it
/// runs at and the protocol of its reply.
#[derive(Clone, Copy)]
struct Req<'a> {
    op: Op,
    db: u8,
    buf: &'a [u8],
    args: &'a [Span],
    now: Nanos,
    proto: Proto,
}

/// `BREAKER.CONFIG`'s `name value` pairs, checked, with errors naming the
/// command's options: rates are percentages (decimals allowed), the rest
/// whole numbers; one kind of window.
fn breaker_settings(buf: &[u8], pairs: &[Span]) -> Result<breaker::Config, String> {
    if !pairs.len().is_multiple_of(2) {
        return Err("ERR syntax error".into());
    }
    let mut cfg = breaker::Config::default();
    let mut window = None;
    for pair in pairs.chunks_exact(2) {
        let name = pair[0].of(buf).to_ascii_lowercase();
        let text = std::str::from_utf8(pair[1].of(buf)).unwrap_or("");
        let shown = String::from_utf8_lossy(&name).into_owned();
        let rate = || text.parse::<f32>().ok().filter(|p| *p > 0.0 && *p <= 100.0);
        let whole = |max: u64| text.parse::<u64>().ok().filter(|n| (1..=max).contains(n));
        let bad = |range: &str| format!("ERR breaker setting '{shown}' must be {range}");
        match name.as_slice() {
            b"failure_rate" => {
                cfg.failure_rate_threshold = rate().ok_or_else(|| bad("a percentage in (0, 100]"))?
            }
            b"slow_call_rate" => {
                cfg.slow_call_rate_threshold = rate().ok_or_else(|| bad("a percentage in (0, 100]"))?
            }
            b"slow_call_ms" | b"open_ms" | b"half_open_max_ms" => {
                // Half-open's limit may be 0 (no limit); the others not.
                let min = u64::from(name != b"half_open_max_ms");
                let ms = text
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= min && *n <= u64::MAX / MILLISECOND)
                    .ok_or_else(|| bad(&format!("a whole number of milliseconds, at least {min}")))?;
                let ns = ms * MILLISECOND;
                match name.as_slice() {
                    b"slow_call_ms" => cfg.slow_call_duration_threshold = ns,
                    b"open_ms" => cfg.wait_in_open = ns,
                    _ => cfg.max_wait_in_half_open = ns,
                }
            }
            b"window" | b"window_seconds" => {
                if window.is_some_and(|w: &[u8]| w != name.as_slice()) {
                    return Err("ERR give either window or window_seconds, not both".into());
                }
                cfg.sliding_window = if name == b"window" {
                    let size = whole(u64::from(breaker::MAX_COUNT_WINDOW))
                        .ok_or_else(|| bad("from 1 to 65536 calls"))?;
                    SlidingWindow::CountBased { size: size as u32 }
                } else {
                    let secs = whole(u64::from(breaker::MAX_TIME_WINDOW_SECONDS))
                        .ok_or_else(|| bad("from 1 to 3600 seconds"))?;
                    SlidingWindow::TimeBased { seconds: secs as u32 }
                };
                window = Some(if name == b"window" { &b"window"[..] } else { &b"window_seconds"[..] });
            }
            b"minimum_calls" => {
                cfg.minimum_calls = whole(u64::from(u32::MAX))
                    .ok_or_else(|| bad("a whole number of calls, at least 1"))?
                    as u32
            }
            b"half_open_calls" => {
                cfg.permitted_calls_in_half_open = whole(u64::from(breaker::MAX_HALF_OPEN_CALLS))
                    .ok_or_else(|| bad("from 1 to 1023 calls"))?
                    as u32
            }
            _ => return Err(format!("ERR unknown breaker setting '{shown}'")),
        }
    }
    cfg.validate().map_err(|e| format!("ERR {e}"))?;
    Ok(cfg)
}

/// How an expiry argument counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// From now, in units of this many nanoseconds (`EX`, `PX`, `SETEX`).
    In(u64),
    /// At a Unix time, in units of this many milliseconds (`EXAT`, `PXAT`).
    At(i64),
}

/// Why an expiry argument was refused.
enum BadExpiry {
    NotInteger,
    Invalid,
}

impl BadExpiry {
    fn message(&self, command: &str) -> String {
        match self {
            Self::NotInteger => "ERR value is not an integer or out of range".into(),
            Self::Invalid => format!("ERR invalid expire time in '{command}' command"),
        }
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_ms() -> i64 {
    (unix_ns() / 1_000_000).min(i64::MAX as u128) as i64
}

/// A deadline kept on the monotonic clock of `now`, as Unix milliseconds
/// (to the nearest: Redis keeps whole milliseconds, so a deadline set from a
/// Unix time reads back as that time).
fn deadline_unix_ms(deadline: Nanos, now: Nanos) -> i64 {
    let at_ns = unix_ns() + deadline.saturating_sub(now) as u128;
    ((at_ns + 500_000) / 1_000_000).min(i64::MAX as u128) as i64
}

/// How far the wall clock is into its current millisecond, in nanoseconds.
/// A relative expiry ends that much earlier, so that deadlines fall on whole
/// Unix milliseconds as Redis's do (`mstime() + ms`): two expiries set in
/// the same millisecond are equal for `EXPIRE ... GT/LT`.
fn ms_fraction() -> Nanos {
    (unix_ns() % MILLISECOND as u128) as Nanos
}

/// The deadline (on the monotonic clock of `now`) that an expiry argument
/// asks for, with Redis's checks: not positive, or overflowing, is invalid.
/// A Unix time already past gives `now` (expired on arrival). A relative
/// expiry beyond what `Nanos` can hold (about 584 years) is refused too.
fn deadline(kind: Expiry, arg: &[u8], now: Nanos) -> Result<Nanos, BadExpiry> {
    let n = parse_i64(arg).ok_or(BadExpiry::NotInteger)?;
    if n <= 0 {
        return Err(BadExpiry::Invalid);
    }
    match kind {
        Expiry::In(unit) => (n as u64)
            .checked_mul(unit)
            .and_then(|d| now.checked_add(d))
            .map(|at| at - ms_fraction())
            .ok_or(BadExpiry::Invalid),
        Expiry::At(unit_ms) => {
            let at_ms = n.checked_mul(unit_ms).ok_or(BadExpiry::Invalid)?;
            // In nanoseconds, so that EXPIRETIME gives the same time back.
            let ahead = at_ms as i128 * MILLISECOND as i128 - unix_ns() as i128;
            if ahead <= 0 {
                return Ok(now);
            }
            u64::try_from(ahead).ok().and_then(|d| now.checked_add(d)).ok_or(BadExpiry::Invalid)
        }
    }
}

extern "C" {
    /// `src/float.c`: `cur` (null: none) plus `incr` printed into `out`;
    /// the length, or -1 / -2 (not a float), -3 (NaN or infinite), -4.
    fn rsl_incrbyfloat(
        cur: *const libc::c_char,
        cur_len: usize,
        incr: *const libc::c_char,
        incr_len: usize,
        out: *mut libc::c_char,
        out_len: usize,
    ) -> libc::c_long;
}

/// Redis's largest string (`proto-max-bulk-len`): `SETRANGE` refuses to
/// grow a value past it.
const MAX_STRING: u64 = 512 << 20;

/// The bytes `GETRANGE start end` takes from a value of `len` bytes, as
/// Redis counts them: negative indices from the end, both ends inclusive,
/// clamped; empty when the range is.
fn byte_range(len: usize, start: i64, end: i64) -> std::ops::Range<usize> {
    let len = len as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return 0..0;
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
    if start > end {
        return 0..0;
    }
    start as usize..end as usize + 1
}

/// The reply to a write the memory budget cannot take.
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// True when an entry for `key` with a value of `len` bytes fits the shard's
/// weight budget at all (eviction makes room for anything that fits).
fn fits(kv: &Kv, key: &[u8], len: usize) -> bool {
    key.len() as u64 + len as u64 + ENTRY_OVERHEAD <= kv.max_weight()
}

// The cache's weigher is `fn(&K, &V)` with `K = Box<[u8]>`.
#[allow(clippy::borrowed_box)]
fn weigh(key: &Box<[u8]>, e: &Entry) -> u64 {
    key.len() as u64 + e.value.len() as u64 + ENTRY_OVERHEAD
}

type Kv = cache::Table<Box<[u8]>, Entry>;

/// First byte of a stored key that is not a plain key of database 0: the
/// next byte is its database, the rest the key (a database-0 key that
/// itself starts with this byte is stored escaped, as database 0).
const DB_MARK: u8 = 0xFF;

/// How `key` of database `db` is stored: as it is for database 0 (the
/// common case costs nothing), else behind `DB_MARK, db`.
pub fn stored_key(db: u8, key: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if db == 0 && key.first() != Some(&DB_MARK) {
        std::borrow::Cow::Borrowed(key)
    } else {
        std::borrow::Cow::Owned([&[DB_MARK, db][..], key].concat())
    }
}

/// The database and the key of a stored key ([`stored_key`] undone).
pub fn user_key(stored: &[u8]) -> (u8, &[u8]) {
    match stored {
        [DB_MARK, db, key @ ..] => (*db, key),
        key => (0, key),
    }
}

/// The shard's keyspace: the cache table, and whether the command running
/// now changed a live key. That flag is what a `WATCH` sees, as Redis's
/// `signalModifiedKey`: a write that stores counts (even of the same value),
/// a refused or conditional write that does nothing does not, and neither
/// does deleting a key that had already expired.
struct Keyspace {
    table: Kv,
    changed: bool,
}

impl std::ops::Deref for Keyspace {
    type Target = Kv;
    fn deref(&self) -> &Kv {
        &self.table
    }
}

impl Keyspace {
    /// A read (it bumps the entry's frequency; not a change).
    fn get(&mut self, key: &[u8], now: Nanos) -> Option<&Entry> {
        self.table.get(key, now)
    }

    fn insert(&mut self, key: Box<[u8]>, e: Entry, expires: Nanos, now: Nanos) -> Inserted<Entry> {
        let r = self.table.insert(key, e, expires, now);
        self.changed |= match &r {
            Inserted::Rejected(old) => old.as_ref().is_some_and(|o| o.live(now)),
            _ => true,
        };
        r
    }

    fn remove(&mut self, key: &[u8], now: Nanos) -> Option<(Box<[u8]>, Entry)> {
        let r = self.table.remove(key);
        self.changed |= r.as_ref().is_some_and(|(_, e)| e.live(now));
        r
    }

    /// Moves entry `e` (read from `from`) to `to`, TTL and all; false, with
    /// `from` put back, when the table refuses it.
    fn relocate(&mut self, from: &[u8], to: &[u8], e: Entry, now: Nanos) -> bool {
        // The old entry goes first, so its weight makes room for the new.
        self.remove(from, now);
        match self.insert(to.into(), e.clone(), e.expires, now) {
            Inserted::Rejected(_) => {
                self.insert(from.into(), e.clone(), e.expires, now);
                false
            }
            _ => true,
        }
    }

    fn clear(&mut self) {
        self.changed = true;
        self.table.clear();
    }

    fn sweep_expired(&mut self, max: usize, now: Nanos) -> usize {
        self.table.sweep_expired(max, now)
    }
}

/// `CL.THROTTLE`'s buckets: one keyed limiter per distinct quota.
type Limiter = KeyedLimiter<Box<[u8]>, SeededState, AutoClock>;

/// One connection's `WATCH` of a key.
#[derive(Debug, Clone, Copy)]
struct Watcher {
    conn: u64,
    /// The key had a live value when it was watched: a later expiry or
    /// eviction (which no command reports) is a change too.
    live: bool,
    /// A write has touched the key since.
    dirty: bool,
}

/// Most distinct `CL.THROTTLE` quotas one shard keeps.
const MAX_QUOTAS: usize = 1024;

/// One shard's state.
pub struct ShardState {
    shard: usize,
    shards: usize,
    kv: RefCell<Keyspace>,
    /// Some key was stored with [`DB_MARK`] since the last `FLUSHALL`: until
    /// then `DBSIZE` and `FLUSHDB` need not look at the keys one by one.
    marked: Cell<bool>,
    budget: u64,
    throttle: RefCell<HashMap<(i64, i64, i64), Limiter, SeededState>>,
    max_throttle_keys: usize,
    breakers: breaker::Registry,
    idem: RefCell<idempotency::Table>,
    idem_cfg: idempotency::Config,
    idem_retention: Nanos,
    /// `SELECT`'s range (for `MOVE` and `COPY ... DB`).
    databases: usize,
    watched: RefCell<HashMap<Box<[u8]>, Vec<Watcher>, SeededState>>,
    /// The shard's connections.
    pub clients: crate::clients::Registry,
    /// Counters for `INFO`.
    pub stats: ShardStats,
}

impl ShardState {
    /// The state of shard `shard` of `shards`, with its share of the budgets.
    pub fn new(shard: usize, shards: usize, cfg: &Config) -> Result<Self, String> {
        let shards = shards.max(1) as u64;
        let budget = cfg.maxmemory / shards;
        if budget < 4096 {
            return Err(format!("maxmemory {} is too small for {shards} shards", cfg.maxmemory));
        }
        let kv = Kv::with_limits(cache::Limits::weight(budget), Some(weigh), SeededState::new())
            .map_err(|e| format!("cache: {e}"))?;
        let idem_cfg = idempotency::Config {
            max_bytes: cfg.idem_budget() / shards as usize,
            retention: clock::nanos(cfg.idem_retention).max(1),
            ..idempotency::Config::default()
        };
        let largest = idempotency::record_cost(
            idem_cfg.max_key_len,
            idem_cfg.max_fingerprint_len,
            idem_cfg.max_response_len,
        );
        if idem_cfg.max_bytes < largest {
            return Err(format!(
                "idem-max-bytes {} is too small for {shards} shards: each shard needs at least {largest} bytes \
                 (one record of the largest size)",
                cfg.idem_budget()
            ));
        }
        let idem = idempotency::Table::new(&idem_cfg).map_err(|e| format!("idempotency: {e}"))?;
        Ok(Self {
            shard,
            shards: shards as usize,
            kv: RefCell::new(Keyspace { table: kv, changed: false }),
            marked: Cell::new(false),
            budget,
            throttle: RefCell::new(HashMap::with_hasher(SeededState::new())),
            max_throttle_keys: cfg.max_throttle_keys.max(1),
            breakers: breaker::Registry::new(cfg.max_breakers.max(1)),
            idem: RefCell::new(idem),
            idem_retention: idem_cfg.retention,
            databases: cfg.databases,
            idem_cfg,
            watched: RefCell::new(HashMap::with_hasher(SeededState::new())),
            clients: crate::clients::Registry::default(),
            stats: ShardStats::default(),
        })
    }

    /// Periodic work: sweeps expired cache entries, refilled buckets and
    /// expired idempotency records.
    pub fn tick(&self) {
        let now = clock::now();
        let mut kv = self.kv.borrow_mut();
        for _ in 0..16 {
            if kv.sweep_expired(1024, now) < 1024 {
                break;
            }
        }
        drop(kv);
        let mut limiters = self.throttle.borrow_mut();
        for l in limiters.values() {
            l.reclaim_at(now);
        }
        limiters.retain(|_, l| !l.is_empty());
        drop(limiters);
        self.idem.borrow_mut().sweep_expired_at(now, 4096);
    }

    /// Runs `op` with `args` (those after the command name, spans of `buf`)
    /// and writes its reply to `out`.
    /// `db` is the connection's selected database: the key of a cache
    /// command is looked up in it, and `KEYS`, `SCAN`, `DBSIZE` and
    /// `FLUSHDB` work on it.
    pub fn exec(&self, op: Op, db: u8, buf: &[u8], args: &[Span], proto: Proto, out: &mut impl Sink) {
        if op.in_database() {
            let marked = |(i, a): (usize, &Span)| op.key_at(i) && a.of(buf).first() == Some(&DB_MARK);
            if !args.is_empty() && (db != 0 || args.iter().enumerate().any(marked)) {
                return self.exec_marked(op, db, buf, args, proto, out);
            }
        }
        self.exec_stored(op, db, buf, args, proto, out)
    }

    /// [`exec`](Self::exec) with the key rewritten as it is stored (the
    /// arguments are copied behind it).
    #[cold]
    fn exec_marked(&self, op: Op, db: u8, buf: &[u8], args: &[Span], proto: Proto, out: &mut impl Sink) {
        self.marked.set(true);
        let mut b = Vec::with_capacity(2 * args.len() + args.iter().map(|a| a.len()).sum::<usize>());
        let mut spans = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            let start = b.len();
            if op.key_at(i) {
                b.extend_from_slice(&stored_key(db, a.of(buf)));
            } else {
                b.extend_from_slice(a.of(buf));
            }
            spans.push(Span { start, end: b.len() });
        }
        self.exec_stored(op, db, &b, &spans, proto, out)
    }

    fn exec_stored(&self, op: Op, db: u8, buf: &[u8], args: &[Span], proto: Proto, out: &mut impl Sink) {
        let r = Req { op, db, buf, args, now: clock::now(), proto };
        if !self.watched.borrow().is_empty() && op.writes() {
            return self.exec_watched(r, out);
        }
        self.run(r, out)
    }

    /// [`exec`](Self::exec) of a write while some key is watched: marks the
    /// watchers of what it changed dirty.
    #[cold]
    fn exec_watched(&self, r: Req<'_>, out: &mut impl Sink) {
        let Req { op, db, buf, args, now, .. } = r;
        if matches!(op, Op::Flushall | Op::Flushdb) {
            // Only the watched keys that hold a live value change (of the
            // selected database, for FLUSHDB).
            let kv = self.kv.borrow();
            for (key, ws) in self.watched.borrow_mut().iter_mut() {
                if (op == Op::Flushall || user_key(key).0 == db) && kv.contains(key, now) {
                    ws.iter_mut().for_each(|w| w.dirty = true);
                }
            }
        }
        self.kv.borrow_mut().changed = false;
        self.run(r, out);
        let changed = std::mem::take(&mut self.kv.borrow_mut().changed);
        let flush = matches!(op, Op::Flushall | Op::Flushdb);
        // COPY and MOVE touch what they change themselves (another
        // database's key, not the source).
        if changed && !flush && !matches!(op, Op::Copy | Op::Move) {
            for (_, key) in args.iter().enumerate().filter(|&(i, _)| op.key_at(i)) {
                self.touch(key.of(buf));
            }
        }
    }

    #[inline]
    fn run(&self, r: Req<'_>, out: &mut impl Sink) {
        let Req { op, buf, args, now, proto, .. } = r;
        match op {
            Op::Get => match self.kv.borrow_mut().get(args[0].of(buf), now) {
                Some(e) => out.value(&e.value),
                None => Encoder::null(out.buf(), proto),
            },
            Op::Set => self.set(buf, args, now, proto, out),
            Op::Setex | Op::Psetex => {
                let unit = if op == Op::Setex { SECOND } else { MILLISECOND };
                let name = if op == Op::Setex { "setex" } else { "psetex" };
                match deadline(Expiry::In(unit), args[1].of(buf), now) {
                    Ok(expires) => {
                        let o = Store { expires, ..Store::default() };
                        self.store(args[0].of(buf), args[2].of(buf), o, now, proto, out)
                    }
                    Err(e) => Encoder::error(out.buf(), &e.message(name)),
                }
            }
            Op::Getdel => match self.kv.borrow_mut().remove(args[0].of(buf), now) {
                Some((_, e)) if e.live(now) => out.value(&e.value),
                _ => Encoder::null(out.buf(), proto),
            },
            Op::IdemBegin => self.idem_begin(buf, args, now, out),
            Op::Getex => self.getex(buf, args, now, proto, out),
            Op::Getset => {
                let o = Store { get: true, ..Store::default() };
                self.store(args[0].of(buf), args[1].of(buf), o, now, proto, out)
            }
            _ => self.exec_small(r, out.buf()),
        }
    }

    /// The commands whose replies are small.
    fn exec_small(&self, r: Req<'_>, out: &mut Vec<u8>) {
        let Req { op, db, buf, args, now, proto } = r;
        let arg = |i: usize| args.get(i).map(|s| s.of(buf)).unwrap_or(&[]);
        match op {
            Op::Del => {
                let live = match self.kv.borrow_mut().remove(arg(0), now) {
                    Some((_, e)) => e.live(now),
                    None => false,
                };
                Encoder::int(out, live as i64);
            }
            Op::Exists => Encoder::int(out, self.kv.borrow().contains(arg(0), now) as i64),
            // An access: bumps the entry's frequency, as Redis's TOUCH
            // updates its LRU/LFU data.
            Op::Touch => Encoder::int(out, self.kv.borrow_mut().get(arg(0), now).is_some() as i64),
            Op::Setnx => {
                let mut kv = self.kv.borrow_mut();
                if kv.contains(arg(0), now) {
                    return Encoder::int(out, 0);
                }
                let entry = Entry { value: Arc::from(arg(1)), expires: 0 };
                match kv.insert(arg(0).into(), entry, 0, now) {
                    Inserted::Rejected(_) => Encoder::error(out, OOM),
                    _ => Encoder::int(out, 1),
                }
            }
            Op::Persist => {
                let mut kv = self.kv.borrow_mut();
                let Some(e) = kv.peek(arg(0), now).filter(|e| e.expires != 0).cloned() else {
                    return Encoder::int(out, 0);
                };
                kv.insert(arg(0).into(), Entry { value: e.value, expires: 0 }, 0, now);
                Encoder::int(out, 1);
            }
            Op::Keys => {
                let kv = self.kv.borrow();
                let keys: Vec<&[u8]> = kv
                    .iter()
                    .filter(|(_, e)| e.live(now))
                    .map(|(k, _)| user_key(k))
                    .filter(|&(d, k)| d == db && glob(arg(0), k))
                    .map(|(_, k)| k)
                    .collect();
                Encoder::command(out, &keys);
            }
            Op::Scan => self.scan(db, buf, args, now, out),
            Op::Strlen => {
                let n = self.kv.borrow().peek(arg(0), now).map_or(0, |e| e.value.len());
                Encoder::int(out, n as i64);
            }
            Op::Append => {
                let mut kv = self.kv.borrow_mut();
                let (value, expires) = match kv.peek(arg(0), now) {
                    Some(e) => ([&e.value[..], arg(1)].concat(), e.expires),
                    None => (arg(1).to_vec(), 0),
                };
                let n = value.len() as i64;
                if !fits(&kv, arg(0), value.len()) {
                    return Encoder::error(out, OOM);
                }
                match kv.insert(arg(0).into(), Entry { value: value.into(), expires }, expires, now) {
                    Inserted::Rejected(_) => Encoder::error(out, OOM),
                    _ => Encoder::int(out, n),
                }
            }
            Op::Getrange | Op::Substr => {
                let (Some(start), Some(end)) = (parse_i64(arg(1)), parse_i64(arg(2))) else {
                    return Encoder::error(out, "ERR value is not an integer or out of range");
                };
                let kv = self.kv.borrow();
                let v = kv.peek(arg(0), now).map_or(&[][..], |e| &e.value[..]);
                Encoder::bulk(out, &v[byte_range(v.len(), start, end)]);
            }
            Op::Setrange => {
                let offset = match parse_i64(arg(1)) {
                    Some(o) if o >= 0 => o as u64,
                    Some(_) => return Encoder::error(out, "ERR offset is out of range"),
                    None => return Encoder::error(out, "ERR value is not an integer or out of range"),
                };
                let patch = arg(2);
                let mut kv = self.kv.borrow_mut();
                let (old, expires) = match kv.peek(arg(0), now) {
                    Some(e) => (&e.value[..], e.expires),
                    None => (&[][..], 0),
                };
                if patch.is_empty() {
                    // Nothing to write: the length as it is, no key made.
                    return Encoder::int(out, old.len() as i64);
                }
                if offset + patch.len() as u64 > MAX_STRING {
                    return Encoder::error(
                        out,
                        "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                    );
                }
                let at = offset as usize;
                let len = old.len().max(at + patch.len());
                // Checked before allocating: the offset alone may ask for
                // 512 MB of zeros.
                if !fits(&kv, arg(0), len) {
                    return Encoder::error(out, OOM);
                }
                let mut value = Vec::with_capacity(len);
                value.extend_from_slice(old);
                value.resize(len, 0);
                value[at..at + patch.len()].copy_from_slice(patch);
                let n = len as i64;
                match kv.insert(arg(0).into(), Entry { value: value.into(), expires }, expires, now) {
                    Inserted::Rejected(_) => Encoder::error(out, OOM),
                    _ => Encoder::int(out, n),
                }
            }
            Op::Type => {
                let t = if self.kv.borrow().contains(arg(0), now) { "string" } else { "none" };
                Encoder::simple(out, t);
            }
            Op::Expire | Op::Pexpire | Op::Expireat | Op::Pexpireat => self.expire(op, buf, args, now, out),
            Op::Expiretime | Op::Pexpiretime => {
                let v = match self.kv.borrow().peek(arg(0), now) {
                    None => -2,
                    Some(e) if e.expires == 0 => -1,
                    Some(e) => {
                        let at = deadline_unix_ms(e.expires, now);
                        if op == Op::Expiretime {
                            at / 1000
                        } else {
                            at
                        }
                    }
                };
                Encoder::int(out, v);
            }
            Op::Ttl | Op::Pttl => {
                let kv = self.kv.borrow();
                let v = match kv.peek(arg(0), now) {
                    None => -2,
                    Some(e) if e.expires == 0 => -1,
                    Some(e) => {
                        // As Redis: whole milliseconds of the deadline less
                        // those of now; TTL rounds them to seconds.
                        let ms = deadline_unix_ms(e.expires, now).saturating_sub(unix_ms()).max(0);
                        if op == Op::Ttl {
                            (ms + 500) / 1000
                        } else {
                            ms
                        }
                    }
                };
                Encoder::int(out, v);
            }
            Op::Incr | Op::Decr | Op::Incrby | Op::Decrby => self.incr(op, buf, args, now, out),
            Op::Incrbyfloat => self.incrbyfloat(arg(0), arg(1), now, out),
            Op::Rename | Op::Renamenx => self.rename(op == Op::Renamenx, arg(0), arg(1), now, out),
            Op::Copy => self.copy(db, buf, args, now, out),
            Op::Move => self.move_key(db, arg(0), arg(1), now, out),
            Op::Msetnx => self.msetnx(buf, args, now, out),
            Op::Dbsize => Encoder::int(out, self.db_size(db) as i64),
            Op::Flushdb if self.marked.get() => {
                // Only this database's keys, found one by one.
                let mut kv = self.kv.borrow_mut();
                let keys: Vec<Box<[u8]>> =
                    kv.iter().filter(|(k, _)| user_key(k).0 == db).map(|(k, _)| k.clone()).collect();
                for k in keys {
                    kv.remove(&k, now);
                }
                Encoder::ok(out);
            }
            Op::Flushdb => {
                // Every key is database 0's.
                if db == 0 {
                    self.kv.borrow_mut().clear();
                }
                Encoder::ok(out);
            }
            // Every database, and the resilience state (which belongs to
            // none).
            Op::Flushall => {
                self.kv.borrow_mut().clear();
                self.marked.set(false);
                self.throttle.borrow_mut().clear();
                for name in self.breakers.names() {
                    self.breakers.remove(&name);
                }
                if let Ok(t) = idempotency::Table::new(&self.idem_cfg) {
                    *self.idem.borrow_mut() = t;
                }
                Encoder::ok(out);
            }
            Op::Info => Encoder::bulk(out, self.info().as_bytes()),
            Op::Throttle => self.throttle(buf, args, now, out),
            Op::BreakerAcquire | Op::BreakerRecord | Op::BreakerState | Op::BreakerConfig => {
                self.breaker(op, buf, args, now, proto, out)
            }
            Op::IdemComplete | Op::IdemAbandon => self.idem_finish(op, buf, args, now, out),
            Op::Watch | Op::Unwatch | Op::Exec => self.watch_op(op, buf, args, now, out),
            Op::Client => self.clients.exec(buf, args, out),
            _ => Encoder::error(out, "ERR internal: command routed to a shard"),
        }
    }

    /// The shard's side of `WATCH`, `UNWATCH` and `EXEC`, as the
    /// connection sends them (not as clients do):
    /// - `WATCH id key`: `id` watches `key`; `+OK`.
    /// - `UNWATCH id key...`: `id` stops watching the keys; `+OK`.
    /// - `EXEC id count key...`: `:1` when none of `id`'s watched `key`s
    ///   changed since it watched them, else `:0` (and the batch skips the
    ///   `count` commands that follow); either way `id` stops watching them.
    fn watch_op(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let arg = |i: usize| args.get(i).map(|s| s.of(buf));
        let Some(conn) = arg(0).and_then(parse_i64).map(|id| id as u64) else {
            return Encoder::error(out, "ERR internal: watch without a connection id");
        };
        let keys = match op {
            Op::Exec if arg(1).and_then(parse_i64).is_some() => &args[2..],
            Op::Exec => return Encoder::error(out, "ERR internal: exec without a count"),
            _ => &args[1..],
        };
        let mut watched = self.watched.borrow_mut();
        let mut unchanged = true;
        for key in keys {
            let key = key.of(buf);
            if op == Op::Watch {
                let live = self.kv.borrow().contains(key, now);
                let ws = watched.entry(key.into()).or_default();
                if !ws.iter().any(|w| w.conn == conn) {
                    ws.push(Watcher { conn, live, dirty: false });
                }
                continue;
            }
            let Some(ws) = watched.get_mut(key) else {
                unchanged = false;
                continue;
            };
            match ws.iter().position(|w| w.conn == conn) {
                Some(i) => {
                    let w = ws.swap_remove(i);
                    unchanged &= !w.dirty && w.live == self.kv.borrow().contains(key, now);
                }
                None => unchanged = false,
            }
            if ws.is_empty() {
                watched.remove(key);
            }
        }
        match op {
            Op::Exec => Encoder::int(out, unchanged as i64),
            _ => Encoder::ok(out),
        }
    }

    /// Keys watched on this shard (for `INFO`).
    pub fn watched_keys(&self) -> usize {
        self.watched.borrow().len()
    }

    /// `SCAN` on this shard: the entries of up to `COUNT` buckets holding
    /// one, from the cursor's bucket on, then a cursor to this shard's next
    /// bucket, or to the next shard's first, or 0 after the last shard.
    /// Keys stored in database `db` (expired ones not yet removed count,
    /// as in Redis).
    fn db_size(&self, db: u8) -> usize {
        let kv = self.kv.borrow();
        match (self.marked.get(), db) {
            (false, 0) => kv.len(),
            (false, _) => 0,
            (true, _) => kv.iter().filter(|(k, _)| user_key(k).0 == db).count(),
        }
    }

    fn scan(&self, db: u8, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.of(buf)).collect();
        let a = match ScanArgs::parse(&raw) {
            Ok(a) => a,
            Err(e) => return Encoder::error(out, e),
        };
        let shards = self.shards as u64;
        let from = usize::try_from(a.cursor / shards).unwrap_or(usize::MAX);
        let kv = self.kv.borrow();
        let mut keys = Vec::new();
        let mut next = None;
        for (seen, (i, k, e)) in kv.iter_from(from).enumerate() {
            if seen == a.count {
                next = Some(i as u64);
                break;
            }
            let (d, k) = user_key(k);
            if a.strings && d == db && e.live(now) && glob(a.pattern, k) {
                keys.push(k);
            }
        }
        let cursor = match next {
            Some(i) => i * shards + self.shard as u64,
            None if self.shard + 1 < self.shards => self.shard as u64 + 1,
            None => 0,
        };
        Encoder::array(out, 2);
        Encoder::bulk(out, cursor.to_string().as_bytes());
        Encoder::command(out, &keys);
    }

    fn info(&self) -> String {
        let mut text = self.info_state();
        if let Some([turns, polls, completions, parks, mesh_received, wakeups, tasks]) =
            resilience::runtime::local_stats()
        {
            text.truncate(text.len() - 2);
            text.push_str(&format!(
                "loop_turns:{turns}\r\ntask_polls:{polls}\r\nio_completions:{completions}\r\nparks:{parks}\r\n\
                 mesh_received:{mesh_received}\r\nwakeups_sent:{wakeups}\r\ntasks:{tasks}\r\n\r\n"
            ));
        }
        text
    }

    fn info_state(&self) -> String {
        let kv = self.kv.borrow();
        let c = kv.stats();
        let s = &self.stats;
        let idem = self.idem.borrow().stats();
        let limiters = self.throttle.borrow();
        format!(
            "# Shard {}\r\nops:{}\r\nconnections:{}\r\nkeys:{}\r\nexpires:{}\r\nused_memory:{}\r\nmaxmemory:{}\r\n\
             keyspace_hits:{}\r\nkeyspace_misses:{}\r\nevictions:{}\r\nexpired_keys:{}\r\n\
             rejections:{}\r\nthrottle_quotas:{}\r\nthrottle_keys:{}\r\nthrottle_allowed:{}\r\n\
             throttle_limited:{}\r\nbreakers:{}\r\nidempotency_records:{}\r\n\
             idempotency_in_progress:{}\r\nidempotency_bytes:{}\r\nidempotency_full:{}\r\nwatched_keys:{}\r\n{}\r\n",
            self.shard,
            s.ops.get(),
            s.connections.get(),
            kv.len(),
            kv.expiring(),
            kv.weight(),
            self.budget,
            c.hits,
            c.misses,
            c.evictions,
            c.expirations,
            s.rejections.get() + c.rejections,
            limiters.len(),
            limiters.values().map(|l| l.len()).sum::<usize>(),
            s.throttle_allowed.get(),
            s.throttle_limited.get(),
            self.breakers.len(),
            idem.records,
            idem.in_progress_records,
            idem.bytes_used,
            idem.full,
            self.watched_keys(),
            self.info_databases(&kv),
        )
    }

    /// `keys_dbN` / `expires_dbN` lines for each database holding keys (the
    /// engine turns them into `INFO keyspace`'s `dbN:` lines).
    fn info_databases(&self, kv: &Keyspace) -> String {
        let mut per_db = std::collections::BTreeMap::<u8, (usize, usize)>::new();
        if self.marked.get() {
            for (k, e) in kv.iter() {
                let c = per_db.entry(user_key(k).0).or_default();
                c.0 += 1;
                c.1 += (e.expires != 0) as usize;
            }
        } else if !kv.is_empty() {
            per_db.insert(0, (kv.len(), kv.expiring()));
        }
        let mut text = String::new();
        for (db, (keys, expires)) in per_db {
            text.push_str(&format!("keys_db{db}:{keys}\r\nexpires_db{db}:{expires}\r\n"));
        }
        text
    }

    fn set(&self, buf: &[u8], args: &[Span], now: Nanos, proto: Proto, sink: &mut impl Sink) {
        let (key, value) = (args[0].of(buf), args[1].of(buf));
        let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
        // Redis's rules: NX and XX exclude each other, KEEPTTL and the four
        // expiry options exclude each other, an option may repeat (the last
        // expiry wins), and the expiry is parsed only once the syntax is good.
        let mut expiry: Option<(Expiry, &[u8])> = None;
        let out = sink.buf();
        let mut i = 2;
        while i < args.len() {
            let opt = args[i].of(buf).to_ascii_uppercase();
            let next = args.get(i + 1).map(|a| a.of(buf));
            match (opt.as_slice(), expiry_option(&opt), next) {
                (b"NX", ..) if !xx => nx = true,
                (b"XX", ..) if !nx => xx = true,
                (b"GET", ..) => get = true,
                (b"KEEPTTL", ..) if expiry.is_none() => keepttl = true,
                (_, Some(k), Some(arg)) if !keepttl && expiry.is_none_or(|(e, _)| e == k) => {
                    expiry = Some((k, arg));
                    i += 1;
                }
                _ => return Encoder::error(out, "ERR syntax error"),
            }
            i += 1;
        }
        let expires = match expiry {
            None => 0,
            Some((kind, arg)) => match deadline(kind, arg, now) {
                Ok(d) => d,
                Err(e) => return Encoder::error(out, &e.message("set")),
            },
        };
        self.store(key, value, Store { expires, nx, xx, get, keepttl }, now, proto, sink)
    }

    /// Writes `key -> value` as `SET` with the options `o` does, and replies
    /// as it does.
    fn store(&self, key: &[u8], value: &[u8], o: Store, now: Nanos, proto: Proto, sink: &mut impl Sink) {
        let Store { mut expires, nx, xx, get, keepttl } = o;
        let mut kv = self.kv.borrow_mut();
        if !fits(&kv, key, value.len()) {
            // Refused before anything else, the present value untouched (as
            // Redis checks memory before it runs a write).
            return Encoder::error(sink.buf(), OOM);
        }
        // The old value is only kept (a reference count, not a copy) for GET.
        let old = kv.peek(key, now).map(|e| (get.then(|| e.value.clone()), e.expires));
        if get {
            match &old {
                Some((Some(v), _)) => sink.value(v),
                _ => Encoder::null(sink.buf(), proto),
            }
        }
        let out = sink.buf();
        if (nx && old.is_some()) || (xx && old.is_none()) {
            if !get {
                Encoder::null(out, proto);
            }
            return;
        }
        if keepttl {
            expires = old.as_ref().map_or(0, |o| o.1);
        } else if expires != 0 && expires <= now {
            // An absolute deadline already past: the write happens and the
            // key expires at once, as in Redis (a change even where no key
            // was).
            kv.remove(key, now);
            kv.changed = true;
            if !get {
                Encoder::ok(out);
            }
            return;
        }
        let entry = Entry { value: Arc::from(value), expires };
        let stored = !matches!(kv.insert(key.into(), entry, expires, now), Inserted::Rejected(_));
        if get {
            return;
        }
        if stored {
            Encoder::ok(out);
        } else {
            Encoder::error(out, OOM);
        }
    }

    /// `GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]`: the value,
    /// and the deadline set or removed, as Redis 6.2.
    fn getex(&self, buf: &[u8], args: &[Span], now: Nanos, proto: Proto, sink: &mut impl Sink) {
        let key = args[0].of(buf);
        // Redis's rules (as SET's, PERSIST in KEEPTTL's place): PERSIST and
        // the four expiry options exclude each other, and an option may
        // repeat (the last expiry wins).
        let mut persist = false;
        let mut expiry: Option<(Expiry, &[u8])> = None;
        let mut i = 1;
        while i < args.len() {
            let opt = args[i].of(buf).to_ascii_uppercase();
            let next = args.get(i + 1).map(|a| a.of(buf));
            match (opt.as_slice(), expiry_option(&opt), next) {
                (b"PERSIST", ..) if expiry.is_none() => persist = true,
                (_, Some(k), Some(arg)) if !persist && expiry.is_none_or(|(e, _)| e == k) => {
                    expiry = Some((k, arg));
                    i += 1;
                }
                _ => return Encoder::error(sink.buf(), "ERR syntax error"),
            }
            i += 1;
        }
        // As Redis: the syntax, then a missing key (nil), then the number.
        let mut kv = self.kv.borrow_mut();
        let Some(e) = kv.peek(key, now).cloned() else {
            return Encoder::null(sink.buf(), proto);
        };
        let expires = match expiry {
            Some((k, arg)) => match deadline(k, arg, now) {
                Ok(d) => Some(d),
                Err(e) => return Encoder::error(sink.buf(), &e.message("getex")),
            },
            None => persist.then_some(0),
        };
        sink.value(&e.value);
        match expires {
            Some(d) if d != 0 && d <= now => {
                kv.remove(key, now);
            }
            Some(d) if d != e.expires => {
                kv.insert(key.into(), Entry { value: e.value, expires: d }, d, now);
            }
            _ => {}
        }
    }

    fn expire(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let key = args[0].of(buf);
        // Options first, then the number, with Redis's messages and order.
        let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
        for a in &args[2..] {
            match a.of(buf).to_ascii_uppercase().as_slice() {
                b"NX" => nx = true,
                b"XX" => xx = true,
                b"GT" => gt = true,
                b"LT" => lt = true,
                _ => {
                    // Redis prints the option with `%s`: as it came, up to
                    // a NUL byte.
                    let opt = a.of(buf);
                    let opt = &opt[..opt.iter().position(|&b| b == 0).unwrap_or(opt.len())];
                    return Encoder::error_bytes(out, &[&b"ERR Unsupported option "[..], opt].concat());
                }
            }
        }
        if nx && (xx || gt || lt) {
            return Encoder::error(
                out,
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            );
        }
        if gt && lt {
            return Encoder::error(out, "ERR GT and LT options at the same time are not compatible");
        }
        let Some(n) = parse_i64(args[1].of(buf)) else {
            return Encoder::error(out, "ERR value is not an integer or out of range");
        };
        // Redis refuses what overflows milliseconds since the epoch; past
        // that, a deadline beyond what `Nanos` holds is kept at its maximum.
        let absolute = matches!(op, Op::Expireat | Op::Pexpireat);
        let ms = if matches!(op, Op::Expire | Op::Expireat) { n.checked_mul(1000) } else { Some(n) };
        let Some(ms) = ms.filter(|&ms| absolute || ms <= i64::MAX - unix_ms()) else {
            return Encoder::error(
                out,
                &format!("ERR invalid expire time in '{}' command", command::spec(op).name),
            );
        };
        let at = if absolute {
            // A Unix time: nanoseconds from now on the monotonic clock.
            now as i128 + ms as i128 * MILLISECOND as i128 - unix_ns() as i128
        } else {
            now as i128 + ms as i128 * MILLISECOND as i128 - ms_fraction() as i128
        };
        let mut kv = self.kv.borrow_mut();
        let Some(e) = kv.peek(key, now).cloned() else { return Encoder::int(out, 0) };
        let cur = e.expires;
        // GT and LT compare whole Unix milliseconds, as Redis keeps them:
        // the same time given twice is neither greater nor less. A time past
        // what a deadline can hold (about 584 years ahead) compares as that
        // limit, where it is kept.
        let new_ms = if absolute { ms } else { unix_ms().saturating_add(ms) };
        let (new_ms, cur_ms) = (new_ms.min(deadline_unix_ms(Nanos::MAX, now)), deadline_unix_ms(cur, now));
        let ok = !(nx && cur != 0
            || xx && cur == 0
            || gt && (cur == 0 || new_ms <= cur_ms)
            || lt && cur != 0 && new_ms >= cur_ms);
        if !ok {
            return Encoder::int(out, 0);
        }
        if at <= now as i128 {
            kv.remove(key, now);
        } else {
            let expires = at.min(u64::MAX as i128) as Nanos;
            kv.insert(key.into(), Entry { value: e.value, expires }, expires, now);
        }
        Encoder::int(out, 1);
    }

    fn incr(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let key = args[0].of(buf);
        let by = match op {
            Op::Incr => 1,
            Op::Decr => -1,
            _ => match parse_i64(args[1].of(buf)) {
                Some(n) if op == Op::Incrby => n,
                Some(i64::MIN) => return Encoder::error(out, "ERR decrement would overflow"),
                Some(n) => -n,
                None => return Encoder::error(out, "ERR value is not an integer or out of range"),
            },
        };
        let mut kv = self.kv.borrow_mut();
        let (cur, expires) = match kv.get(key, now) {
            None => (0, 0),
            Some(e) => match parse_i64(&e.value) {
                Some(v) => (v, e.expires),
                None => return Encoder::error(out, "ERR value is not an integer or out of range"),
            },
        };
        let Some(v) = cur.checked_add(by) else {
            return Encoder::error(out, "ERR increment or decrement would overflow");
        };
        let entry = Entry { value: Arc::from(v.to_string().into_bytes()), expires };
        match kv.insert(key.into(), entry, expires, now) {
            Inserted::Rejected(_) => Encoder::error(out, OOM),
            _ => Encoder::int(out, v),
        }
    }

    /// `RENAME src dst` / `RENAMENX src dst`, as Redis 7: the value and its
    /// TTL move to `dst` (replacing what was there, unless NX); `-ERR no such
    /// key` when `src` is missing, even when `dst` is the same key.
    fn rename(&self, nx: bool, src: &[u8], dst: &[u8], now: Nanos, out: &mut Vec<u8>) {
        let mut kv = self.kv.borrow_mut();
        let Some(e) = kv.peek(src, now).cloned() else {
            return Encoder::error(out, "ERR no such key");
        };
        let done = |out: &mut Vec<u8>, moved: bool| match nx {
            true => Encoder::int(out, moved as i64),
            false => Encoder::ok(out),
        };
        if src == dst {
            return done(out, false);
        }
        if nx && kv.contains(dst, now) {
            return Encoder::int(out, 0);
        }
        if !fits(&kv, dst, e.value.len()) {
            return Encoder::error(out, OOM);
        }
        match kv.relocate(src, dst, e, now) {
            true => done(out, true),
            false => Encoder::error(out, OOM),
        }
    }

    /// Marks the watchers of the stored key `key` dirty.
    fn touch(&self, key: &[u8]) {
        if let Some(ws) = self.watched.borrow_mut().get_mut(key) {
            ws.iter_mut().for_each(|w| w.dirty = true);
        }
    }

    /// A database number argument, as Redis's `getIntFromObjectOrReply` and
    /// `selectDb` check it.
    fn database_arg(&self, arg: &[u8]) -> Result<u8, &'static str> {
        match parse_i64(arg) {
            None => Err("ERR value is not an integer or out of range"),
            Some(n) if i32::try_from(n).is_err() => {
                Err("ERR value is out of range, value must between -2147483648 and 2147483647")
            }
            Some(n) if n < 0 || n as usize >= self.databases => Err("ERR DB index is out of range"),
            Some(n) => Ok(n as u8),
        }
    }

    /// `COPY src dst [DB n] [REPLACE]`, as Redis 7: `:1` when copied (value
    /// and TTL), `:0` when `src` is missing or `dst` exists without REPLACE.
    fn copy(&self, db: u8, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let (src, dst) = (args[0].of(buf), args[1].of(buf));
        let (mut to, mut replace) = (db, false);
        let mut i = 2;
        while i < args.len() {
            let opt = args[i].of(buf).to_ascii_uppercase();
            match opt.as_slice() {
                b"REPLACE" => replace = true,
                b"DB" if i + 1 < args.len() => {
                    match self.database_arg(args[i + 1].of(buf)) {
                        Ok(n) => to = n,
                        Err(e) => return Encoder::error(out, e),
                    }
                    i += 1;
                }
                _ => return Encoder::error(out, "ERR syntax error"),
            }
            i += 1;
        }
        // The keys arrive as stored for `db`; the copy goes to `to`.
        let dst = stored_key(to, user_key(dst).1).into_owned();
        if dst == src {
            return Encoder::error(out, "ERR source and destination objects are the same");
        }
        if to != 0 {
            self.marked.set(true);
        }
        let mut kv = self.kv.borrow_mut();
        let Some(e) = kv.peek(src, now).cloned() else { return Encoder::int(out, 0) };
        if kv.contains(&dst[..], now) && !replace {
            return Encoder::int(out, 0);
        }
        if !fits(&kv, &dst, e.value.len()) {
            return Encoder::error(out, OOM);
        }
        match kv.insert(dst.clone().into(), e.clone(), e.expires, now) {
            Inserted::Rejected(_) => Encoder::error(out, OOM),
            _ => {
                drop(kv);
                self.touch(&dst);
                Encoder::int(out, 1)
            }
        }
    }

    /// `MOVE key db`, as Redis 7: `:1` when moved (value and TTL), `:0` when
    /// `key` is missing here or present there.
    fn move_key(&self, db: u8, key: &[u8], to: &[u8], now: Nanos, out: &mut Vec<u8>) {
        let to = match self.database_arg(to) {
            Ok(n) => n,
            Err(e) => return Encoder::error(out, e),
        };
        if to == db {
            return Encoder::error(out, "ERR source and destination objects are the same");
        }
        let dst = stored_key(to, user_key(key).1).into_owned();
        if to != 0 {
            self.marked.set(true);
        }
        let mut kv = self.kv.borrow_mut();
        let Some(e) = kv.peek(key, now).cloned() else { return Encoder::int(out, 0) };
        if kv.contains(&dst[..], now) {
            return Encoder::int(out, 0);
        }
        if !kv.relocate(key, &dst, e, now) {
            return Encoder::error(out, OOM);
        }
        drop(kv);
        self.touch(key);
        self.touch(&dst);
        Encoder::int(out, 1)
    }

    /// `MSETNX key value [key value ...]`: all or nothing (`:1` / `:0`); the
    /// keys are on this shard (the connection checked).
    fn msetnx(&self, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let mut kv = self.kv.borrow_mut();
        let pairs = args.chunks_exact(2);
        if pairs.clone().any(|p| kv.contains(p[0].of(buf), now)) {
            return Encoder::int(out, 0);
        }
        // The budget is checked for every value before the first is stored.
        if pairs.clone().any(|p| !fits(&kv, p[0].of(buf), p[1].len())) {
            return Encoder::error(out, OOM);
        }
        for p in pairs {
            let entry = Entry { value: Arc::from(p[1].of(buf)), expires: 0 };
            kv.insert(p[0].of(buf).into(), entry, 0, now);
        }
        Encoder::int(out, 1);
    }

    /// `INCRBYFLOAT key increment`: Redis's `long double` sum and printing
    /// (`src/float.c`); the TTL is kept.
    fn incrbyfloat(&self, key: &[u8], by: &[u8], now: Nanos, out: &mut Vec<u8>) {
        let mut kv = self.kv.borrow_mut();
        let (cur, expires) = match kv.get(key, now) {
            Some(e) => (Some(e.value.clone()), e.expires),
            None => (None, 0),
        };
        let mut sum = [0u8; 5120];
        let (cp, cl) = cur.as_deref().map_or((std::ptr::null(), 0), |c| (c.as_ptr(), c.len()));
        // SAFETY: `cp`/`cl` is null or the live bytes of `cur`, `by` and
        // `sum` are live slices with their lengths; the C function reads
        // and writes only within those bounds and keeps no pointer.
        let n = unsafe {
            rsl_incrbyfloat(cp.cast(), cl, by.as_ptr().cast(), by.len(), sum.as_mut_ptr().cast(), sum.len())
        };
        let value = match n {
            n if n > 0 => &sum[..n as usize],
            -3 => return Encoder::error(out, "ERR increment would produce NaN or Infinity"),
            _ => return Encoder::error(out, "ERR value is not a valid float"),
        };
        if !fits(&kv, key, value.len()) {
            return Encoder::error(out, OOM);
        }
        match kv.insert(key.into(), Entry { value: Arc::from(value), expires }, expires, now) {
            Inserted::Rejected(_) => Encoder::error(out, OOM),
            _ => Encoder::bulk(out, value),
        }
    }

    /// `CL.THROTTLE key max_burst count period [quantity]`: redis-cell 0.2.2's
    /// arguments and reply, decided by the core's keyed GCRA limiter.
    fn throttle(&self, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let mut nums = [0i64; 4];
        nums[3] = 1;
        for (i, a) in args[1..].iter().enumerate() {
            // redis-cell parses with Rust's `str::parse` (a `+` sign and
            // leading zeros are fine there), so CL.THROTTLE does too.
            match std::str::from_utf8(a.of(buf)).ok().and_then(|t| t.parse().ok()) {
                Some(n) => nums[i] = n,
                None => {
                    let msg = format!(
                        "Cell error: Couldn't parse as integer: {}",
                        String::from_utf8_lossy(a.of(buf))
                    );
                    return Encoder::error(out, &msg);
                }
            }
        }
        let [max_burst, count, period, quantity] = nums;
        if quantity < 0 {
            return Encoder::error(out, "Cell error: quantity must be >= 0");
        }
        let quota = match Quota::throttle(max_burst, count, period) {
            Ok(q) => q,
            Err(e) => return Encoder::error(out, &format!("Cell error: {e}")),
        };
        let mut limiters = self.throttle.borrow_mut();
        let id = (max_burst, count, period);
        if !limiters.contains_key(&id) {
            if limiters.len() >= MAX_QUOTAS {
                limiters.retain(|_, l| {
                    l.reclaim_at(now);
                    !l.is_empty()
                });
            }
            if limiters.len() >= MAX_QUOTAS {
                bump(&self.stats.rejections);
                return Encoder::error(out, "ERR too many distinct CL.THROTTLE rates on this shard");
            }
            let clock = AutoClock::for_window(quota.burst_window());
            let l = KeyedLimiter::with_options(
                quota,
                self.max_throttle_keys,
                FullPolicy::Deny,
                1,
                SeededState::new(),
                clock,
            );
            limiters.insert(id, l);
        }
        let Some(limiter) = limiters.get(&id) else { return };
        let d: Decision = limiter.acquire_at(args[0].of(buf), quantity as u64, now);
        bump(if d.allowed { &self.stats.throttle_allowed } else { &self.stats.throttle_limited });
        Encoder::array(out, 5);
        for v in d.throttle_reply() {
            Encoder::int(out, v);
        }
    }

    fn breaker(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, proto: Proto, out: &mut Vec<u8>) {
        let key = args[0].of(buf);
        if op == Op::BreakerConfig {
            return self.breaker_config(buf, args, out);
        }
        let b = match self.breakers.get_or_create(key, &breaker::Config::default()) {
            Ok(b) => b,
            Err(e) => {
                bump(&self.stats.rejections);
                return Encoder::error(out, &format!("FULL {e}"));
            }
        };
        match op {
            Op::BreakerAcquire => {
                let (allowed, generation, retry_ms) = match b.try_acquire_raw_at(now) {
                    Ok(p) => (1, p.generation, 0),
                    Err(r) => (
                        0,
                        b.generation(),
                        if r.retry_after == u64::MAX {
                            -1
                        } else {
                            r.retry_after.div_ceil(MILLISECOND) as i64
                        },
                    ),
                };
                Encoder::array(out, 4);
                Encoder::int(out, allowed);
                Encoder::bulk(out, b.state().name().as_bytes());
                Encoder::int(out, generation as i64);
                Encoder::int(out, retry_ms);
            }
            Op::BreakerRecord => {
                let Some(generation) = parse_i64(args[1].of(buf)).filter(|g| *g >= 0) else {
                    return Encoder::error(out, "ERR generation is not a non-negative integer");
                };
                let outcome = match args[2].of(buf).to_ascii_lowercase().as_slice() {
                    b"success" | b"ok" => Outcome::Success,
                    b"failure" | b"fail" | b"error" => Outcome::Failure,
                    b"ignore" | b"ignored" => Outcome::Ignored,
                    _ => return Encoder::error(out, "ERR outcome must be success, failure or ignore"),
                };
                let duration = match args.get(3).map(|a| parse_i64(a.of(buf))) {
                    None => 0,
                    Some(Some(ms)) if ms >= 0 => (ms as u64).saturating_mul(MILLISECOND),
                    Some(_) => {
                        return Encoder::error(
                            out,
                            "ERR duration must be a non-negative number of milliseconds",
                        )
                    }
                };
                if args.len() > 4 {
                    return Encoder::error(out, "ERR syntax error");
                }
                let r = b.record_raw(RawPermit { generation: generation as u64 }, outcome, duration, now);
                Encoder::array(out, 2);
                Encoder::bulk(
                    out,
                    match r {
                        Recorded::Counted => b"counted",
                        Recorded::Ignored => b"ignored",
                        Recorded::Stale => b"stale",
                    },
                );
                Encoder::bulk(out, b.state().name().as_bytes());
            }
            _ => {
                let m = b.metrics_at(now);
                let rate = |r: Option<f32>| r.map_or_else(|| "-1".to_string(), |r| format!("{r:.2}"));
                Encoder::map(out, 8, proto);
                Encoder::bulk(out, b"state");
                Encoder::bulk(out, m.state.name().as_bytes());
                Encoder::bulk(out, b"generation");
                Encoder::int(out, m.generation as i64);
                Encoder::bulk(out, b"calls");
                Encoder::int(out, m.calls as i64);
                Encoder::bulk(out, b"failed");
                Encoder::int(out, m.failed as i64);
                Encoder::bulk(out, b"slow");
                Encoder::int(out, m.slow as i64);
                Encoder::bulk(out, b"failure_rate");
                Encoder::bulk(out, rate(m.failure_rate).as_bytes());
                Encoder::bulk(out, b"slow_call_rate");
                Encoder::bulk(out, rate(m.slow_call_rate).as_bytes());
                Encoder::bulk(out, b"not_permitted");
                Encoder::int(out, m.not_permitted as i64);
            }
        }
    }

    /// `BREAKER.CONFIG key [field value ...]`: (re)creates the breaker with
    /// Resilience4j's defaults changed by the fields given.
    fn breaker_config(&self, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        match breaker_settings(buf, &args[1..]) {
            Ok(cfg) => self.breaker_install(args[0].of(buf), &cfg, out),
            Err(e) => Encoder::error(out, &e),
        }
    }

    /// Replaces `key`'s breaker with a fresh one of `cfg`.
    fn breaker_install(&self, key: &[u8], cfg: &breaker::Config, out: &mut Vec<u8>) {
        let old = self.breakers.remove(key);
        match self.breakers.get_or_create(key, cfg) {
            Ok(_) => Encoder::ok(out),
            Err(e) => {
                // Put the old breaker's name back with its config if we can.
                if let Some(old) = old {
                    let _ = self.breakers.get_or_create(key, old.config());
                }
                bump(&self.stats.rejections);
                Encoder::error(out, &format!("FULL {e}"))
            }
        }
    }

    /// `IDEM.BEGIN key fingerprint lease_ms`.
    fn idem_begin(&self, buf: &[u8], args: &[Span], now: Nanos, sink: &mut impl Sink) {
        let out = sink.buf();
        // A lease at most as long as a completed answer is kept: in-progress
        // records are never evicted, so an unbounded lease would pin memory.
        let max_ms = (self.idem_retention / MILLISECOND).max(1);
        let Some(lease_ms) = parse_i64(args[2].of(buf)).filter(|v| (1..=max_ms as i64).contains(v)) else {
            let msg = format!("ERR lease must be from 1 to {max_ms} milliseconds (the retention)");
            return Encoder::error(out, &msg);
        };
        let lease = (lease_ms as u64).saturating_mul(MILLISECOND);
        let r = self.idem.borrow_mut().begin_at(args[0].of(buf), args[1].of(buf), lease, now);
        match r {
            Ok(Begin::Started { token, takeover }) => {
                Encoder::array(out, 3);
                Encoder::bulk(out, b"started");
                Encoder::bulk(out, token.to_string().as_bytes());
                Encoder::int(out, takeover as i64);
            }
            Ok(Begin::InProgress { retry_after }) => {
                Encoder::array(out, 2);
                Encoder::bulk(out, b"in_progress");
                Encoder::int(out, retry_after.div_ceil(MILLISECOND) as i64);
            }
            Ok(Begin::Completed { response }) => {
                Encoder::array(out, 2);
                Encoder::bulk(out, b"completed");
                sink.value(&response);
            }
            Ok(Begin::Mismatch) => {
                Encoder::array(out, 1);
                Encoder::bulk(out, b"mismatch");
            }
            Err(e) => idem_error(out, &self.stats, e),
        }
    }

    /// `IDEM.COMPLETE key token response` and `IDEM.ABANDON key token`.
    fn idem_finish(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let Some(token) = std::str::from_utf8(args[1].of(buf)).ok().and_then(|s| s.parse::<u64>().ok())
        else {
            return Encoder::error(out, "ERR token is not an unsigned integer");
        };
        let key = args[0].of(buf);
        let mut idem = self.idem.borrow_mut();
        let r = if op == Op::IdemComplete {
            idem.complete_at(key, token, args[2].of(buf), self.idem_retention, now)
        } else {
            idem.abandon_at(key, token, now)
        };
        match r {
            Ok(()) => Encoder::ok(out),
            Err(e) => idem_error(out, &self.stats, e),
        }
    }
}

fn idem_error(out: &mut Vec<u8>, stats: &ShardStats, e: idempotency::Error) {
    let msg = match e {
        idempotency::Error::Full => {
            bump(&stats.rejections);
            format!("FULL {e}")
        }
        _ => format!("ERR {e}"),
    };
    Encoder::error(out, &msg);
}
