//! Cache benches: `resilience::cache` beside quick_cache, moka and a bare
//! `hashbrown::HashMap`, in the same groups.
//!
//! Keys are `u64`; values are 16-byte or 100-byte byte strings
//! (`Box<[u8]>`). Every `get` of the concurrent caches returns a clone (a
//! small allocation and copy, the same for every peer); `get_with` is ours
//! copying the bytes out into a caller's buffer instead (the C ABI path),
//! and `quick_cache_entry_copy` is quick_cache copying out the same way
//! through `entry`, its one read that does not clone.
//! The single-owner groups compare our lock-free-by-ownership [`Table`]
//! with quick_cache's `unsync::Cache` and hashbrown, all returning `&V`.
//!
//! Throughput is per operation (`BATCH` operations per iteration).

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use quick_cache::sync::{EntryAction, EntryResult};
use resilience::cache::{Cache, Limits, Table};
use resilience::hash::SeededState;
use resilience_benches::{keyed_value, load_average, pin_to, scrambled_keys, timed_threads, zipf_trace};

const BATCH: usize = 1024;
/// Keys resident in the hit benches.
const HOT: usize = 8192;
/// Capacity of the caches in the hit and miss benches (all keys fit).
const CAP: usize = 16384;
/// Capacity in the eviction and mix benches.
const SMALL_CAP: usize = 4096;
/// Key space of the Zipf mix.
const ZIPF_KEYS: usize = 100_000;

type Val = Box<[u8]>;

fn first_word(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[..8]);
    u64::from_le_bytes(b)
}

fn ours(cap: usize) -> Cache<u64, Val> {
    Cache::builder().max_entries(cap).build().expect("valid cache")
}

fn ours_table(cap: usize) -> Table<u64, Val> {
    Table::with_limits(Limits::entries(cap), None, SeededState::new()).expect("valid table")
}

fn quick(cap: usize) -> quick_cache::sync::Cache<u64, Val> {
    quick_cache::sync::Cache::new(cap)
}

fn moka(cap: usize) -> moka::sync::Cache<u64, Val> {
    moka::sync::Cache::new(cap as u64)
}

/// The operations every concurrent peer offers, so one loop body serves all.
trait Peer: Sync {
    fn get(&self, k: u64) -> Option<Val>;
    fn put(&self, k: u64, v: Val);
    /// The value of a resident key through the peer's get-or-load call
    /// (the loader must not run).
    fn get_or_load(&self, k: u64) -> Val;
}

fn never() -> Result<Val, ()> {
    unreachable!("the key is resident: the loader must not run")
}

impl Peer for Cache<u64, Val> {
    #[inline]
    fn get(&self, k: u64) -> Option<Val> {
        Cache::get(self, &k)
    }
    #[inline]
    fn put(&self, k: u64, v: Val) {
        self.insert(k, v)
    }
    #[inline]
    fn get_or_load(&self, k: u64) -> Val {
        self.get_or_insert_with(k, never).expect("resident")
    }
}

impl Peer for quick_cache::sync::Cache<u64, Val> {
    #[inline]
    fn get(&self, k: u64) -> Option<Val> {
        quick_cache::sync::Cache::get(self, &k)
    }
    #[inline]
    fn put(&self, k: u64, v: Val) {
        self.insert(k, v)
    }
    #[inline]
    fn get_or_load(&self, k: u64) -> Val {
        self.get_or_insert_with(&k, never).expect("resident")
    }
}

impl Peer for moka::sync::Cache<u64, Val> {
    #[inline]
    fn get(&self, k: u64) -> Option<Val> {
        moka::sync::Cache::get(self, &k)
    }
    #[inline]
    fn put(&self, k: u64, v: Val) {
        self.insert(k, v)
    }
    #[inline]
    fn get_or_load(&self, k: u64) -> Val {
        self.get_with(k, || never().expect("resident"))
    }
}

fn filled<P: Peer>(p: P, ks: &[u64], len: usize) -> P {
    for &k in ks {
        p.put(k, keyed_value(len, k));
    }
    for &k in ks.iter().step_by(97) {
        assert_eq!(p.get(k).map(|v| first_word(&v)), Some(k), "peer lost a resident key");
    }
    p
}

/// `BATCH` hits from `start`, each handing `read` a key; `read` copies the
/// value's bytes out and answers how many (`None` when absent). The total.
fn copy_outs(ks: &[u64], start: usize, mut read: impl FnMut(u64) -> Option<usize>) -> usize {
    (0..BATCH).map(|j| read(ks[(start + j) & (HOT - 1)]).unwrap_or(0)).sum()
}

/// Copies `v` to the front of `buf`; its length.
fn copy_into(buf: &mut [u8], v: &[u8]) -> usize {
    buf[..v.len()].copy_from_slice(v);
    v.len()
}

fn get_hits<P: Peer>(p: &P, ks: &[u64], start: usize) -> u64 {
    let mut acc = 0u64;
    for j in 0..BATCH {
        let k = ks[(start + j) & (HOT - 1)];
        if let Some(v) = p.get(k) {
            acc = acc.wrapping_add(v[0] as u64);
        }
    }
    acc
}

/// A group with short, fixed timing (the machine is small and shared) and
/// per-operation throughput.
fn group<'a>(c: &'a mut Criterion, name: impl Into<String>, ops: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(ops));
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g
}

fn get_hit(c: &mut Criterion) {
    for len in [16usize, 100] {
        let ks = scrambled_keys(HOT, 1);
        let mut g = group(c, format!("cache/get_hit/{len}B"), BATCH as u64);

        let o = filled(ours(CAP), &ks, len);
        let mut i = 0usize;
        g.bench_function("resilience", |b| {
            b.iter(|| {
                i = i.wrapping_add(BATCH);
                black_box(get_hits(&o, &ks, i))
            })
        });
        let mut buf = [0u8; 128];
        assert_eq!(o.get_with(&ks[0], |v| v.len()), Some(len));
        g.bench_function("resilience_get_with_copy", |b| {
            b.iter(|| {
                i = i.wrapping_add(BATCH);
                let n = copy_outs(&ks, i, |k| o.get_with(&k, |v| copy_into(&mut buf, v)));
                black_box((n, buf[0]))
            })
        });
        drop(o);
        let q = filled(quick(CAP), &ks, len);
        g.bench_function("quick_cache", |b| {
            b.iter(|| {
                i = i.wrapping_add(BATCH);
                black_box(get_hits(&q, &ks, i))
            })
        });
        // quick_cache's one read that does not clone: `entry`, under the
        // shard's write lock (it counts a hit and bumps the entry, as `get`
        // does); beside our `get_with` copy-out, like for like.
        g.bench_function("quick_cache_entry_copy", |b| {
            b.iter(|| {
                i = i.wrapping_add(BATCH);
                let n = copy_outs(&ks, i, |k| {
                    match q.entry(&k, None, |_, v| EntryAction::Retain(copy_into(&mut buf, v))) {
                        EntryResult::Retained(l) => Some(l),
                        _ => None,
                    }
                });
                black_box((n, buf[0]))
            })
        });
        drop(q);
        let m = filled(moka(CAP), &ks, len);
        g.bench_function("moka", |b| {
            b.iter(|| {
                i = i.wrapping_add(BATCH);
                black_box(get_hits(&m, &ks, i))
            })
        });
        drop(m);
        g.finish();
    }
}

/// Single-owner tables: ours, quick_cache's unsync cache, a bare hashbrown
/// map; every lookup returns `&V` (no clone).
fn table_get_hit(c: &mut Criterion) {
    let ks = scrambled_keys(HOT, 2);
    let mut g = group(c, "cache/table_get_hit/16B", BATCH as u64);
    let mut t = ours_table(CAP);
    let mut hb: hashbrown::HashMap<u64, Val> = hashbrown::HashMap::with_capacity(CAP);
    let mut qu: quick_cache::unsync::Cache<u64, Val> = quick_cache::unsync::Cache::new(CAP);
    for &k in &ks {
        t.insert(k, keyed_value(16, k), 0, 0);
        hb.insert(k, keyed_value(16, k));
        qu.insert(k, keyed_value(16, k));
    }
    for &k in &ks {
        assert_eq!(t.get(&k, 0).map(|v| first_word(v)), Some(k));
        assert_eq!(hb.get(&k).map(|v| first_word(v)), Some(k));
        assert_eq!(qu.get(&k).map(|v| first_word(v)), Some(k));
    }
    let mut i = 0usize;
    g.bench_function("resilience_table", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            let mut acc = 0u64;
            for j in 0..BATCH {
                if let Some(v) = t.get(&ks[(i + j) & (HOT - 1)], 0) {
                    acc = acc.wrapping_add(v[0] as u64);
                }
            }
            black_box(acc)
        })
    });
    g.bench_function("quick_cache_unsync", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            let mut acc = 0u64;
            for j in 0..BATCH {
                if let Some(v) = qu.get(&ks[(i + j) & (HOT - 1)]) {
                    acc = acc.wrapping_add(v[0] as u64);
                }
            }
            black_box(acc)
        })
    });
    g.bench_function("hashbrown", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            let mut acc = 0u64;
            for j in 0..BATCH {
                if let Some(v) = hb.get(&ks[(i + j) & (HOT - 1)]) {
                    acc = acc.wrapping_add(v[0] as u64);
                }
            }
            black_box(acc)
        })
    });
    g.finish();
}

fn get_miss(c: &mut Criterion) {
    let ks = scrambled_keys(HOT, 3);
    let absent = scrambled_keys(HOT, 4);
    let mut g = group(c, "cache/get_miss/16B", BATCH as u64);
    fn misses<P: Peer>(p: &P, absent: &[u64], start: usize) -> usize {
        (0..BATCH).filter(|j| p.get(absent[(start + j) & (HOT - 1)]).is_some()).count()
    }
    let o = filled(ours(CAP), &ks, 16);
    let q = filled(quick(CAP), &ks, 16);
    let m = filled(moka(CAP), &ks, 16);
    assert_eq!(misses(&o, &absent, 0) + misses(&q, &absent, 0) + misses(&m, &absent, 0), 0);
    let mut i = 0usize;
    g.bench_function("resilience", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            black_box(misses(&o, &absent, i))
        })
    });
    g.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            black_box(misses(&q, &absent, i))
        })
    });
    g.bench_function("moka", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            black_box(misses(&m, &absent, i))
        })
    });
    g.finish();

    // Two threads missing on the same cache, each from its own half.
    let mut g = group(c, "cache/get_miss_2threads/16B", 2 * BATCH as u64);
    fn two<P: Peer>(p: &P, absent: &[u64], iters: u64) -> Duration {
        timed_threads(2, iters, &|t, i| {
            black_box(misses(p, absent, i as usize * BATCH + t * (HOT / 2)));
        })
    }
    g.bench_function("resilience", |b| b.iter_custom(|n| two(&o, &absent, n)));
    g.bench_function("quick_cache", |b| b.iter_custom(|n| two(&q, &absent, n)));
    g.bench_function("moka", |b| b.iter_custom(|n| two(&m, &absent, n)));
    g.finish();
}

fn insert_evict(c: &mut Criterion) {
    for len in [16usize, 100] {
        let mut g = group(c, format!("cache/insert_evict/{len}B"), BATCH as u64);
        let proto = keyed_value(len, 0);
        fn run<P: Peer>(p: &P, next: &mut u64, proto: &Val) {
            for _ in 0..BATCH {
                *next += 1;
                p.put(*next, proto.clone());
            }
        }
        let o = ours(SMALL_CAP);
        let q = quick(SMALL_CAP);
        let m = moka(SMALL_CAP);
        let mut next = 0u64;
        for _ in 0..8 {
            run(&o, &mut next, &proto);
            run(&q, &mut next, &proto);
        }
        assert!(o.len() <= SMALL_CAP && o.stats().evictions > 0, "ours evicts at its capacity");
        g.bench_function("resilience", |b| b.iter(|| run(&o, &mut next, &proto)));
        g.bench_function("quick_cache", |b| b.iter(|| run(&q, &mut next, &proto)));
        g.bench_function("moka", |b| b.iter(|| run(&m, &mut next, &proto)));
        g.finish();
        if len != 16 {
            continue;
        }
        // Two threads inserting fresh keys into the same full cache (each
        // batch takes its key range from a shared counter).
        let fresh = std::sync::atomic::AtomicU64::new(next + 1);
        let mut g = group(c, "cache/insert_evict_2threads/16B", 2 * BATCH as u64);
        fn two<P: Peer>(p: &P, fresh: &std::sync::atomic::AtomicU64, proto: &Val, iters: u64) -> Duration {
            timed_threads(2, iters, &|_, _| {
                let mut next = fresh.fetch_add(BATCH as u64, std::sync::atomic::Ordering::Relaxed);
                run(p, &mut next, proto);
            })
        }
        g.bench_function("resilience", |b| b.iter_custom(|n| two(&o, &fresh, &proto, n)));
        g.bench_function("quick_cache", |b| b.iter_custom(|n| two(&q, &fresh, &proto, n)));
        g.bench_function("moka", |b| b.iter_custom(|n| two(&m, &fresh, &proto, n)));
        g.finish();
        assert!(o.len() <= SMALL_CAP, "ours stays within its capacity on two threads");
    }
}

fn zipf_mix(c: &mut Criterion) {
    let trace = zipf_trace(ZIPF_KEYS, 1 << 16, 5);
    let mask = trace.len() - 1;
    let proto = keyed_value(16, 0);
    fn run<P: Peer>(p: &P, trace: &[u64], mask: usize, start: usize, proto: &Val) -> usize {
        let mut hits = 0;
        for j in 0..BATCH {
            let k = trace[(start + j) & mask];
            // 90% reads, 10% writes, decided by the key's position.
            if (start + j) % 10 == 9 {
                p.put(k, proto.clone());
            } else if p.get(k).is_some() {
                hits += 1;
            }
        }
        hits
    }
    let o = ours(SMALL_CAP);
    let q = quick(SMALL_CAP);
    let m = moka(SMALL_CAP);
    for start in (0..trace.len()).step_by(BATCH) {
        run(&o, &trace, mask, start, &proto);
        run(&q, &trace, mask, start, &proto);
        run(&m, &trace, mask, start, &proto);
    }
    assert!(run(&o, &trace, mask, 0, &proto) > BATCH / 4, "a warm cache hits the Zipf head");

    let mut g = group(c, "cache/zipf_90_10/16B", BATCH as u64);
    let mut i = 0usize;
    g.bench_function("resilience", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            black_box(run(&o, &trace, mask, i, &proto))
        })
    });
    g.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            black_box(run(&q, &trace, mask, i, &proto))
        })
    });
    g.bench_function("moka", |b| {
        b.iter(|| {
            i = i.wrapping_add(BATCH);
            black_box(run(&m, &trace, mask, i, &proto))
        })
    });
    g.finish();

    // Two threads on the same cache, each at its own offset in the trace.
    let mut g = group(c, "cache/zipf_90_10_2threads/16B", 2 * BATCH as u64);
    fn two<P: Peer>(p: &P, trace: &[u64], mask: usize, proto: &Val, iters: u64) -> Duration {
        timed_threads(2, iters, &|t, i| {
            black_box(run(p, trace, mask, (i as usize * BATCH) + t * (trace.len() / 2), proto));
        })
    }
    g.bench_function("resilience", |b| b.iter_custom(|n| two(&o, &trace, mask, &proto, n)));
    g.bench_function("quick_cache", |b| b.iter_custom(|n| two(&q, &trace, mask, &proto, n)));
    g.bench_function("moka", |b| b.iter_custom(|n| two(&m, &trace, mask, &proto, n)));
    g.finish();
}

fn get_hit_two_threads(c: &mut Criterion) {
    let ks = scrambled_keys(HOT, 6);
    let mut g = group(c, "cache/get_hit_2threads/16B", 2 * BATCH as u64);
    fn two<P: Peer>(p: &P, ks: &[u64], iters: u64) -> Duration {
        timed_threads(2, iters, &|t, i| {
            black_box(get_hits(p, ks, i as usize * BATCH + t * (HOT / 2)));
        })
    }
    let o = filled(ours(CAP), &ks, 16);
    g.bench_function("resilience", |b| b.iter_custom(|n| two(&o, &ks, n)));
    drop(o);
    let q = filled(quick(CAP), &ks, 16);
    g.bench_function("quick_cache", |b| b.iter_custom(|n| two(&q, &ks, n)));
    drop(q);
    let m = filled(moka(CAP), &ks, 16);
    g.bench_function("moka", |b| b.iter_custom(|n| two(&m, &ks, n)));
    drop(m);
    g.finish();
}

/// `get_or_insert_with` (moka: `get_with`) of resident keys, one thread
/// and two: a read-mostly cache used through its loading call.
fn get_or_load_hit(c: &mut Criterion) {
    fn loads<P: Peer>(p: &P, ks: &[u64], start: usize) -> u64 {
        let mut acc = 0u64;
        for j in 0..BATCH {
            acc = acc.wrapping_add(p.get_or_load(ks[(start + j) & (HOT - 1)])[0] as u64);
        }
        acc
    }
    fn two<P: Peer>(p: &P, ks: &[u64], iters: u64) -> Duration {
        timed_threads(2, iters, &|t, i| {
            black_box(loads(p, ks, i as usize * BATCH + t * (HOT / 2)));
        })
    }
    fn both<P: Peer>(c: &mut Criterion, name: &str, p: &P, ks: &[u64]) {
        let mut i = 0usize;
        let mut g = group(c, "cache/get_or_load_hit/16B", BATCH as u64);
        g.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(BATCH);
                black_box(loads(p, ks, i))
            })
        });
        g.finish();
        let mut g = group(c, "cache/get_or_load_hit_2threads/16B", 2 * BATCH as u64);
        g.bench_function(name, |b| b.iter_custom(|n| two(p, ks, n)));
        g.finish();
    }
    let ks = scrambled_keys(HOT, 7);
    both(c, "resilience", &filled(ours(CAP), &ks, 16), &ks);
    both(c, "quick_cache", &filled(quick(CAP), &ks, 16), &ks);
    both(c, "moka", &filled(moka(CAP), &ks, 16), &ks);
}

/// Registers the cache benches.
pub fn register(c: &mut Criterion) {
    eprintln!("cache benches: load average {:?}", load_average());
    pin_to(0);
    get_hit(c);
    table_get_hit(c);
    get_miss(c);
    insert_evict(c);
    zipf_mix(c);
    get_hit_two_threads(c);
    get_or_load_hit(c);
}
