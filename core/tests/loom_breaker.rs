//! loom models of the breaker's lock-free paths.
//!
//! Run with:
//! `RUSTFLAGS="--cfg resilience_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!  cargo test -p resilience --profile loom --test loom_breaker`
#![cfg(resilience_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use resilience::breaker::{CircuitBreaker, Config, Outcome, Recorded, State};
use resilience::clock::{ManualClock, SECOND};

fn breaker(cfg: Config) -> Arc<CircuitBreaker<ManualClock>> {
    Arc::new(CircuitBreaker::with_clock(cfg, ManualClock::new(SECOND)).unwrap())
}

/// Two calls fail concurrently in a 2-call window with a minimum of 2: both
/// results are counted, and exactly one of them trips the breaker.
#[test]
fn concurrent_failures_trip_exactly_once() {
    loom::model(|| {
        let b = breaker(Config::default().count_window(2).minimum_calls(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || {
                    let p = b.try_acquire_raw_at(SECOND).unwrap();
                    b.record_raw(p, Outcome::Failure, 0, SECOND)
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Recorded::Counted);
        }
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.generation(), 1);
        assert_eq!(b.transitions_to(State::Open), 1);
        let m = b.metrics_at(SECOND);
        assert_eq!((m.calls, m.failed), (2, 2));
    });
}

/// A failure and a success race into a full window of successes (the success
/// may take the healthy-window shortcut): the window ends with exactly one
/// failure, and its aggregate stays equal to its slots (two more successes
/// empty it of failures).
#[test]
fn healthy_shortcut_races_with_a_failure() {
    loom::model(|| {
        let b = breaker(Config::default().count_window(2).minimum_calls(2).failure_rate_threshold(60.0));
        for _ in 0..2 {
            b.try_acquire_raw_at(SECOND).map(|p| b.record_raw(p, Outcome::Success, 0, SECOND)).unwrap();
        }
        let threads: Vec<_> = [Outcome::Failure, Outcome::Success]
            .into_iter()
            .map(|o| {
                let b = b.clone();
                thread::spawn(move || {
                    let p = b.try_acquire_raw_at(SECOND).unwrap();
                    b.record_raw(p, o, 0, SECOND)
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Recorded::Counted);
        }
        let m = b.metrics_at(SECOND);
        assert_eq!((m.state, m.calls, m.failed), (State::Closed, 2, 1));
        for _ in 0..2 {
            b.try_acquire_raw_at(SECOND).map(|p| b.record_raw(p, Outcome::Success, 0, SECOND)).unwrap();
        }
        let m = b.metrics_at(SECOND);
        assert_eq!((m.calls, m.failed), (2, 0));
    });
}

/// A call acquired while closed finishes while another thread trips the
/// breaker and resets it: whatever the interleaving, the new closed window
/// holds none of the old generation's results, and the state is consistent.
#[test]
fn late_result_across_closed_open_closed_is_not_counted() {
    loom::model(|| {
        let b = breaker(Config::default().count_window(2).minimum_calls(1));
        let late = b.try_acquire_raw_at(SECOND).unwrap();
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(late, Outcome::Failure, 0, SECOND))
        };
        let tripper = {
            let b = b.clone();
            thread::spawn(move || {
                // Trips (or finds it tripped by the late failure), then resets.
                if let Ok(p) = b.try_acquire_raw_at(SECOND) {
                    b.record_raw(p, Outcome::Failure, 0, SECOND);
                }
                b.transition_to_at(State::Closed, SECOND)
            })
        };
        let r = recorder.join().unwrap();
        let reset = tripper.join().unwrap();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.generation(), reset.generation);
        let m = b.metrics_at(SECOND);
        assert_eq!(
            (m.calls, m.failed),
            (0, 0),
            "no result of generation 0 in generation {}",
            reset.generation
        );
        if r == Recorded::Counted {
            // Counted means counted by generation 0, which then tripped.
            assert!(b.transitions_to(State::Open) == 1);
        }
    });
}

/// A result recorded concurrently with a manual reset either lands in the old
/// window or is stale; the new window is never polluted (time-based window).
#[test]
fn late_result_in_time_window_is_not_counted() {
    loom::model(|| {
        let b = breaker(Config::default().time_window(2).minimum_calls(10));
        let late = b.try_acquire_raw_at(SECOND).unwrap();
        let recorder = {
            let b = b.clone();
            thread::spawn(move || b.record_raw(late, Outcome::Failure, 0, SECOND))
        };
        let t = b.transition_to_at(State::MetricsOnly, SECOND);
        let r = recorder.join().unwrap();
        assert_eq!(t.generation, 1);
        let m = b.metrics_at(SECOND);
        assert_eq!((m.calls, m.failed), (0, 0), "recorded as {r:?}");
    });
}

/// Half-open with `permitted` probes and three threads that acquire, give the
/// slot back (ignored) or succeed, and acquire again: never more probes of
/// the half-open generation in flight than permitted.
fn probe_budget(permitted: u32, second_outcome: Outcome) {
    loom::model(move || {
        let b = breaker(Config::default().permitted_calls_in_half_open(permitted));
        let half = b.transition_to_at(State::HalfOpen, SECOND).generation;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let (b, in_flight) = (b.clone(), in_flight.clone());
                thread::spawn(move || {
                    let attempts = if i == 0 { 2 } else { 1 };
                    for k in 0..attempts {
                        let Ok(p) = b.try_acquire_raw_at(SECOND) else { continue };
                        if p.generation != half {
                            continue; // the probes passed: a closed-state permit
                        }
                        let before = in_flight.fetch_add(1, Ordering::SeqCst);
                        assert!(before < permitted as usize, "more than {permitted} probes in flight");
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let o = if k == 0 { Outcome::Ignored } else { second_outcome };
                        b.record_raw(p, o, 0, SECOND);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = b.state();
        assert!(s == State::HalfOpen || s == State::Closed, "{s:?}");
    });
}

#[test]
fn half_open_budget_of_one_with_three_threads() {
    probe_budget(1, Outcome::Success);
}

#[test]
fn half_open_budget_of_two_with_three_threads() {
    probe_budget(2, Outcome::Ignored);
}
