//! Interleaved get-hit rounds: our `Cache` and single-owner `Table` beside
//! quick_cache (sync and unsync) and a bare `hashbrown::HashMap`, one thread
//! pinned, the variants alternating round by round so that a noisy machine
//! slows them alike; prints the median ns per get of each and the ratios.
//!
//! Run: `cargo run --release -p resilience-benches --bin cache-hit`
//! (env `ROUNDS`, default 200; `LEN`, value bytes, default 16; `MODE=evict`
//! for insert with eviction (`MODE=evict2` on two threads), `MODE=mix` for the 90/10 Zipf mix, `MODE=mix2` for
//! that mix on two threads, `MODE=hit2` for hits on two threads, `MODE=load`
//! and `MODE=load2` for `get_or_insert_with` hits on one and two threads, each beside
//! quick_cache, `ONLY=ours` to run ours alone under a profiler; in the
//! default hit mode `VARIANT=n` runs only row `n` of the table, counting
//! from 0, e.g. under `valgrind --tool=cachegrind` for instructions per get).
//!
//! The same keys, values and access order as the criterion `cache/get_hit`
//! and `cache/table_get_hit` groups: 8,192 resident `u64` keys (capacity
//! 16,384), `Box<[u8]>` values; a concurrent cache's get returns a clone.

use std::hint::black_box;
use std::time::Instant;

use quick_cache::sync::{EntryAction, EntryResult};
use resilience::cache::{Cache, Limits, Table};
use resilience::hash::SeededState;
use resilience_benches::{
    keyed_value, load_average, median, pin_to, scrambled_keys, timed_threads, zipf_trace,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOT: usize = 8192;
const CAP: usize = 16384;
const GETS: usize = 65536;

type Val = Box<[u8]>;

/// Nanoseconds per get of one round of `GETS` gets starting at `start`.
fn round(start: usize, ks: &[u64], mut get: impl FnMut(u64) -> u64) -> f64 {
    let t = Instant::now();
    let mut acc = 0u64;
    for j in 0..GETS {
        acc = acc.wrapping_add(get(ks[(start + j) & (HOT - 1)]));
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / GETS as f64
}

/// Runs `ours` and `quick` (each returns ns per operation of one round) in
/// alternating rounds and prints both medians and the ratio; with env
/// `ONLY=ours`, ours alone (for profiling).
fn ours_vs_quick(what: &str, rounds: usize, mut ours: impl FnMut() -> f64, mut quick: impl FnMut() -> f64) {
    let only_ours = std::env::var("ONLY").is_ok_and(|s| s == "ours");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(ours());
        if !only_ours {
            b.push(quick());
        }
    }
    println!("{what}, {rounds} interleaved rounds, medians; load average {:?}", load_average());
    let ma = median(&mut a);
    println!("| ours | {ma:.2} ns/op |");
    if !only_ours {
        let mb = median(&mut b);
        println!("| quick_cache | {mb:.2} ns/op |\nours vs quick_cache: {:.2}x", mb / ma);
    }
}

/// Nanoseconds per operation of `ops` operations of `body`.
fn timed(ops: usize, body: impl FnOnce()) -> f64 {
    let t = Instant::now();
    body();
    t.elapsed().as_nanos() as f64 / ops as f64
}

/// Runs `body(thread)` on two pinned threads started together; returns ns
/// per operation of the pair: the slower thread's wall time over `2 * ops`.
fn on_two_threads(ops: usize, body: &(dyn Fn(usize) + Sync)) -> f64 {
    timed_threads(2, 1, &|t, _| body(t)).as_nanos() as f64 / (2 * ops) as f64
}

/// Insert with eviction (capacity 4,096, fresh keys).
fn evict(rounds: usize, len: usize) {
    let ours: Cache<u64, Val> = Cache::builder().max_entries(4096).build().expect("valid cache");
    let quick = quick_cache::sync::Cache::<u64, Val>::new(4096);
    let proto = keyed_value(len, 0);
    let next = std::cell::Cell::new(0u64);
    let run = |put: &dyn Fn(u64, Val)| {
        timed(GETS / 4, || {
            for _ in 0..GETS / 4 {
                next.set(next.get() + 1);
                put(next.get(), proto.clone());
            }
        })
    };
    ours_vs_quick(
        &format!("insert with eviction, {len}-byte values"),
        rounds,
        || run(&|k, v| ours.insert(k, v)),
        || run(&|k, v| quick.insert(k, v)),
    );
    assert!(ours.len() <= 4096 && ours.stats().evictions > 0);
}

/// Insert with eviction on two pinned threads (capacity 4,096, fresh keys
/// from a shared counter, a batch at a time); ns per insert of the pair.
fn evict_two_threads(rounds: usize, len: usize) {
    let ours: Cache<u64, Val> = Cache::builder().max_entries(4096).build().expect("valid cache");
    let quick = quick_cache::sync::Cache::<u64, Val>::new(4096);
    let proto = keyed_value(len, 0);
    let fresh = std::sync::atomic::AtomicU64::new(1);
    const BATCH: u64 = 1024;
    let run = |put: &(dyn Fn(u64, Val) + Sync)| {
        on_two_threads(GETS / 4, &|_| {
            for _ in 0..GETS as u64 / 4 / BATCH {
                let base = fresh.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                for k in base..base + BATCH {
                    put(k, proto.clone());
                }
            }
        })
    };
    ours_vs_quick(
        &format!("insert with eviction, two threads, {len}-byte values"),
        rounds,
        || run(&|k, v| ours.insert(k, v)),
        || run(&|k, v| quick.insert(k, v)),
    );
    assert!(ours.len() <= 4096 && ours.stats().evictions > 0);
    println!("shards: ours {}", ours.shard_count());
}

/// One pass of the 90/10 get/insert mix over `trace` from `offset`: a write
/// at every tenth position, a read elsewhere. Returns the hits.
fn mix_pass(
    trace: &[u64],
    offset: usize,
    proto: &Val,
    get: &dyn Fn(u64) -> bool,
    put: &dyn Fn(u64, Val),
) -> usize {
    let n = trace.len();
    let mut hits = 0;
    for j in 0..n {
        let k = trace[(j + offset) % n];
        if j % 10 == 9 {
            put(k, proto.clone());
        } else if get(k) {
            hits += 1;
        }
    }
    hits
}

/// The 90/10 get/insert mix on a Zipf(0.99) trace over 100,000 keys,
/// capacity 4,096, on one thread or on two (each from its own half of the
/// trace; ns per operation of the pair).
fn mix(rounds: usize, len: usize, threads: usize) {
    let ours: Cache<u64, Val> = Cache::builder().max_entries(4096).build().expect("valid cache");
    let quick = quick_cache::sync::Cache::<u64, Val>::new(4096);
    let trace = zipf_trace(100_000, 1 << 16, 5);
    let proto = keyed_value(len, 0);
    let ops = trace.len();
    let run = |get: &(dyn Fn(u64) -> bool + Sync), put: &(dyn Fn(u64, Val) + Sync)| {
        if threads == 1 {
            timed(ops, || {
                black_box(mix_pass(&trace, 0, &proto, get, put));
            })
        } else {
            on_two_threads(ops, &|t| {
                black_box(mix_pass(&trace, t * ops / 2, &proto, get, put));
            })
        }
    };
    ours_vs_quick(
        &format!("Zipf 90/10 mix, {threads} thread(s), {len}-byte values"),
        rounds,
        || run(&|k| ours.get(&k).is_some(), &|k, v| ours.insert(k, v)),
        || run(&|k| quick.get(&k).is_some(), &|k, v| quick.insert(k, v)),
    );
}

/// Hits on resident keys, through `get` or through `get_or_insert_with`
/// (the loader never runs), on one pinned thread or on two (each from its
/// own half of the key order); ns per call (of the pair, on two).
fn resident_hits(rounds: usize, len: usize, threads: usize, via_loader: bool) {
    let ks = scrambled_keys(HOT, if via_loader { 7 } else { 6 });
    let ours: Cache<u64, Val> = Cache::builder().max_entries(CAP).build().expect("valid cache");
    let quick = quick_cache::sync::Cache::<u64, Val>::new(CAP);
    for &k in &ks {
        ours.insert(k, keyed_value(len, k));
        quick.insert(k, keyed_value(len, k));
    }
    let run = |get: &(dyn Fn(u64) -> u64 + Sync)| {
        let body = |t: usize| {
            let mut acc = 0u64;
            for j in 0..GETS {
                acc = acc.wrapping_add(get(ks[(j + t * HOT / 2) & (HOT - 1)]));
            }
            black_box(acc);
        };
        if threads == 1 {
            timed(GETS, || body(0))
        } else {
            on_two_threads(GETS, &body)
        }
    };
    let never = || -> Result<Val, ()> { unreachable!("every key is resident") };
    let first = |v: Val| v[0] as u64;
    if via_loader {
        ours_vs_quick(
            &format!("get_or_insert_with hit, {threads} thread(s), {len}-byte values"),
            rounds,
            || run(&|k| ours.get_or_insert_with(k, never).map_or(0, first)),
            || run(&|k| quick.get_or_insert_with(&k, never).map_or(0, first)),
        );
    } else {
        ours_vs_quick(
            &format!("get hit, {threads} thread(s), {len}-byte values"),
            rounds,
            || run(&|k| ours.get(&k).map_or(0, first)),
            || run(&|k| quick.get(&k).map_or(0, first)),
        );
    }
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let len: usize = std::env::var("LEN").ok().and_then(|s| s.parse().ok()).unwrap_or(16);
    assert!(len >= 8, "LEN must be at least 8");
    match std::env::var("MODE").as_deref() {
        Ok("evict") => {
            pin_to(0);
            return evict(rounds, len);
        }
        Ok("mix") => {
            pin_to(0);
            return mix(rounds.min(50), len, 1);
        }
        Ok("mix2") => return mix(rounds.min(50), len, 2),
        Ok("hit2") => return resident_hits(rounds, len, 2, false),
        Ok("evict2") => return evict_two_threads(rounds, len),
        Ok("load") => {
            pin_to(0);
            return resident_hits(rounds, len, 1, true);
        }
        Ok("load2") => return resident_hits(rounds, len, 2, true),
        _ => {}
    }
    pin_to(0);
    let ks = scrambled_keys(HOT, 1);

    let ours: Cache<u64, Val> = Cache::builder().max_entries(CAP).build().expect("valid cache");
    let mut table: Table<u64, Val> =
        Table::with_limits(Limits::entries(CAP), None, SeededState::new()).expect("valid table");
    let quick = quick_cache::sync::Cache::<u64, Val>::new(CAP);
    let mut quick_unsync = quick_cache::unsync::Cache::<u64, Val>::new(CAP);
    let mut hb: hashbrown::HashMap<u64, Val> = hashbrown::HashMap::with_capacity(CAP);
    for &k in &ks {
        ours.insert(k, keyed_value(len, k));
        table.insert(k, keyed_value(len, k), 0, 0);
        quick.insert(k, keyed_value(len, k));
        quick_unsync.insert(k, keyed_value(len, k));
        hb.insert(k, keyed_value(len, k));
    }
    for &k in &ks {
        assert!(ours.get(&k).is_some() && table.get(&k, 0).is_some() && quick.get(&k).is_some());
        assert!(quick_unsync.get(&k).is_some() && hb.contains_key(&k));
    }

    let names = [
        "Cache::get",
        "quick_cache get",
        "Table::get",
        "qc unsync get",
        "hashbrown get",
        "Cache::get_with (no clone)",
        "Table::get + clone",
        "hashbrown get + clone",
        "quick_cache entry (no clone)",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
    let load_before = load_average();
    let mut start = 0usize;
    let only: Option<usize> = std::env::var("VARIANT").ok().and_then(|s| s.parse().ok());
    for r in 0..rounds {
        start = start.wrapping_add(GETS + 17);
        // Rotate the order each round so that no variant always runs first.
        for v in 0..names.len() {
            let which = (v + r) % names.len();
            if only.is_some_and(|o| o != which) {
                continue;
            }
            let ns = match which {
                0 => round(start, &ks, |k| ours.get(&k).map_or(0, |v| v[0] as u64)),
                1 => round(start, &ks, |k| quick.get(&k).map_or(0, |v| v[0] as u64)),
                2 => round(start, &ks, |k| table.get(&k, 0).map_or(0, |v| v[0] as u64)),
                3 => round(start, &ks, |k| quick_unsync.get(&k).map_or(0, |v| v[0] as u64)),
                4 => round(start, &ks, |k| hb.get(&k).map_or(0, |v| v[0] as u64)),
                5 => round(start, &ks, |k| ours.get_with(&k, |v| v[0] as u64).unwrap_or(0)),
                6 => round(start, &ks, |k| table.get(&k, 0).cloned().map_or(0, |v| v[0] as u64)),
                7 => round(start, &ks, |k| hb.get(&k).cloned().map_or(0, |v| v[0] as u64)),
                // quick_cache's one read that does not clone: `entry`, under
                // the shard's write lock (it counts a hit, as `get` does).
                _ => round(start, &ks, |k| {
                    match quick.entry(&k, None, |_, v| EntryAction::Retain(v[0] as u64)) {
                        EntryResult::Retained(x) => x,
                        _ => 0,
                    }
                }),
            };
            times[which].push(ns);
        }
    }
    let med: Vec<Option<f64>> = times.iter_mut().map(|t| (!t.is_empty()).then(|| median(t))).collect();
    println!(
        "get hit, {len}-byte values, {HOT} keys, {rounds} interleaved rounds of {GETS} gets, medians; load average {:?} -> {:?}; asymmetric fences: {}",
        load_before,
        load_average(),
        resilience::cache::asymmetric_fences()
    );
    println!("| variant | ns/get |");
    println!("|---|---:|");
    for (n, m) in names.iter().zip(&med) {
        if let Some(m) = m {
            println!("| {n} | {m:.2} |");
        }
    }
    if let [Some(ours), Some(qc), Some(table), Some(qcu), Some(hb), Some(with), _, _, Some(entry)] = med[..] {
        println!(
            "Cache vs quick_cache: {:.2}x; Table vs qc unsync: {:.2}x; Table vs hashbrown: {:.2}x slower; \
             without a clone, get_with vs quick_cache entry: {:.2}x",
            qc / ours,
            qcu / table,
            table / hb,
            entry / with
        );
    }
}
