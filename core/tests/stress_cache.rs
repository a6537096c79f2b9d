//! Concurrency stress of the sharded cache: many threads on one shard, then
//! invariants; one loader per key under a stampede, its error shared, and a
//! panicking loader that does not wedge its waiters.
#![cfg(not(resilience_loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use resilience::cache::Cache;

const THREADS: usize = 8;

fn ops() -> u64 {
    if cfg!(miri) {
        200
    } else {
        40_000
    }
}

/// Values carry their key in the high bits, so a read can check that it got
/// a value written for the key it asked for.
fn val(k: u64, t: usize, i: u64) -> u64 {
    (k << 40) | ((t as u64) << 32) | (i & 0xFFFF_FFFF)
}

#[test]
fn many_threads_on_one_shard_keep_the_invariants() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::builder().max_entries(64).shards(1).build().unwrap());
    let barrier = Arc::new(Barrier::new(THREADS));
    let gets = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, barrier, gets) = (cache.clone(), barrier.clone(), gets.clone());
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
                barrier.wait();
                for i in 0..ops() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = x % 256;
                    match x >> 60 {
                        0..=7 => {
                            gets.fetch_add(1, Ordering::Relaxed);
                            if let Some(v) = cache.get(&k) {
                                assert_eq!(v >> 40, k, "value of another key");
                            }
                        }
                        8..=13 => cache.insert(k, val(k, t, i)),
                        14 => {
                            if let Some(v) = cache.remove(&k) {
                                assert_eq!(v >> 40, k);
                            }
                        }
                        _ => {
                            let r = cache.get_or_insert_with(k, || Ok::<_, ()>(val(k, t, i)));
                            assert_eq!(r.map(|v| v >> 40), Ok(k));
                        }
                    }
                    assert!(cache.len() <= 64);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let s = cache.stats();
    assert!(cache.len() <= 64);
    assert!(s.hits + s.misses >= gets.load(Ordering::Relaxed) as u64, "every get was counted");
    assert!(s.evictions > 0);
    // Whatever is left is readable and consistent.
    let mut resident = 0;
    for k in 0..256 {
        if let Some(v) = cache.get(&k) {
            assert_eq!(v >> 40, k);
            resident += 1;
        }
    }
    assert_eq!(resident, cache.len());
    assert!(s.inserts - s.evictions - s.expirations >= cache.len() as u64);
}

#[test]
fn weight_budget_holds_under_concurrency() {
    let cache: Arc<Cache<u64, Vec<u8>>> = Arc::new(
        Cache::builder()
            .max_weight(4096)
            .weigher(|_, v: &Vec<u8>| v.len() as u64 + 8)
            .shards(2)
            .build()
            .unwrap(),
    );
    let hs: Vec<_> = (0..4)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                for i in 0..ops() / 4 {
                    let k = (i * 7 + t) % 500;
                    cache.insert(k, vec![0u8; (k % 100) as usize]);
                    assert!(cache.weight() <= 4096);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(cache.weight() <= 4096);
}

#[test]
fn one_loader_per_key_and_waiters_share_its_value() {
    for round in 0..5 {
        let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::builder().max_entries(1000).build().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(THREADS));
        let hs: Vec<_> = (0..THREADS)
            .map(|_| {
                let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    cache.get_or_insert_with(round, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok::<_, String>(42 + round)
                    })
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), Ok(42 + round));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no stampede");
        assert_eq!(cache.get(&round), Some(42 + round));
    }
}

#[test]
fn a_loader_error_reaches_every_waiter_and_is_not_cached() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::builder().max_entries(1000).build().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let hs: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_insert_with(7, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    Err::<u64, _>("backend down".to_string())
                })
            })
        })
        .collect();
    let errs: Vec<Arc<String>> = hs.into_iter().map(|h| h.join().unwrap().unwrap_err()).collect();
    // Callers that arrived while the load ran share its error; a caller that
    // arrived after it finished may have loaded (and failed) again.
    let n = calls.load(Ordering::SeqCst);
    assert!((1..THREADS).contains(&n), "{n} loads for {THREADS} callers");
    assert!(errs.iter().all(|e| e.as_str() == "backend down"));
    assert!(errs.iter().filter(|e| Arc::ptr_eq(e, &errs[0])).count() >= 1);
    assert_eq!(cache.get(&7), None, "errors are not cached");
    assert_eq!(cache.get_or_insert_with(7, || Ok::<_, String>(1)), Ok(1));
}

#[test]
fn a_panicking_loader_does_not_wedge_its_waiters() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::builder().max_entries(1000).build().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let hs: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cache.get_or_insert_with(9, || {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        if n == 0 {
                            panic!("first loader dies");
                        }
                        Ok::<_, ()>(99)
                    })
                }))
            })
        })
        .collect();
    let results: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1, "only the loader that panicked unwinds");
    assert!(results.iter().filter_map(|r| r.as_ref().ok()).all(|v| *v == Ok(99)));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one waiter took over");
    assert_eq!(cache.get(&9), Some(99));
}

/// Starts `get_or_insert_with(key)` on a thread whose loader returns
/// `loaded` once `release` is sent; returns after the loader has started.
fn load_in_background(
    cache: &Arc<Cache<u64, u64>>,
    key: u64,
    loaded: u64,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<Result<u64, Arc<()>>>) {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, is_started) = std::sync::mpsc::channel::<()>();
    let cache = cache.clone();
    let h = std::thread::spawn(move || {
        cache.get_or_insert_with(key, || {
            started.send(()).unwrap();
            wait.recv().unwrap();
            Ok::<_, ()>(loaded)
        })
    });
    is_started.recv().unwrap();
    (release, h)
}

#[test]
fn a_write_during_a_load_wins_over_the_loaded_value() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::builder().max_entries(1000).build().unwrap());
    // An insert made while the load runs stays.
    let (release, h) = load_in_background(&cache, 1, 10);
    cache.insert(1, 20);
    release.send(()).unwrap();
    assert_eq!(h.join().unwrap(), Ok(10), "the caller gets what it loaded");
    assert_eq!(cache.get(&1), Some(20), "the newer write is kept");
    // A remove made while the load runs: the key stays absent.
    cache.remove(&1);
    let (release, h) = load_in_background(&cache, 1, 11);
    cache.remove(&1);
    release.send(()).unwrap();
    assert_eq!(h.join().unwrap(), Ok(11));
    assert_eq!(cache.get(&1), None);
    // So does a clear.
    let (release, h) = load_in_background(&cache, 2, 12);
    cache.clear();
    release.send(()).unwrap();
    assert_eq!(h.join().unwrap(), Ok(12));
    assert_eq!(cache.get(&2), None);
    // A write to another key does not supersede the load.
    let (release, h) = load_in_background(&cache, 3, 13);
    cache.insert(4, 40);
    release.send(()).unwrap();
    assert_eq!(h.join().unwrap(), Ok(13));
    assert_eq!(cache.get(&3), Some(13));
}

/// A value whose clone number `PANIC_AT` panics (counted per test).
#[derive(Debug)]
struct Fragile(u64, Arc<AtomicUsize>);

const PANIC_AT: usize = 2;

impl Clone for Fragile {
    fn clone(&self) -> Self {
        if self.1.fetch_add(1, Ordering::SeqCst) + 1 == PANIC_AT {
            panic!("clone {PANIC_AT} fails");
        }
        Fragile(self.0, self.1.clone())
    }
}

#[test]
fn a_panicking_clone_after_the_load_does_not_wedge_its_waiters() {
    let cache: Arc<Cache<u64, Fragile>> = Arc::new(Cache::builder().max_entries(100).build().unwrap());
    let clones = Arc::new(AtomicUsize::new(0));
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, is_started) = std::sync::mpsc::channel::<()>();
    let loader = {
        let (cache, clones) = (cache.clone(), clones.clone());
        std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                cache.get_or_insert_with(5, || {
                    started.send(()).unwrap();
                    wait.recv().unwrap();
                    Ok::<_, ()>(Fragile(55, clones))
                })
            }))
        })
    };
    is_started.recv().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let r = cache.get_or_insert_with(5, || Ok::<_, ()>(Fragile(0, Arc::new(AtomicUsize::new(0)))));
            done.send(r.map(|v| v.0)).unwrap();
        })
    };
    // Give the waiter time to start waiting (a waiter that came late would
    // find the stored value and pass without the wake-up being tested; 200
    // ms makes that unlikely even on a loaded machine), then let the loader
    // finish: its first clone is stored, its second (the waiters' copy)
    // panics.
    std::thread::sleep(Duration::from_millis(200));
    release.send(()).unwrap();
    assert!(loader.join().unwrap().is_err(), "the loader's clone panicked");
    let got = finished.recv_timeout(Duration::from_secs(10)).expect("the waiter was woken");
    assert_eq!(got, Ok(55), "the waiter then reads the stored value");
    waiter.join().unwrap();
}

/// Lock-free reads (the read bias) racing writes that replace, remove and
/// evict: every value a reader gets is whole and belongs to its key (a read
/// of a value being dropped would show freed or mixed words), every read
/// is counted once, and the readers did go lock-free.
#[test]
fn lock_free_reads_never_see_a_torn_or_freed_value() {
    const READERS: usize = 3;
    const KEYS: u64 = 96;
    let cache: Arc<Cache<u64, Box<[u64]>>> =
        Arc::new(Cache::builder().max_entries(64).shards(2).build().unwrap());
    let whole = |k: u64, t: usize, i: u64| -> Box<[u64]> { vec![val(k, t, i); 8].into_boxed_slice() };
    for k in 0..KEYS {
        cache.insert(k, whole(k, 0, 0));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let biased_seen = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|t| {
            let (cache, stop) = (cache.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut k = t as u64;
                while !stop.load(Ordering::Relaxed) {
                    k = (k * 31 + 7) % KEYS;
                    if let Some(v) = cache.get(&k) {
                        assert_eq!(v.len(), 8);
                        assert!(v.iter().all(|&w| w == v[0]), "torn value {v:?}");
                        assert_eq!(v[0] >> 40, k, "value of another key");
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writer = {
        let (cache, biased_seen) = (cache.clone(), biased_seen.clone());
        std::thread::spawn(move || {
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            for i in 0..ops() / 4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = x % KEYS;
                if cache.lock_free_shards() > 0 {
                    biased_seen.fetch_add(1, Ordering::Relaxed);
                }
                match x % 3 {
                    0 => drop(cache.remove(&k)),
                    _ => cache.insert(k, whole(k, 1, i)),
                }
                // Let the readers build a streak so the bias comes back on.
                for _ in 0..(x % 2000) {
                    std::hint::spin_loop();
                }
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    let s = cache.stats();
    assert_eq!(s.hits + s.misses, reads, "every read counted once");
    assert!(biased_seen.load(Ordering::Relaxed) > 0, "the read bias never came on");
    assert!(cache.len() <= 64);
    if std::env::var_os("RESILIENCE_NO_MEMBARRIER").is_some() {
        assert!(!resilience::cache::asymmetric_fences(), "full fences were asked for");
    }
}

/// The same race with a full fence on both sides, as where membarrier is
/// unavailable: the test binary runs that test again in a child process
/// with `RESILIENCE_NO_MEMBARRIER` set (it is read once per process).
#[test]
fn lock_free_reads_with_full_fences_never_see_a_torn_value() {
    if std::env::var_os("RESILIENCE_NO_MEMBARRIER").is_some() {
        return; // the child runs only the test named below anyway
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_free_reads_never_see_a_torn_or_freed_value", "--test-threads", "1"])
        .env("RESILIENCE_NO_MEMBARRIER", "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "the child ran the test: {stdout}");
}
