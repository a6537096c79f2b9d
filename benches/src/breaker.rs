//! Breaker benches: libresilience's `CircuitBreaker` beside the `failsafe`
//! crate's state machine, in the same groups.
//!
//! - `breaker/closed_pair_1t`: one `try_acquire` + one recorded success on a
//!   closed breaker, one thread. failsafe: `is_call_permitted` + `on_success`,
//!   with its default policy (success rate over a time window, or else
//!   consecutive failures) and with its cheapest (consecutive failures).
//! - `breaker/closed_pair_2t`: the same pair on one shared breaker from two
//!   threads pinned to two cores; time per pair per thread.
//! - `breaker/open_reject`: the cost of being told no by an open breaker.

use criterion::{BenchmarkId, Criterion};
use failsafe::{backoff, failure_policy};
use resilience::breaker::{CircuitBreaker, Config, Recorded, State};
use resilience::clock;
use resilience_benches::{load_average, pin_to};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CALL: u64 = 1_000; // a 1 µs call: never slow

fn ours() -> CircuitBreaker {
    // Resilience4j's defaults: a 100-call count window, 50 %, minimum 100.
    CircuitBreaker::new(Config::default()).expect("default config")
}

type Consecutive = failsafe::StateMachine<failure_policy::ConsecutiveFailures<backoff::Constant>, ()>;

fn failsafe_consecutive() -> Consecutive {
    let policy = failure_policy::consecutive_failures(3, backoff::constant(Duration::from_secs(3600)));
    failsafe::Config::new().failure_policy(policy).build()
}

/// Runs `pair` `iters` times on each of two pinned threads at once; returns
/// the mean wall time per pair per thread.
fn two_threads(iters: u64, pair: &(impl Fn(u64) + Sync)) -> Duration {
    let barrier = std::sync::Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    pin_to(i);
                    barrier.wait();
                    let start = Instant::now();
                    for k in 0..iters {
                        pair(k);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    times.into_iter().max().unwrap_or_default()
}

/// Registers the breaker benches.
pub fn register(c: &mut Criterion) {
    eprintln!("breaker benches: load average {:?}", load_average());

    // Check the subjects before timing them.
    let b = ours();
    for _ in 0..1000 {
        assert_eq!(b.try_acquire().expect("closed").success(CALL), Recorded::Counted);
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().calls, 100);
    let fd = failsafe::Config::new().build();
    let fc = failsafe_consecutive();
    assert!(fd.is_call_permitted() && fc.is_call_permitted());

    {
        let mut g = c.benchmark_group("breaker/closed_pair_1t");
        g.bench_function("resilience", |bench| {
            let b = ours();
            bench.iter(|| black_box(b.try_acquire().expect("closed").success(black_box(CALL))))
        });
        g.bench_function("resilience_raw", |bench| {
            let b = ours();
            let now = clock::now();
            bench.iter(|| {
                let p = b.try_acquire_raw().expect("closed");
                black_box(b.record_raw(p, resilience::breaker::Outcome::Success, black_box(CALL), now))
            })
        });
        g.bench_function("failsafe_default", |bench| {
            let f = failsafe::Config::new().build();
            bench.iter(|| {
                assert!(f.is_call_permitted());
                f.on_success();
            })
        });
        // One call in 64 fails: the window is never all-success, so every
        // record goes through the ring (cursor, slot, aggregate).
        g.bench_function("resilience_1_in_64_failed", |bench| {
            let b = ours();
            let mut k = 0u64;
            bench.iter(|| {
                k += 1;
                let p = b.try_acquire().expect("closed");
                black_box(if k.is_multiple_of(64) { p.failure(CALL) } else { p.success(CALL) })
            });
            assert_eq!(b.state(), State::Closed);
        });
        g.bench_function("failsafe_default_1_in_64_failed", |bench| {
            let f = failsafe::Config::new().build();
            let mut k = 0u64;
            bench.iter(|| {
                k += 1;
                assert!(f.is_call_permitted());
                if k.is_multiple_of(64) {
                    f.on_error()
                } else {
                    f.on_success()
                }
            })
        });
        g.bench_function("failsafe_consecutive", |bench| {
            let f = failsafe_consecutive();
            bench.iter(|| {
                assert!(f.is_call_permitted());
                f.on_success();
            })
        });
        g.finish();
    }

    {
        let mut g = c.benchmark_group("breaker/closed_pair_2t");
        let b = ours();
        g.bench_function(BenchmarkId::new("resilience", "shared"), |bench| {
            bench.iter_custom(|iters| {
                two_threads(iters, &|_| {
                    black_box(b.try_acquire().expect("closed").success(black_box(CALL)));
                })
            })
        });
        let mixed = ours();
        g.bench_function(BenchmarkId::new("resilience_1_in_64_failed", "shared"), |bench| {
            bench.iter_custom(|iters| {
                two_threads(iters, &|k| {
                    let p = mixed.try_acquire().expect("closed");
                    black_box(if k.is_multiple_of(64) { p.failure(CALL) } else { p.success(CALL) });
                })
            })
        });
        assert_eq!(mixed.state(), State::Closed);
        let f = failsafe::Config::new().build();
        g.bench_function(BenchmarkId::new("failsafe_default", "shared"), |bench| {
            bench.iter_custom(|iters| {
                two_threads(iters, &|_| {
                    assert!(f.is_call_permitted());
                    f.on_success();
                })
            })
        });
        let f = failsafe_consecutive();
        g.bench_function(BenchmarkId::new("failsafe_consecutive", "shared"), |bench| {
            bench.iter_custom(|iters| {
                two_threads(iters, &|_| {
                    assert!(f.is_call_permitted());
                    f.on_success();
                })
            })
        });
        g.finish();
        assert_eq!(b.state(), State::Closed);
    }

    {
        let mut g = c.benchmark_group("breaker/open_reject");
        let b = ours();
        b.transition_to_open();
        assert_eq!(b.try_acquire().expect_err("open").state, State::Open);
        g.bench_function("resilience", |bench| bench.iter(|| black_box(b.try_acquire().is_err())));
        let now = clock::now();
        g.bench_function("resilience_at_now", |bench| {
            bench.iter(|| black_box(b.try_acquire_raw_at(black_box(now)).is_err()))
        });
        let f = failsafe_consecutive();
        for _ in 0..3 {
            assert!(f.is_call_permitted());
            f.on_error();
        }
        assert!(!f.is_call_permitted());
        g.bench_function("failsafe", |bench| bench.iter(|| black_box(!f.is_call_permitted())));
        g.finish();
    }
}
