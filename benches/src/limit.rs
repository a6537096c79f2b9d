//! Limit benches: clock sources; one token bucket (one thread, two threads)
//! beside governor's direct limiter; the keyed limiter over 100k keys
//! (uniform and Zipf-ish) beside governor's keyed (DashMap) limiter; the
//! bulkhead beside a `std` Mutex + Condvar semaphore.

use criterion::{BenchmarkId, Criterion, Throughput};
use governor::clock::{Clock as _, DefaultClock as GovClock};
use resilience::clock::{self, SECOND};
use resilience::limit::{AutoClock, Bulkhead, FullPolicy, KeyedLimiter, Quota, TokenBucket};
use resilience_benches::{load_average, pin_to};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

const KEYS: u64 = 100_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// Registers the limit benches.
pub fn register(c: &mut Criterion) {
    eprintln!("limit benches: load average {:?}", load_average());
    clocks(c);
    bucket_one_thread(c);
    bucket_two_threads(c);
    keyed(c);
    bulkhead(c);
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86-64 CPU and has no memory effects.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

fn clocks(c: &mut Criterion) {
    // Sanity: both monotonic readings are on one timeline, the coarse one
    // within its resolution.
    let (coarse, fine) = (clock::coarse_now(), clock::now());
    assert!(fine + 1_000 >= coarse && fine - coarse <= 2 * clock::coarse_resolution() + 1_000_000);
    eprintln!("clock: CLOCK_MONOTONIC_COARSE resolution {} ns", clock::coarse_resolution());
    let mut g = c.benchmark_group("limit/clock");
    g.bench_function("clock_gettime(MONOTONIC)", |b| b.iter(clock::now));
    g.bench_function("clock_gettime(MONOTONIC_COARSE)", |b| b.iter(clock::coarse_now));
    #[cfg(target_arch = "x86_64")]
    g.bench_function("rdtsc", |b| b.iter(rdtsc));
    let gov = GovClock::default();
    g.bench_function("quanta (governor's clock)", |b| b.iter(|| gov.now()));
    g.bench_function("std Instant::now", |b| b.iter(Instant::now));
    g.finish();
}

/// Allows practically everything: 1e9 tokens per second, a 1 s window (so
/// `AutoClock` picks the coarse clock).
fn wide_quota() -> Quota {
    Quota::new(999_999_999, 1_000_000_000, SECOND).expect("valid quota")
}

fn bucket_one_thread(c: &mut Criterion) {
    // Correctness first: the bucket grants exactly its burst at one instant.
    let check = TokenBucket::new(Quota::new(99, 1, SECOND).expect("valid"));
    assert_eq!((0..1000).filter(|_| check.acquire_at(1, 5 * SECOND).allowed).count(), 100);
    let gov_check = governor::RateLimiter::direct(governor::Quota::per_hour(nz(1)).allow_burst(nz(100)));
    assert_eq!((0..1000).filter(|_| gov_check.check().is_ok()).count(), 100);

    let mut g = c.benchmark_group("limit/bucket_1t");
    g.throughput(Throughput::Elements(1));
    let auto = TokenBucket::new(wide_quota());
    assert!(auto.clock().is_coarse());
    g.bench_function("resilience acquire (AutoClock: coarse)", |b| b.iter(|| black_box(auto.acquire(1))));
    // `check` answers yes/no as governor's `check()` does (same grants).
    let checked = TokenBucket::new(wide_quota());
    g.bench_function("resilience check (AutoClock: coarse)", |b| {
        b.iter(|| black_box(checked.check(1).is_ok()))
    });
    let precise = TokenBucket::with_clock(wide_quota(), AutoClock::precise());
    g.bench_function("resilience acquire (precise clock)", |b| b.iter(|| black_box(precise.acquire(1))));
    let at = TokenBucket::new(wide_quota());
    let now = clock::now();
    g.bench_function("resilience acquire_at (no clock read)", |b| {
        b.iter(|| black_box(at.acquire_at(1, black_box(now))))
    });
    let gov =
        governor::RateLimiter::direct(governor::Quota::per_second(nz(u32::MAX)).allow_burst(nz(u32::MAX)));
    g.bench_function("governor check", |b| b.iter(|| black_box(gov.check().is_ok())));
    g.finish();
}

/// Runs `op` on two pinned threads, `iters` times in total, and returns the
/// wall time; `op` returns whether it was granted, and the grant count is
/// added to `granted`.
fn two_threads(iters: u64, granted: &AtomicU64, op: impl Fn() -> bool + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let per = iters.div_ceil(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    pin_to(i);
                    barrier.wait();
                    let start = Instant::now();
                    let mut n = 0u64;
                    for _ in 0..per {
                        n += u64::from(op());
                    }
                    granted.fetch_add(n, Ordering::Relaxed);
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).max().unwrap_or_default()
    })
}

fn bucket_two_threads(c: &mut Criterion) {
    // Grant accounting on a bucket that limits: 1M/s holding 1000, hammered
    // by two threads for a fixed number of calls. Grants may never exceed
    // burst + rate * elapsed.
    let quota = Quota::new(999, 1_000_000, SECOND).expect("valid");
    let bucket = TokenBucket::new(quota);
    let granted = AtomicU64::new(0);
    let calls = if cfg!(debug_assertions) { 20_000 } else { 4_000_000 };
    let start = clock::now();
    let wall = two_threads(calls, &granted, || bucket.acquire(1).allowed);
    let elapsed = clock::now() - start;
    let most = 1000 + elapsed / quota.emission_interval() + 1;
    let got = granted.load(Ordering::Relaxed);
    eprintln!(
        "limit/bucket_2t accounting: {calls} calls in {wall:?} ({:.1} M calls/s), {got} granted, \
         at most {most} allowed by 1000 + 1M/s x {elapsed} ns",
        calls as f64 / wall.as_secs_f64() / 1e6
    );
    assert!(got <= most, "granted {got} > allowed {most}");

    let mut g = c.benchmark_group("limit/bucket_2t");
    g.throughput(Throughput::Elements(1));
    let ours = TokenBucket::new(wide_quota());
    let ours_granted = AtomicU64::new(0);
    g.bench_function("resilience acquire x2 threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &ours_granted, || ours.acquire(1).allowed))
    });
    let gov =
        governor::RateLimiter::direct(governor::Quota::per_second(nz(u32::MAX)).allow_burst(nz(u32::MAX)));
    let gov_granted = AtomicU64::new(0);
    g.bench_function("governor check x2 threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &gov_granted, || gov.check().is_ok()))
    });
    g.finish();
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A key sequence over `KEYS` keys: uniform, or Zipf-ish (rank r drawn with
/// weight 1/r, exponent 1), ranks scattered over the key space.
fn key_sequence(zipf: bool, len: usize) -> Vec<u64> {
    let mut rng = Rng(if zipf { 7 } else { 11 });
    let scatter = |r: u64| r.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (KEYS * 1000);
    if !zipf {
        return (0..len).map(|_| scatter(rng.next() % KEYS)).collect();
    }
    let mut cdf = Vec::with_capacity(KEYS as usize);
    let mut sum = 0.0;
    for r in 1..=KEYS {
        sum += 1.0 / r as f64;
        cdf.push(sum);
    }
    (0..len)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * sum;
            scatter(cdf.partition_point(|&c| c < u) as u64)
        })
        .collect()
}

fn keyed(c: &mut Criterion) {
    let len = if cfg!(debug_assertions) { 1 << 14 } else { 1 << 20 };
    // 1000 per second per key, holding 1000: a 1 s window (coarse clock).
    let quota = Quota::new(999, 1000, SECOND).expect("valid");
    let gov_quota = governor::Quota::per_second(nz(1000)).allow_burst(nz(1000));
    for zipf in [false, true] {
        let keys = key_sequence(zipf, len);
        let name = if zipf { "zipf" } else { "uniform" };
        let ours: KeyedLimiter<u64> = KeyedLimiter::new(quota, 2 * KEYS as usize, FullPolicy::Deny);
        let gov = governor::RateLimiter::keyed(gov_quota);
        // Correctness first: at one instant, each key gets exactly its burst.
        let now = clock::now();
        let mut per_key = std::collections::HashMap::new();
        for k in &keys {
            *per_key.entry(*k).or_insert(0u64) += 1;
        }
        let expect: u64 = per_key.values().map(|&n| n.min(1000)).sum();
        let got = keys.iter().filter(|k| ours.acquire_at(*k, 1, now).allowed).count() as u64;
        assert_eq!(got, expect, "{name}: grants at one instant");
        let fresh: KeyedLimiter<u64> = KeyedLimiter::new(quota, 2 * KEYS as usize, FullPolicy::Deny);
        let got = keys.iter().filter(|k| fresh.check_at(*k, 1, now).is_ok()).count() as u64;
        assert_eq!(got, expect, "{name}: check grants at one instant");
        assert_eq!(ours.len(), per_key.len());
        // Warm both tables with every key.
        for k in 0..KEYS {
            let k = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (KEYS * 1000);
            black_box(ours.acquire(&k, 1));
            let _ = black_box(gov.check_key(&k));
        }
        eprintln!("limit/keyed_100k/{name}: {} distinct keys hit, {} tracked", per_key.len(), ours.len());
        let mut g = c.benchmark_group(format!("limit/keyed_100k/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("resilience acquire", name), &keys, |b, keys| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (keys.len() - 1);
                black_box(ours.acquire(&keys[i], 1))
            })
        });
        g.bench_with_input(BenchmarkId::new("resilience check", name), &keys, |b, keys| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (keys.len() - 1);
                black_box(ours.check(&keys[i], 1).is_ok())
            })
        });
        let mut out = vec![resilience::limit::Decision::EMPTY; 64];
        let refs: Vec<&u64> = keys.iter().collect();
        g.throughput(Throughput::Elements(64));
        g.bench_with_input(BenchmarkId::new("resilience acquire_many x64", name), &refs, |b, refs| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 64) & (refs.len() - 1);
                ours.acquire_many(&refs[i..i + 64], 1, clock::coarse_now(), &mut out)
            })
        });
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("governor check_key", name), &keys, |b, keys| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (keys.len() - 1);
                black_box(gov.check_key(&keys[i]).is_ok())
            })
        });
        g.finish();
    }
}

/// The baseline: a counting semaphore on `std::sync::{Mutex, Condvar}`.
struct StdSemaphore {
    count: Mutex<usize>,
    cond: Condvar,
    max: usize,
}

impl StdSemaphore {
    fn try_acquire(&self) -> bool {
        let mut n = self.count.lock().expect("not poisoned");
        if *n < self.max {
            *n += 1;
            true
        } else {
            false
        }
    }

    fn release(&self) {
        *self.count.lock().expect("not poisoned") -= 1;
        self.cond.notify_one();
    }
}

fn bulkhead(c: &mut Criterion) {
    let ours = Bulkhead::new(64, 64);
    let base = StdSemaphore { count: Mutex::new(0), cond: Condvar::new(), max: 64 };
    // Correctness first: exactly max permits, all returned.
    let held: Vec<_> = (0..100).filter_map(|_| ours.try_acquire()).collect();
    assert_eq!((held.len(), ours.in_flight()), (64, 64));
    drop(held);
    assert_eq!((0..100).filter(|_| base.try_acquire()).count(), 64);
    (0..64).for_each(|_| base.release());
    assert_eq!(ours.in_flight(), 0);

    let mut g = c.benchmark_group("limit/bulkhead");
    g.throughput(Throughput::Elements(1));
    g.bench_function("resilience try_acquire+drop", |b| b.iter(|| drop(black_box(ours.try_acquire()))));
    g.bench_function("std Mutex+Condvar semaphore", |b| {
        b.iter(|| {
            if black_box(base.try_acquire()) {
                base.release();
            }
        })
    });
    let none = AtomicU64::new(0);
    g.bench_function("resilience try_acquire+drop x2 threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &none, || ours.try_acquire().is_some()))
    });
    g.bench_function("std Mutex+Condvar semaphore x2 threads", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &none, || {
                let ok = base.try_acquire();
                if ok {
                    base.release();
                }
                ok
            })
        })
    });
    g.finish();
    // A waiter is woken by a release (the slow path works in this build).
    let b = Arc::new(Bulkhead::new(1, 1));
    let p = b.try_acquire_raw();
    let done = Arc::new(AtomicBool::new(false));
    let (b2, done2) = (Arc::clone(&b), Arc::clone(&done));
    let t = std::thread::spawn(move || {
        let r = b2.acquire_timeout(Duration::from_secs(10)).is_ok();
        done2.store(true, Ordering::Relaxed);
        r
    });
    while b.stats().waiting == 0 {
        std::thread::yield_now();
    }
    assert!(p && b.release());
    assert!(t.join().expect("waiter") && done.load(Ordering::Relaxed));
}
