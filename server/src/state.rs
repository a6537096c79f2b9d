//! One shard's keyed state and the commands that act on it.
//!
//! Every key lives on exactly one shard, so nothing here is shared between
//! threads: the shard's tasks reach it through `Rc` and mutate it through
//! `RefCell`s. `exec` runs one command (its name already resolved to an
//! [`Op`], its arguments after the name as [`Span`]s) and writes the reply.
//!
//! INTERIM: the stores below are small stand-ins kept behind this one file
//! while the core primitives (cache table, keyed limiter, breaker registry,
//! idempotency table) are merged; swapping them in changes only this file.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use resilience::clock::{self, Nanos, MILLISECOND, SECOND};
use resilience::hash::SeededState;

use crate::command::{parse_i64, Op};
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
    /// Cache entries evicted to stay under `maxmemory`.
    pub evictions: Cell<u64>,
    /// Cache entries removed because their TTL passed.
    pub expired: Cell<u64>,
    /// Writes refused (value above the shard's memory budget, idempotency
    /// store full).
    pub rejections: Cell<u64>,
    /// `CL.THROTTLE` calls allowed.
    pub throttle_allowed: Cell<u64>,
    /// `CL.THROTTLE` calls limited.
    pub throttle_limited: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// Bytes charged per cache entry besides its key and value.
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug)]
struct Entry {
    value: Arc<[u8]>,
    /// Deadline, or 0 for none.
    expires: Nanos,
}

/// The cache (interim: a bounded hash map with TTL and random eviction).
#[derive(Debug)]
struct Kv {
    map: HashMap<Box<[u8]>, Entry, SeededState>,
    /// Deadlines to sweep; entries may be stale (checked against the map).
    deadlines: BinaryHeap<Reverse<(Nanos, Box<[u8]>)>>,
    used: usize,
    budget: usize,
}

impl Kv {
    fn cost(key: &[u8], value: &[u8]) -> usize {
        key.len() + value.len() + ENTRY_OVERHEAD
    }

    /// The live entry for `key`, removing it if its deadline passed.
    fn live(&mut self, key: &[u8], now: Nanos, stats: &ShardStats) -> Option<&mut Entry> {
        let expired = matches!(self.map.get(key), Some(e) if e.expires != 0 && e.expires <= now);
        if expired {
            self.remove(key);
            bump(&stats.expired);
            return None;
        }
        self.map.get_mut(key)
    }

    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.map.remove(key)?;
        self.used -= Self::cost(key, &e.value);
        Some(e)
    }

    /// Stores `key`, evicting others to fit the budget. False if it can never fit.
    fn insert(&mut self, key: &[u8], value: Arc<[u8]>, expires: Nanos, stats: &ShardStats) -> bool {
        let cost = Self::cost(key, &value);
        self.remove(key);
        if cost > self.budget {
            bump(&stats.rejections);
            return false;
        }
        while self.used + cost > self.budget {
            // Interim policy: evict whichever key the (randomly seeded)
            // table yields first.
            let Some(victim) = self.map.keys().next().cloned() else { break };
            self.remove(&victim);
            bump(&stats.evictions);
        }
        if expires != 0 {
            self.deadlines.push(Reverse((expires, key.into())));
        }
        self.used += cost;
        self.map.insert(key.into(), Entry { value, expires });
        true
    }

    fn set_expiry(&mut self, key: &[u8], expires: Nanos) {
        if let Some(e) = self.map.get_mut(key) {
            e.expires = expires;
            if expires != 0 {
                self.deadlines.push(Reverse((expires, key.into())));
            }
        }
    }

    /// Removes up to `max` entries whose deadline has passed.
    fn sweep(&mut self, now: Nanos, max: usize, stats: &ShardStats) {
        for _ in 0..max {
            match self.deadlines.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((at, key))) = self.deadlines.pop() else { break };
            if matches!(self.map.get(&key), Some(e) if e.expires == at) {
                self.remove(&key);
                bump(&stats.expired);
            }
        }
        if self.deadlines.len() > 2 * self.map.len() + 1024 {
            let live: Vec<_> = self
                .map
                .iter()
                .filter(|(_, e)| e.expires != 0)
                .map(|(k, e)| (e.expires, k.clone()))
                .collect();
            self.deadlines = live.into_iter().map(Reverse).collect();
        }
    }
}

/// One shard's state.
pub struct ShardState {
    shard: usize,
    kv: RefCell<Kv>,
    /// `CL.THROTTLE` theoretical arrival times (interim).
    throttle: RefCell<HashMap<Box<[u8]>, Nanos, SeededState>>,
    max_throttle_keys: usize,
    breakers: RefCell<HashMap<Box<[u8]>, Breaker, SeededState>>,
    max_breakers: usize,
    idem: RefCell<Idem>,
    /// Counters for `INFO`.
    pub stats: ShardStats,
}

impl ShardState {
    /// The state of shard `shard` of `shards`, with its share of the budgets.
    pub fn new(shard: usize, shards: usize, cfg: &Config) -> Result<Self, String> {
        let budget = (cfg.maxmemory / shards.max(1) as u64) as usize;
        if budget < 4096 {
            return Err(format!("maxmemory {} is too small for {shards} shards", cfg.maxmemory));
        }
        Ok(Self {
            shard,
            kv: RefCell::new(Kv {
                map: HashMap::with_hasher(SeededState::new()),
                deadlines: BinaryHeap::new(),
                used: 0,
                budget,
            }),
            throttle: RefCell::new(HashMap::with_hasher(SeededState::new())),
            max_throttle_keys: cfg.max_throttle_keys,
            breakers: RefCell::new(HashMap::with_hasher(SeededState::new())),
            max_breakers: cfg.max_breakers,
            idem: RefCell::new(Idem {
                map: HashMap::with_hasher(SeededState::new()),
                used: 0,
                budget: cfg.idem_max_bytes / shards.max(1),
                retention: clock::nanos(cfg.idem_retention),
                next_token: (shard as u64) << 48 | 1,
            }),
            stats: ShardStats::default(),
        })
    }

    /// Periodic work: sweeps expired entries.
    pub fn tick(&self) {
        let now = clock::now();
        self.kv.borrow_mut().sweep(now, 1000, &self.stats);
        let mut t = self.throttle.borrow_mut();
        if t.len() > 1024 {
            t.retain(|_, tat| *tat > now);
        }
        drop(t);
        self.idem.borrow_mut().map.retain(|_, r| r.until > now);
    }

    /// Runs `op` with `args` (those after the command name, spans of `buf`)
    /// and writes its reply to `out`.
    pub fn exec(&self, op: Op, buf: &[u8], args: &[Span], proto: Proto, out: &mut impl Sink) {
        let now = clock::now();
        match op {
            Op::Get => match self.kv.borrow_mut().live(args[0].of(buf), now, &self.stats) {
                Some(e) => out.value(&e.value),
                None => Encoder::null(out.buf(), proto),
            },
            Op::Set => self.set(buf, args, now, proto, out),
            _ => self.exec_small(op, buf, args, now, proto, out.buf()),
        }
    }

    /// The commands whose replies are small.
    fn exec_small(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, proto: Proto, out: &mut Vec<u8>) {
        let arg = |i: usize| args.get(i).map(|s| s.of(buf)).unwrap_or(&[]);
        let stats = &self.stats;
        match op {
            Op::Del => {
                let mut kv = self.kv.borrow_mut();
                let live = kv.live(arg(0), now, stats).is_some();
                if live {
                    kv.remove(arg(0));
                }
                Encoder::int(out, live as i64);
            }
            Op::Exists => Encoder::int(out, self.kv.borrow_mut().live(arg(0), now, stats).is_some() as i64),
            Op::Expire | Op::Pexpire => self.expire(op, buf, args, now, out),
            Op::Ttl | Op::Pttl => {
                let mut kv = self.kv.borrow_mut();
                let v = match kv.live(arg(0), now, stats) {
                    None => -2,
                    Some(e) if e.expires == 0 => -1,
                    Some(e) => {
                        let ms = ((e.expires - now) + MILLISECOND / 2) / MILLISECOND;
                        if op == Op::Ttl {
                            ((ms + 500) / 1000) as i64
                        } else {
                            ms as i64
                        }
                    }
                };
                Encoder::int(out, v);
            }
            Op::Incr | Op::Decr | Op::Incrby | Op::Decrby => self.incr(op, buf, args, now, out),
            Op::Dbsize => Encoder::int(out, self.kv.borrow().map.len() as i64),
            Op::Flushall => {
                let mut kv = self.kv.borrow_mut();
                kv.map.clear();
                kv.deadlines.clear();
                kv.used = 0;
                self.throttle.borrow_mut().clear();
                self.breakers.borrow_mut().clear();
                let mut idem = self.idem.borrow_mut();
                idem.map.clear();
                idem.used = 0;
                Encoder::ok(out);
            }
            Op::Info => Encoder::bulk(out, self.info().as_bytes()),
            Op::Throttle => self.throttle(buf, args, now, out),
            Op::BreakerAcquire | Op::BreakerRecord | Op::BreakerState | Op::BreakerConfig => {
                self.breaker(op, buf, args, now, proto, out)
            }
            Op::IdemBegin | Op::IdemComplete | Op::IdemAbandon => self.idem(op, buf, args, now, out),
            _ => Encoder::error(out, "ERR internal: command routed to a shard"),
        }
    }

    fn info(&self) -> String {
        let kv = self.kv.borrow();
        let s = &self.stats;
        format!(
            "# Shard {}\r\nops:{}\r\nconnections:{}\r\nkeys:{}\r\nused_memory:{}\r\nmaxmemory:{}\r\nevictions:{}\r\n\
             expired_keys:{}\r\nrejections:{}\r\nthrottle_keys:{}\r\nthrottle_allowed:{}\r\nthrottle_limited:{}\r\n\
             breakers:{}\r\nidempotency_records:{}\r\nidempotency_bytes:{}\r\n\r\n",
            self.shard,
            s.ops.get(),
            s.connections.get(),
            kv.map.len(),
            kv.used,
            kv.budget,
            s.evictions.get(),
            s.expired.get(),
            s.rejections.get(),
            self.throttle.borrow().len(),
            s.throttle_allowed.get(),
            s.throttle_limited.get(),
            self.breakers.borrow().len(),
            self.idem.borrow().map.len(),
            self.idem.borrow().used,
        )
    }

    fn set(&self, buf: &[u8], args: &[Span], now: Nanos, proto: Proto, sink: &mut impl Sink) {
        let (key, value) = (args[0].of(buf), args[1].of(buf));
        let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
        let out = sink.buf();
        let mut expires: Nanos = 0;
        let mut i = 2;
        while i < args.len() {
            let opt = args[i].of(buf).to_ascii_uppercase();
            match opt.as_slice() {
                b"NX" if !xx => nx = true,
                b"XX" if !nx => xx = true,
                b"GET" => get = true,
                b"KEEPTTL" if expires == 0 => keepttl = true,
                b"EX" | b"PX" if expires == 0 && !keepttl && i + 1 < args.len() => {
                    i += 1;
                    let unit = if opt == b"EX" { SECOND } else { MILLISECOND };
                    match parse_i64(args[i].of(buf)) {
                        Some(n) if n > 0 => match (n as u64)
                            .checked_mul(unit)
                            .and_then(|d| now.checked_add(d))
                        {
                            Some(at) => expires = at,
                            None => return Encoder::error(out, "ERR invalid expire time in 'set' command"),
                        },
                        Some(_) => return Encoder::error(out, "ERR invalid expire time in 'set' command"),
                        None => return Encoder::error(out, "ERR value is not an integer or out of range"),
                    }
                }
                _ => return Encoder::error(out, "ERR syntax error"),
            }
            i += 1;
        }
        let mut kv = self.kv.borrow_mut();
        // The old value is only kept (a reference count, not a copy) for GET.
        let old = kv.live(key, now, &self.stats).map(|e| (get.then(|| e.value.clone()), e.expires));
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
        }
        let stored = kv.insert(key, Arc::from(value), expires, &self.stats);
        if get {
            return;
        }
        if stored {
            Encoder::ok(out);
        } else {
            Encoder::error(out, "OOM command not allowed when used memory > 'maxmemory'");
        }
    }

    fn expire(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let key = args[0].of(buf);
        let Some(n) = parse_i64(args[1].of(buf)) else {
            return Encoder::error(out, "ERR value is not an integer or out of range");
        };
        let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
        for a in &args[2..] {
            match a.of(buf).to_ascii_uppercase().as_slice() {
                b"NX" => nx = true,
                b"XX" => xx = true,
                b"GT" => gt = true,
                b"LT" => lt = true,
                other => {
                    let msg = format!("ERR Unsupported option {}", String::from_utf8_lossy(other));
                    return Encoder::error(out, &msg);
                }
            }
        }
        if (nx && (xx || gt || lt)) || (gt && lt) {
            return Encoder::error(
                out,
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            );
        }
        let unit = if op == Op::Expire { SECOND as i128 } else { MILLISECOND as i128 };
        let at = now as i128 + n as i128 * unit;
        let mut kv = self.kv.borrow_mut();
        let Some(e) = kv.live(key, now, &self.stats) else { return Encoder::int(out, 0) };
        let cur = e.expires;
        let ok = !(nx && cur != 0
            || xx && cur == 0
            || gt && (cur == 0 || at <= cur as i128)
            || lt && cur != 0 && at >= cur as i128);
        if !ok {
            return Encoder::int(out, 0);
        }
        if at <= now as i128 {
            kv.remove(key);
        } else {
            kv.set_expiry(key, at.min(u64::MAX as i128) as Nanos);
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
                Some(n) if n != i64::MIN => -n,
                _ => return Encoder::error(out, "ERR value is not an integer or out of range"),
            },
        };
        let mut kv = self.kv.borrow_mut();
        let (cur, expires) = match kv.live(key, now, &self.stats) {
            None => (0, 0),
            Some(e) => match parse_i64(&e.value) {
                Some(v) => (v, e.expires),
                None => return Encoder::error(out, "ERR value is not an integer or out of range"),
            },
        };
        let Some(v) = cur.checked_add(by) else {
            return Encoder::error(out, "ERR increment or decrement would overflow");
        };
        if kv.insert(key, Arc::from(v.to_string().into_bytes()), expires, &self.stats) {
            Encoder::int(out, v);
        } else {
            Encoder::error(out, "OOM command not allowed when used memory > 'maxmemory'");
        }
    }

    /// `CL.THROTTLE key max_burst count period [quantity]` (interim GCRA,
    /// redis-cell 0.2.2's algorithm).
    fn throttle(&self, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let mut nums = [0i64; 4];
        nums[3] = 1;
        for (i, a) in args[1..].iter().enumerate() {
            match parse_i64(a.of(buf)) {
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
        if max_burst < 0 || count <= 0 || period <= 0 || quantity < 0 {
            return Encoder::error(
                out,
                "Cell error: max_burst and quantity must be >= 0, count and period > 0",
            );
        }
        let t = (period as i128 * SECOND as i128) / count as i128;
        let limit = max_burst as i128 + 1;
        let tau = t * limit;
        let increment = t * quantity as i128;
        let now_i = now as i128;
        let key = args[0].of(buf);
        let mut table = self.throttle.borrow_mut();
        let tat = table.get(key).map(|&v| v as i128).filter(|&v| v > now_i).unwrap_or(now_i);
        let new_tat = tat.max(now_i) + increment;
        let diff = now_i - (new_tat - tau);
        let (limited, retry, ttl) = if diff < 0 {
            let retry = if increment <= tau { -diff } else { -(SECOND as i128) };
            (true, retry, tat - now_i)
        } else {
            if table.len() < self.max_throttle_keys || table.contains_key(key) {
                table.insert(key.into(), new_tat.min(u64::MAX as i128) as Nanos);
            }
            (false, -(SECOND as i128), new_tat - now_i)
        };
        let next = tau - ttl;
        let remaining = if next > -t && t > 0 { next / t } else { 0 };
        bump(if limited { &self.stats.throttle_limited } else { &self.stats.throttle_allowed });
        let secs = |n: i128| (n / SECOND as i128) as i64;
        Encoder::array(out, 5);
        Encoder::int(out, limited as i64);
        Encoder::int(out, limit.min(i64::MAX as i128) as i64);
        Encoder::int(out, remaining.clamp(0, i64::MAX as i128) as i64);
        Encoder::int(out, secs(retry));
        Encoder::int(out, secs(ttl));
    }

    fn breaker(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, proto: Proto, out: &mut Vec<u8>) {
        let key = args[0].of(buf);
        let mut breakers = self.breakers.borrow_mut();
        if !breakers.contains_key(key) {
            if breakers.len() >= self.max_breakers {
                bump(&self.stats.rejections);
                return Encoder::error(out, "FULL too many circuit breakers on this shard");
            }
            breakers.insert(key.into(), Breaker::new(BreakerConfig::default()));
        }
        let Some(b) = breakers.get_mut(key) else { return };
        b.refresh(now);
        match op {
            Op::BreakerAcquire => {
                let (allowed, retry_ms) = b.acquire(now);
                Encoder::array(out, 4);
                Encoder::int(out, allowed as i64);
                Encoder::bulk(out, b.state.name().as_bytes());
                Encoder::int(out, b.generation as i64);
                Encoder::int(out, retry_ms);
            }
            Op::BreakerRecord => {
                let Some(gen) = parse_i64(args[1].of(buf)).filter(|g| *g >= 0) else {
                    return Encoder::error(out, "ERR generation is not a non-negative integer");
                };
                let ok = match args[2].of(buf).to_ascii_lowercase().as_slice() {
                    b"success" | b"ok" => true,
                    b"failure" | b"fail" | b"error" => false,
                    _ => return Encoder::error(out, "ERR outcome must be success or failure"),
                };
                let counted = b.record(gen as u64, ok, now);
                Encoder::array(out, 2);
                Encoder::int(out, counted as i64);
                Encoder::bulk(out, b.state.name().as_bytes());
            }
            Op::BreakerState => {
                Encoder::map(out, 5, proto);
                Encoder::bulk(out, b"state");
                Encoder::bulk(out, b.state.name().as_bytes());
                Encoder::bulk(out, b"generation");
                Encoder::int(out, b.generation as i64);
                Encoder::bulk(out, b"calls");
                Encoder::int(out, b.window.len() as i64);
                Encoder::bulk(out, b"failures");
                Encoder::int(out, b.window.iter().filter(|ok| !**ok).count() as i64);
                Encoder::bulk(out, b"half_open_permits");
                Encoder::int(out, b.probes_in_flight as i64);
            }
            _ => {
                let mut cfg = b.cfg;
                let mut i = 1;
                while i + 1 < args.len() {
                    let Some(v) = parse_i64(args[i + 1].of(buf)).filter(|v| *v > 0) else {
                        return Encoder::error(out, "ERR breaker settings must be positive integers");
                    };
                    match args[i].of(buf).to_ascii_lowercase().as_slice() {
                        b"failure_rate" if v <= 100 => cfg.failure_rate = v as u32,
                        b"minimum_calls" => cfg.minimum_calls = v as usize,
                        b"window" if v <= 10_000 => cfg.window = v as usize,
                        b"open_ms" => cfg.open_ns = (v as u64).saturating_mul(MILLISECOND),
                        b"half_open_calls" => cfg.half_open_calls = v as u32,
                        _ => return Encoder::error(out, "ERR unknown or out-of-range breaker setting"),
                    }
                    i += 2;
                }
                if i != args.len() {
                    return Encoder::error(out, "ERR syntax error");
                }
                b.cfg = cfg;
                Encoder::ok(out);
            }
        }
    }

    fn idem(&self, op: Op, buf: &[u8], args: &[Span], now: Nanos, out: &mut Vec<u8>) {
        let key = args[0].of(buf);
        let mut idem = self.idem.borrow_mut();
        if let Some(r) = idem.map.get(key) {
            if r.until <= now {
                idem.remove(key);
            }
        }
        match op {
            Op::IdemBegin => {
                let fp = args[1].of(buf);
                let Some(lease_ms) = parse_i64(args[2].of(buf)).filter(|v| *v > 0) else {
                    return Encoder::error(out, "ERR lease must be a positive number of milliseconds");
                };
                if let Some(r) = idem.map.get(key) {
                    if *r.fingerprint != *fp {
                        Encoder::array(out, 1);
                        return Encoder::bulk(out, b"mismatch");
                    }
                    match &r.response {
                        Some(resp) => {
                            Encoder::array(out, 2);
                            Encoder::bulk(out, b"completed");
                            return Encoder::bulk(out, resp);
                        }
                        None => {
                            Encoder::array(out, 2);
                            Encoder::bulk(out, b"in_progress");
                            return Encoder::int(out, ((r.until - now).div_ceil(MILLISECOND)) as i64);
                        }
                    }
                }
                let cost = key.len() + fp.len() + IDEM_OVERHEAD;
                if idem.used + cost > idem.budget {
                    bump(&self.stats.rejections);
                    return Encoder::error(out, "FULL idempotency store is full");
                }
                let token = idem.next_token;
                idem.next_token += 1;
                let until = now.saturating_add((lease_ms as u64).saturating_mul(MILLISECOND));
                idem.used += cost;
                idem.map
                    .insert(key.into(), IdemRecord { fingerprint: fp.into(), token, response: None, until });
                Encoder::array(out, 2);
                Encoder::bulk(out, b"started");
                Encoder::int(out, token as i64);
            }
            Op::IdemComplete | Op::IdemAbandon => {
                let Some(token) = parse_i64(args[1].of(buf)) else {
                    return Encoder::error(out, "ERR token is not an integer");
                };
                let retention = idem.retention;
                let Some(r) = idem.map.get_mut(key) else { return Encoder::error(out, "ERR no such record") };
                if r.token != token as u64 || r.response.is_some() {
                    return Encoder::error(out, "ERR not the owner of this record");
                }
                if op == Op::IdemAbandon {
                    idem.remove(key);
                } else {
                    let resp = args[2].of(buf);
                    r.response = Some(resp.into());
                    r.until = now.saturating_add(retention);
                    idem.used += resp.len();
                }
                Encoder::ok(out);
            }
            _ => {}
        }
    }
}

const IDEM_OVERHEAD: usize = 96;

struct IdemRecord {
    fingerprint: Box<[u8]>,
    token: u64,
    response: Option<Box<[u8]>>,
    /// Lease end (in progress) or retention end (completed).
    until: Nanos,
}

struct Idem {
    map: HashMap<Box<[u8]>, IdemRecord, SeededState>,
    used: usize,
    budget: usize,
    retention: Nanos,
    next_token: u64,
}

impl Idem {
    fn remove(&mut self, key: &[u8]) {
        if let Some(r) = self.map.remove(key) {
            let cost = key.len() + r.fingerprint.len() + IDEM_OVERHEAD + r.response.map_or(0, |v| v.len());
            self.used = self.used.saturating_sub(cost);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed,
    Open { until: Nanos },
    HalfOpen,
}

impl BreakerState {
    fn name(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct BreakerConfig {
    failure_rate: u32,
    minimum_calls: usize,
    window: usize,
    open_ns: Nanos,
    half_open_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_rate: 50, minimum_calls: 10, window: 100, open_ns: 10 * SECOND, half_open_calls: 1 }
    }
}

/// A count-based circuit breaker (interim).
struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    generation: u64,
    window: std::collections::VecDeque<bool>,
    probes_in_flight: u32,
    probes_ok: u32,
}

impl Breaker {
    fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            state: BreakerState::Closed,
            generation: 0,
            window: Default::default(),
            probes_in_flight: 0,
            probes_ok: 0,
        }
    }

    fn go(&mut self, to: BreakerState) {
        self.state = to;
        self.generation += 1;
        self.window.clear();
        self.probes_in_flight = 0;
        self.probes_ok = 0;
    }

    fn refresh(&mut self, now: Nanos) {
        if let BreakerState::Open { until } = self.state {
            if now >= until {
                self.go(BreakerState::HalfOpen);
            }
        }
    }

    fn acquire(&mut self, now: Nanos) -> (bool, i64) {
        match self.state {
            BreakerState::Closed => (true, 0),
            BreakerState::Open { until } => (false, (until - now).div_ceil(MILLISECOND) as i64),
            BreakerState::HalfOpen if self.probes_in_flight < self.cfg.half_open_calls => {
                self.probes_in_flight += 1;
                (true, 0)
            }
            BreakerState::HalfOpen => (false, -1),
        }
    }

    /// Counts an outcome for permit generation `gen`; false if stale.
    fn record(&mut self, gen: u64, ok: bool, now: Nanos) -> bool {
        if gen != self.generation {
            return false;
        }
        match self.state {
            BreakerState::Closed => {
                self.window.push_back(ok);
                while self.window.len() > self.cfg.window {
                    self.window.pop_front();
                }
                let fails = self.window.iter().filter(|o| !**o).count();
                if self.window.len() >= self.cfg.minimum_calls
                    && fails * 100 >= self.cfg.failure_rate as usize * self.window.len()
                {
                    self.go(BreakerState::Open { until: now.saturating_add(self.cfg.open_ns) });
                }
            }
            BreakerState::HalfOpen => {
                if !ok {
                    self.go(BreakerState::Open { until: now.saturating_add(self.cfg.open_ns) });
                } else {
                    self.probes_ok += 1;
                    if self.probes_ok >= self.cfg.half_open_calls {
                        self.go(BreakerState::Closed);
                    }
                }
            }
            BreakerState::Open { .. } => return false,
        }
        true
    }
}
