//! Property tests of the cache against sequential models:
//!
//! - the table against `HashMap` (inserts, removes, lookups, growth from one
//!   group, tombstones), with both the SIMD and the portable control groups;
//! - the table's eviction against a reference implementation of the same
//!   S3-FIFO rules (same resident set, queues, frequencies and counters
//!   after every operation), with count and weight limits and TTLs;
//! - TTL of the sharded `Cache` under a manual clock.
#![cfg(not(resilience_loom))]

mod common;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use common::{cases, check, Rng};
use resilience::cache::eviction::Queue;
use resilience::cache::group::{Generic, Group, GroupOps};
use resilience::cache::{Cache, Inserted, Limits, Table};
use resilience::clock::{Clock, ManualClock, SECOND};
use resilience::hash::SeededState;

fn table_matches_hashmap<G: GroupOps>(rng: &mut Rng) {
    let universe = rng.range(4, 3000);
    let mut t: Table<u64, u64, SeededState, G> =
        Table::with_limits(Limits::entries(1 << 20), None, SeededState::with_seed(rng.next_u64())).unwrap();
    let mut m: HashMap<u64, u64> = HashMap::new();
    let ops = rng.range(1, 6000);
    let p_insert = rng.range(30, 80) as f64 / 100.0;
    for _ in 0..ops {
        let k = rng.below(universe);
        if rng.chance(p_insert) {
            let v = rng.next_u64();
            match (t.insert(k, v, 0, 0), m.insert(k, v)) {
                (Inserted::New, None) => {}
                (Inserted::Replaced(a), Some(b)) => assert_eq!(a, b),
                (got, want) => panic!("insert {k}: table {got:?}, model {want:?}"),
            }
        } else if rng.chance(0.6) {
            assert_eq!(t.remove(&k).map(|(_, v)| v), m.remove(&k), "remove {k}");
        } else {
            assert_eq!(t.get(&k, 0).copied(), m.get(&k).copied(), "get {k}");
        }
        assert_eq!(t.len(), m.len());
    }
    let mut all: Vec<(u64, u64)> = t.iter().map(|(k, v)| (*k, *v)).collect();
    all.sort_unstable();
    let mut want: Vec<(u64, u64)> = m.into_iter().collect();
    want.sort_unstable();
    assert_eq!(all, want);
    let (small, main) = t.queue_lengths();
    assert_eq!(small + main, t.len(), "every entry is on exactly one queue");
}

#[test]
fn table_matches_hashmap_simd_groups() {
    check(cases(200), table_matches_hashmap::<Group>);
}

#[test]
fn table_matches_hashmap_portable_groups() {
    check(cases(200), table_matches_hashmap::<Generic>);
}

#[test]
fn table_with_byte_keys_found_by_slice() {
    check(cases(50), |rng| {
        let mut t: Table<Box<[u8]>, Vec<u8>> =
            Table::with_limits(Limits::entries(1 << 16), None, SeededState::with_seed(rng.next_u64()))
                .unwrap();
        let mut m: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for _ in 0..rng.range(1, 2000) {
            let len = rng.below(40) as usize;
            let k: Vec<u8> = (0..len).map(|_| rng.below(3) as u8).collect();
            if rng.chance(0.6) {
                let v = vec![rng.below(256) as u8; rng.below(8) as usize];
                t.insert(k.clone().into_boxed_slice(), v.clone(), 0, 0);
                m.insert(k, v);
            } else if rng.chance(0.5) {
                assert_eq!(t.remove(&k[..]).map(|(_, v)| v), m.remove(&k));
            } else {
                assert_eq!(t.get(&k[..], 0), m.get(&k));
            }
        }
        assert_eq!(t.len(), m.len());
    });
}

// ---------------------------------------------------------------------------
// Reference S3-FIFO: the rules of `resilience::cache::eviction`, written the
// obvious way (VecDeques, a HashMap, a Vec ghost).

#[derive(Clone, Copy, Debug)]
struct E {
    v: u64,
    freq: u8,
    q: Queue,
    exp: u64,
}

struct Model {
    cap: usize,
    wlimit: u64,
    weighted: bool,
    small_target: usize,
    small_wtarget: u64,
    ghost_len: usize,
    ghost: Vec<u32>,
    hasher: SeededState,
    map: HashMap<u64, E>,
    small: VecDeque<u64>, // front = newest
    main: VecDeque<u64>,
    weight: u64,
    small_weight: u64,
    evictions: u64,
    expirations: u64,
}

fn weigh(_k: &u64, v: &u64) -> u64 {
    v % 5 + 1
}

impl Model {
    fn new(cap: usize, wlimit: Option<u64>, seed: u64) -> Self {
        let small_target = (cap / 100).max(1);
        let wl = wlimit.unwrap_or(u64::MAX);
        Self {
            cap,
            wlimit: wl,
            weighted: wlimit.is_some(),
            small_target,
            small_wtarget: (wl / 100).max(1),
            ghost_len: ((cap - small_target) / 2).max(1),
            ghost: Vec::new(),
            hasher: SeededState::with_seed(seed),
            map: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            weight: 0,
            small_weight: 0,
            evictions: 0,
            expirations: 0,
        }
    }

    fn w(&self, k: u64, v: u64) -> u64 {
        if self.weighted {
            weigh(&k, &v)
        } else {
            1
        }
    }

    fn ghost_slot(&self, k: u64) -> (usize, u32) {
        let fp = (self.hasher.hash_one(k) >> 32) as u32 | 1;
        (((fp as u64 * self.ghost.len() as u64) >> 32) as usize, fp)
    }

    fn remove(&mut self, k: u64) -> Option<u64> {
        let e = self.map.remove(&k)?;
        let w = self.w(k, e.v);
        let q = if e.q == Queue::Small { &mut self.small } else { &mut self.main };
        let at = q.iter().position(|&x| x == k).expect("queued");
        q.remove(at);
        self.weight -= w;
        if e.q == Queue::Small {
            self.small_weight -= w;
        }
        Some(e.v)
    }

    fn get(&mut self, k: u64, now: u64) -> Option<u64> {
        let e = self.map.get_mut(&k)?;
        if e.exp != 0 && now >= e.exp {
            self.remove(k);
            self.expirations += 1;
            return None;
        }
        e.freq = (e.freq + 1).min(3);
        Some(e.v)
    }

    fn evict_one(&mut self, now: u64) -> bool {
        loop {
            let from_small = !self.small.is_empty()
                && (self.main.is_empty()
                    || self.small.len() >= self.small_target
                    || self.small_weight >= self.small_wtarget);
            let k = match if from_small { self.small.back() } else { self.main.back() } {
                Some(&k) => k,
                None => return false,
            };
            let e = self.map[&k];
            if e.exp != 0 && now >= e.exp {
                self.remove(k);
                self.expirations += 1;
                return true;
            }
            if from_small {
                if e.freq >= 1 {
                    self.small.pop_back();
                    self.small_weight -= self.w(k, e.v);
                    let e = self.map.get_mut(&k).unwrap();
                    e.freq = 0;
                    e.q = Queue::Main;
                    self.main.push_front(k);
                    continue;
                }
                if self.ghost.is_empty() {
                    self.ghost = vec![0; self.ghost_len];
                }
                let (b, fp) = self.ghost_slot(k);
                self.ghost[b] = fp;
            } else if e.freq > 0 {
                self.main.pop_back();
                self.main.push_front(k);
                self.map.get_mut(&k).unwrap().freq -= 1;
                continue;
            }
            self.remove(k);
            self.evictions += 1;
            return true;
        }
    }

    fn make_room(&mut self, extra: usize, ew: u64, now: u64) {
        while self.map.len() + extra > self.cap || self.weight + ew > self.wlimit {
            if !self.evict_one(now) {
                break;
            }
        }
    }

    /// Returns ("new" | "replaced" | "rejected", old value).
    fn insert(&mut self, k: u64, v: u64, exp: u64, now: u64) -> (&'static str, Option<u64>) {
        let w = self.w(k, v);
        if w > self.wlimit || (exp != 0 && now >= exp) {
            return ("rejected", self.remove(k));
        }
        if let Some(e) = self.map.get_mut(&k) {
            let old = e.v;
            e.v = v;
            e.exp = exp;
            e.freq = (e.freq + 1).min(3);
            let in_small = e.q == Queue::Small;
            let ow = self.w(k, old);
            self.weight = self.weight - ow + w;
            if in_small {
                self.small_weight = self.small_weight - ow + w;
            }
            if self.weight > self.wlimit {
                // A grown value evicts others, never itself, and goes back as
                // its queue's newest.
                let q = if in_small { &mut self.small } else { &mut self.main };
                let at = q.iter().position(|&x| x == k).expect("queued");
                q.remove(at);
                self.make_room(0, 0, now);
                let q = if in_small { &mut self.small } else { &mut self.main };
                q.push_front(k);
            }
            return ("replaced", Some(old));
        }
        self.make_room(1, w, now);
        let mut q = Queue::Small;
        if !self.ghost.is_empty() {
            let (b, fp) = self.ghost_slot(k);
            if self.ghost[b] == fp {
                self.ghost[b] = 0;
                q = Queue::Main;
            }
        }
        self.map.insert(k, E { v, freq: 0, q, exp });
        self.weight += w;
        if q == Queue::Small {
            self.small.push_front(k);
            self.small_weight += w;
        } else {
            self.main.push_front(k);
        }
        ("new", None)
    }
}

fn eviction_matches_reference<G: GroupOps>(rng: &mut Rng) {
    let cap = rng.range(1, 300) as usize;
    let wlimit = if rng.chance(0.4) { Some(rng.range(1, 3 * cap as u64 + 5)) } else { None };
    let ttl = rng.chance(0.4);
    let seed = rng.next_u64();
    let limits = Limits { max_entries: Some(cap), max_weight: wlimit };
    let weigher: Option<fn(&u64, &u64) -> u64> = wlimit.map(|_| weigh as fn(&u64, &u64) -> u64);
    let mut t: Table<u64, u64, SeededState, G> =
        Table::with_limits(limits, weigher, SeededState::with_seed(seed)).unwrap();
    let mut m = Model::new(cap, wlimit, seed);
    let universe = rng.range(2, 4 * cap as u64 + 4);
    let skew = rng.chance(0.5);
    let mut now = 1_000u64;
    for step in 0..rng.range(1, 3000) {
        let k = if skew {
            let bound = rng.below(universe) + 1;
            rng.below(bound)
        } else {
            rng.below(universe)
        };
        if ttl && rng.chance(0.1) {
            now += rng.below(50);
        }
        let r = rng.below(100);
        if r < 55 {
            assert_eq!(t.get(&k, now).copied(), m.get(k, now), "step {step}: get {k}");
        } else if r < 95 {
            let v = rng.below(1000);
            let exp = if ttl && rng.chance(0.5) { now + rng.below(200) } else { 0 };
            let got = match t.insert(k, v, exp, now) {
                Inserted::New => ("new", None),
                Inserted::Replaced(o) => ("replaced", Some(o)),
                Inserted::Rejected(o) => ("rejected", o),
            };
            assert_eq!(got, m.insert(k, v, exp, now), "step {step}: insert {k}");
        } else {
            assert_eq!(t.remove(&k).map(|(_, v)| v), m.remove(k), "step {step}: remove {k}");
        }
        assert_eq!(t.len(), m.map.len(), "step {step}: len");
        assert!(t.len() <= cap);
        assert_eq!(t.weight(), m.weight, "step {step}: weight");
        if let Some(w) = wlimit {
            assert!(t.weight() <= w);
        }
        assert_eq!(t.queue_lengths(), (m.small.len(), m.main.len()), "step {step}: queues");
        for (k, e) in &m.map {
            assert_eq!(t.policy_state(k), Some((e.q, e.freq)), "step {step}: key {k}");
        }
        let s = t.stats();
        assert_eq!((s.evictions, s.expirations), (m.evictions, m.expirations), "step {step}: counters");
    }
    assert_eq!(t.iter().count(), m.map.len());
}

#[test]
fn eviction_matches_reference_s3fifo() {
    check(cases(300), eviction_matches_reference::<Group>);
}

#[test]
fn eviction_matches_reference_s3fifo_portable_groups() {
    check(cases(100), eviction_matches_reference::<Generic>);
}

/// The model's value for `k` at `now`: key -> (value, deadline; 0 = never).
fn live(m: &HashMap<u64, (u64, u64)>, k: u64, now: u64) -> Option<u64> {
    m.get(&k).filter(|(_, d)| *d == 0 || now < *d).map(|(v, _)| *v)
}

#[test]
fn ttl_under_manual_clock() {
    check(cases(100), |rng| {
        let clock = Arc::new(ManualClock::new(SECOND));
        let shards = 1 << rng.below(4);
        let default_ttl = rng.range(1, 100);
        let cache: Cache<u64, u64> = Cache::builder()
            .max_entries(100_000)
            .shards(shards)
            .default_ttl(Duration::from_nanos(default_ttl))
            .clock(clock.clone())
            .build()
            .unwrap();
        // key -> (value, deadline; 0 = never)
        let mut m: HashMap<u64, (u64, u64)> = HashMap::new();
        for _ in 0..rng.range(1, 1500) {
            let k = rng.below(64);
            let now = clock.now();
            match rng.below(10) {
                0..=2 => {
                    let v = rng.next_u64();
                    cache.insert(k, v);
                    m.insert(k, (v, now + default_ttl));
                }
                3..=4 => {
                    let v = rng.next_u64();
                    let ttl = if rng.chance(0.3) { None } else { Some(rng.range(1, 200)) };
                    cache.insert_with_ttl(k, v, ttl.map(Duration::from_nanos));
                    m.insert(k, (v, ttl.map_or(0, |t| now + t)));
                }
                5..=7 => assert_eq!(cache.get(&k), live(&m, k, now), "get {k} at {now}"),
                8 => assert_eq!(cache.contains(&k), live(&m, k, now).is_some()),
                _ if rng.chance(0.3) => {
                    // Partial sweeps: passes end and tighten each shard's
                    // bound on its deadlines, which the full sweep below
                    // relies on to skip nothing.
                    cache.sweep_expired(1 + rng.below(4) as usize);
                }
                _ => {
                    clock.advance(rng.below(60));
                }
            }
        }
        let now = clock.now();
        cache.sweep_expired(usize::MAX);
        let alive = m.keys().filter(|&&k| live(&m, k, now).is_some()).count();
        assert_eq!(cache.len(), alive, "a full sweep leaves only live entries");
        clock.advance(1_000);
        let never = m.values().filter(|(_, d)| *d == 0).count();
        assert_eq!(cache.sweep_expired_at(usize::MAX, clock.now()), alive - never);
        assert_eq!(cache.len(), never);
    });
}

#[test]
fn sweep_is_bounded() {
    let clock = Arc::new(ManualClock::new(SECOND));
    let cache: Cache<u64, u64> =
        Cache::builder().max_entries(10_000).shards(1).clock(clock.clone()).build().unwrap();
    for k in 0..5_000 {
        cache.insert_with_ttl(k, k, Some(Duration::from_secs(1)));
    }
    clock.advance(2 * SECOND);
    assert_eq!(cache.sweep_expired(10), 10, "removes at most max per call");
    let mut total = 10;
    while !cache.is_empty() {
        total += cache.sweep_expired(100);
    }
    assert_eq!(total, 5_000);
    assert_eq!(cache.stats().expirations, 5_000);
}

/// A read-mostly sequence, so that shards go lock-free and back (a write
/// revokes, a streak of reads turns the bias on again): gets, `contains`,
/// `get_with` and `get_or_insert_with` agree with a `HashMap` model with
/// deadlines in both modes (sweeps between), and the hit and miss counters
/// with the model's.
#[test]
fn read_mostly_cache_matches_model_in_both_read_modes() {
    check(cases(60), |rng| {
        let clock = Arc::new(ManualClock::new(SECOND));
        let cache: Cache<u64, u64> = Cache::builder()
            .max_entries(100_000)
            .shards(1 << rng.below(2))
            .clock(clock.clone())
            .build()
            .unwrap();
        let mut m: HashMap<u64, (u64, u64)> = HashMap::new();
        let (mut hits, mut misses, mut lock_free_seen) = (0u64, 0u64, false);
        for _ in 0..rng.range(1000, 4000) {
            let k = rng.below(32);
            let now = clock.now();
            lock_free_seen |= cache.lock_free_shards() > 0;
            // Writes are rare (an insert or remove in 80 operations, and
            // the `get_or_insert_with` misses): streaks of 64 reads happen.
            match rng.below(400) {
                0..=2 => {
                    let (v, ttl) = (rng.next_u64(), rng.range(1, 2000));
                    cache.insert_with_ttl(k, v, Some(Duration::from_nanos(ttl)));
                    m.insert(k, (v, now + ttl));
                }
                3 => {
                    let v = rng.next_u64();
                    cache.insert(k, v);
                    m.insert(k, (v, 0));
                }
                4 => {
                    let got = cache.remove(&k);
                    let was_live = live(&m, k, now);
                    let had = m.remove(&k).map(|(v, _)| v);
                    // An expired entry may be gone already (a locked read
                    // removes it) or still held (a lock-free read leaves it).
                    assert!(got == had || (got.is_none() && was_live.is_none()), "remove {k}");
                }
                5 => {
                    // Removes only expired entries: the answers stay the same.
                    cache.sweep_expired(1 + rng.below(4) as usize);
                }
                6..=19 => {
                    clock.advance(rng.below(10));
                }
                20..=79 => assert_eq!(cache.contains(&k), live(&m, k, now).is_some(), "contains {k}"),
                160..=199 => {
                    // A hit is a read (lock-free or beside the lock-free
                    // readers); a miss loads and stores without a deadline.
                    let want = live(&m, k, now);
                    let fresh = rng.next_u64();
                    let got = cache.get_or_insert_with(k, || Ok::<_, ()>(fresh));
                    assert_eq!(got, Ok(want.unwrap_or(fresh)), "get_or_insert_with {k} at {now}");
                    if want.is_some() {
                        hits += 1
                    } else {
                        misses += 1;
                        m.insert(k, (fresh, 0));
                    }
                }
                80..=159 => {
                    let want = live(&m, k, now);
                    assert_eq!(cache.get_with(&k, |v| *v), want, "get_with {k} at {now}");
                    if want.is_some() {
                        hits += 1
                    } else {
                        misses += 1
                    }
                }
                _ => {
                    let want = live(&m, k, now);
                    assert_eq!(cache.get(&k), want, "get {k} at {now}");
                    if want.is_some() {
                        hits += 1
                    } else {
                        misses += 1
                    }
                }
            }
        }
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (hits, misses), "counters match the model");
        assert!(lock_free_seen, "the read bias never came on");
    });
}
