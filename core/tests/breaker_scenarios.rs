//! Scenarios written from the reference libraries' documented behaviour
//! (Resilience4j's CircuitBreaker docs and source; gobreaker and Polly for the
//! half-open probe rules), driven by a manual clock.
#![cfg(not(resilience_loom))]

use resilience::breaker::{
    CallError, Cause, CircuitBreaker, Config, Outcome, Recorded, Registry, RegistryError, State, Transition,
};
use resilience::clock::{Clock, ManualClock, MILLISECOND, SECOND};
use std::sync::{Arc, Mutex};

fn breaker(cfg: Config) -> (CircuitBreaker<Arc<ManualClock>>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(100 * SECOND));
    (CircuitBreaker::with_clock(cfg, clock.clone()).expect("valid config"), clock)
}

/// Records `outcomes` ("s" success, "f" failure, "i" ignored) as fast calls.
fn calls<C: resilience::clock::Clock>(b: &CircuitBreaker<C>, outcomes: &str) {
    for ch in outcomes.chars() {
        let p = b.try_acquire().expect("permitted");
        match ch {
            's' => assert_eq!(p.success(MILLISECOND), Recorded::Counted),
            'f' => assert_eq!(p.failure(MILLISECOND), Recorded::Counted),
            _ => assert_eq!(p.ignore(), Recorded::Ignored),
        };
    }
}

/// Resilience4j's documented example: count window of 10, threshold 50 %,
/// minimum 5 calls.
fn r4j() -> Config {
    Config::default().count_window(10).failure_rate_threshold(50.0).minimum_calls(5).wait_in_open(10 * SECOND)
}

#[test]
fn below_minimum_calls_never_opens() {
    let (b, _) = breaker(r4j());
    calls(&b, "ffff");
    assert_eq!(b.state(), State::Closed, "4 failures < minimum 5");
    assert_eq!(b.metrics().failure_rate, None, "no rate below the minimum");
    calls(&b, "s");
    assert_eq!(b.state(), State::Open, "4/5 = 80% >= 50%");
}

#[test]
fn threshold_is_inclusive() {
    let (b, _) = breaker(r4j());
    calls(&b, "ssffs");
    assert_eq!(b.state(), State::Closed, "2/5 = 40%");
    assert_eq!(b.metrics().failure_rate, Some(40.0));
    calls(&b, "f");
    assert_eq!(b.state(), State::Open, "3/6 = 50% >= 50% opens");
}

#[test]
fn ignored_calls_do_not_count() {
    let (b, _) = breaker(r4j());
    calls(&b, "ffiiiiiiis");
    let m = b.metrics();
    assert_eq!((m.calls, m.failed), (3, 2));
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn window_slides_over_the_last_n_calls() {
    let (b, _) = breaker(r4j().failure_rate_threshold(60.0));
    calls(&b, "sssssffffs"); // 4/10 = 40%
    assert_eq!(b.metrics().failure_rate, Some(40.0));
    calls(&b, "sssssssss"); // nine more: the four failures leave the window
    let m = b.metrics();
    assert_eq!((m.calls, m.failed), (10, 0));
    calls(&b, "fffff"); // 5/10
    assert_eq!(b.state(), State::Closed);
    calls(&b, "f"); // 6/10 = 60%
    assert_eq!(b.state(), State::Open);
}

#[test]
fn minimum_larger_than_the_window_is_capped_for_count_windows() {
    // Resilience4j: minimum = min(minimumNumberOfCalls, slidingWindowSize).
    let (b, _) = breaker(Config::default().count_window(4).minimum_calls(100));
    calls(&b, "ssff");
    assert_eq!(b.state(), State::Open);
}

#[test]
fn slow_calls_open_the_breaker() {
    let cfg = r4j().slow_call_duration_threshold(100 * MILLISECOND).slow_call_rate_threshold(60.0);
    let (b, _) = breaker(cfg);
    let seen = Arc::new(Mutex::new(Vec::<Transition>::new()));
    let sink = seen.clone();
    b.on_state_change(move |t| sink.lock().unwrap().push(*t));
    // Exactly the threshold is not slow (strictly longer is).
    b.try_acquire().unwrap().success(100 * MILLISECOND);
    b.try_acquire().unwrap().success(101 * MILLISECOND);
    b.try_acquire().unwrap().success(5 * SECOND);
    b.try_acquire().unwrap().success(MILLISECOND);
    assert_eq!(b.metrics().slow, 2);
    b.try_acquire().unwrap().failure(200 * MILLISECOND); // slow and failed: 3/5 slow
    assert_eq!(b.state(), State::Open);
    let t = seen.lock().unwrap()[0];
    assert_eq!((t.from, t.to, t.cause), (State::Closed, State::Open, Cause::SlowCallRate));
    let m = b.metrics();
    assert_eq!((m.calls, m.failed, m.slow), (5, 1, 3));
    assert_eq!(m.slow_call_rate, Some(60.0));
}

#[test]
fn open_rejects_with_time_left_then_half_opens_lazily() {
    let (b, clock) = breaker(r4j());
    calls(&b, "fffff");
    let r = b.try_acquire().unwrap_err();
    assert_eq!((r.state, r.retry_after), (State::Open, 10 * SECOND));
    clock.advance(4 * SECOND);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, 6 * SECOND);
    assert_eq!(b.metrics().not_permitted, 2);
    clock.advance(6 * SECOND);
    assert_eq!(b.state(), State::Open, "no timer: still open until someone asks");
    let p = b.try_acquire().expect("the first call after the wait is a probe");
    assert_eq!(b.state(), State::HalfOpen);
    p.success(MILLISECOND);
}

/// Half-open with 3 permitted calls: the state is decided only when all three
/// have a result; the failure rate over the probes is compared with the same
/// threshold. One failure in three is 33 % < 50 %: Resilience4j closes (it
/// only re-opens if the rate reaches the threshold), unlike gobreaker, whose
/// half-open state re-opens on any failure.
#[test]
fn half_open_with_three_probes_and_one_failure_closes() {
    let (b, clock) = breaker(r4j().permitted_calls_in_half_open(3));
    calls(&b, "fffff");
    clock.advance(10 * SECOND);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let p3 = b.try_acquire().unwrap();
    let r = b.try_acquire().unwrap_err();
    assert_eq!((r.state, r.retry_after), (State::HalfOpen, 0), "only 3 probes; no max wait");
    assert_eq!(p1.failure(MILLISECOND), Recorded::Counted);
    assert_eq!(b.state(), State::HalfOpen, "1/1 failed, but not all probes are back");
    assert_eq!(p2.success(MILLISECOND), Recorded::Counted);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(p3.success(MILLISECOND), Recorded::Counted);
    assert_eq!(b.state(), State::Closed, "1/3 = 33% < 50%");
    assert_eq!(b.metrics().calls, 0, "closed starts with an empty window");
}

#[test]
fn half_open_with_three_probes_and_two_failures_reopens() {
    let (b, clock) = breaker(r4j().permitted_calls_in_half_open(3));
    calls(&b, "fffff");
    clock.advance(10 * SECOND);
    let ps: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    let mut it = ps.into_iter();
    it.next().unwrap().failure(0);
    it.next().unwrap().success(0);
    assert_eq!(b.metrics().failure_rate, None, "below the probe count there is no rate");
    it.next().unwrap().failure(0);
    assert_eq!(b.state(), State::Open, "2/3 = 67% >= 50%");
    assert_eq!(b.try_acquire().unwrap_err().retry_after, 10 * SECOND, "a fresh wait");
}

#[test]
fn ignored_probe_gives_its_slot_back() {
    let (b, clock) = breaker(r4j().permitted_calls_in_half_open(1));
    calls(&b, "fffff");
    clock.advance(10 * SECOND);
    let p = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    assert_eq!(p.ignore(), Recorded::Ignored);
    let p = b.try_acquire().expect("the slot was given back");
    drop(p); // default drop policy: ignored, slot given back again
    b.try_acquire().unwrap().success(0);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn forced_open_rejects_until_a_manual_transition() {
    let (b, clock) = breaker(r4j());
    let p = b.try_acquire().unwrap();
    let t = b.force_open();
    assert_eq!((t.from, t.to, t.cause, t.generation), (State::Closed, State::ForcedOpen, Cause::Manual, 1));
    assert_eq!(p.failure(0), Recorded::Stale);
    clock.advance(3600 * SECOND);
    let r = b.try_acquire().unwrap_err();
    assert_eq!((r.state, r.retry_after), (State::ForcedOpen, u64::MAX));
    assert_eq!(b.poll(), None);
    assert_eq!(b.state(), State::ForcedOpen);
    b.reset();
    assert_eq!(b.state(), State::Closed);
    assert!(b.try_acquire().is_ok());
}

#[test]
fn disabled_lets_everything_through_and_records_nothing() {
    let (b, _) = breaker(r4j());
    b.disable();
    for _ in 0..100 {
        assert_eq!(b.try_acquire().unwrap().failure(0), Recorded::Ignored);
    }
    let m = b.metrics();
    assert_eq!((m.state, m.calls, m.failed), (State::Disabled, 0, 0));
}

#[test]
fn metrics_only_records_but_never_opens() {
    let (b, _) = breaker(r4j());
    b.metrics_only();
    calls(&b, "ffffffffff");
    let m = b.metrics();
    assert_eq!((m.state, m.calls, m.failed, m.failure_rate), (State::MetricsOnly, 10, 10, Some(100.0)));
    b.transition_to_closed();
    assert_eq!(b.metrics().calls, 0);
}

/// The complaint this fixes: in Resilience4j a call that started while closed
/// and finishes after the breaker opened (or even re-closed) is still recorded
/// into whatever state is current.
#[test]
fn late_results_from_a_previous_generation_are_not_counted() {
    let (b, clock) = breaker(r4j().permitted_calls_in_half_open(1));
    let slow_calls: Vec<_> = (0..5).map(|_| b.try_acquire().unwrap()).collect();
    calls(&b, "fffff");
    assert_eq!(b.state(), State::Open);
    clock.advance(10 * SECOND);
    b.try_acquire().unwrap().success(0);
    assert_eq!(b.state(), State::Closed, "one good probe closes");
    assert_eq!(b.generation(), 3);
    // The five calls from generation 0 now fail: none of it counts.
    for p in slow_calls {
        assert_eq!(p.generation(), 0);
        assert_eq!(p.failure(30 * SECOND), Recorded::Stale);
    }
    let m = b.metrics();
    assert_eq!((m.state, m.calls, m.failed), (State::Closed, 0, 0));
    // A raw permit behaves the same.
    let raw = b.try_acquire_raw().unwrap();
    b.transition_to_closed();
    assert_eq!(b.record_raw(raw, Outcome::Failure, 0, clock.now()), Recorded::Stale);
    assert_eq!(b.metrics().calls, 0);
}

#[test]
fn half_open_probes_that_never_return_time_out() {
    let cfg = r4j().permitted_calls_in_half_open(2).max_wait_in_half_open(5 * SECOND);
    let (b, clock) = breaker(cfg);
    calls(&b, "fffff");
    clock.advance(10 * SECOND);
    let stuck = b.try_acquire_raw().unwrap();
    let _stuck2 = b.try_acquire_raw().unwrap();
    let r = b.try_acquire().unwrap_err();
    assert_eq!((r.state, r.retry_after), (State::HalfOpen, 5 * SECOND));
    clock.advance(5 * SECOND);
    assert_eq!(b.poll(), None, "re-opened; no automatic transition, so nothing more to poll for");
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.record_raw(stuck, Outcome::Success, 0, clock.now()), Recorded::Stale);
    // Lazily too: a second round with no poll.
    clock.advance(10 * SECOND);
    let late = b.try_acquire_raw().unwrap();
    clock.advance(5 * SECOND);
    assert_eq!(b.try_acquire().unwrap_err().state, State::Open);
    assert_eq!(b.record_raw(late, Outcome::Success, 0, clock.now()), Recorded::Stale);
}

#[test]
fn time_based_window_rolls_over() {
    let cfg = Config::default().time_window(3).minimum_calls(4).failure_rate_threshold(50.0);
    let (b, clock) = breaker(cfg);
    calls(&b, "fff"); // second 100
    clock.advance(SECOND);
    calls(&b, "s"); // second 101
    assert_eq!(b.state(), State::Open, "3/4 within 3 s");
    b.reset();
    calls(&b, "fff"); // second 101 (fresh window)
    clock.advance(3 * SECOND); // second 104: second 101 has left the window
    assert_eq!(b.metrics().calls, 0);
    calls(&b, "sss");
    calls(&b, "f");
    assert_eq!(b.state(), State::Closed, "1/4 in the window; the 3 old failures expired");
    clock.advance(SECOND); // second 105: window is seconds 103..=105
    calls(&b, "f");
    assert_eq!(b.state(), State::Closed, "2/5 = 40%");
    calls(&b, "f");
    assert_eq!(b.state(), State::Open, "3/6 = 50%");
    assert_eq!(b.metrics().calls, 6);
}

#[test]
fn automatic_transition_is_driven_by_poll() {
    let (b, clock) = breaker(r4j().automatic_transition(true));
    assert_eq!(b.poll(), None);
    calls(&b, "fffff");
    let due = clock.now() + 10 * SECOND;
    assert_eq!(b.poll(), Some(due));
    clock.set(due);
    assert_eq!(b.poll(), None, "half-open without a max wait has no deadline");
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.transitions_to(State::HalfOpen), 1);

    // Without automatic transition, poll leaves open alone.
    let (b, clock) = breaker(r4j());
    calls(&b, "fffff");
    clock.advance(60 * SECOND);
    assert_eq!(b.poll(), None);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn call_measures_duration_and_classifies() {
    let cfg = r4j()
        .count_window(2)
        .minimum_calls(2)
        .slow_call_duration_threshold(SECOND)
        .slow_call_rate_threshold(50.0);
    let (b, clock) = breaker(cfg);
    assert_eq!(b.call(|| Ok::<_, ()>(7)), Ok(7));
    let r = b.call(|| {
        clock.advance(2 * SECOND);
        Ok::<_, ()>(())
    });
    assert_eq!(r, Ok(()));
    assert_eq!(b.state(), State::Open, "1 of 2 calls slow");
    match b.call(|| Ok::<_, ()>(())) {
        Err(CallError::Rejected(r)) => assert_eq!(r.state, State::Open),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn metrics_snapshot_reports_time_in_state_and_generation() {
    let (b, clock) = breaker(r4j());
    clock.advance(3 * SECOND);
    let m = b.metrics();
    assert_eq!((m.state, m.generation, m.time_in_state), (State::Closed, 0, 3 * SECOND));
    calls(&b, "fffff");
    clock.advance(SECOND);
    let m = b.metrics();
    assert_eq!((m.state, m.generation, m.time_in_state), (State::Open, 1, SECOND));
    assert_eq!(
        (m.calls, m.failed, m.failure_rate),
        (5, 5, Some(100.0)),
        "open shows the window that tripped it"
    );
}

#[test]
fn registry_is_bounded() {
    let r = Registry::with_clock(64, Arc::new(ManualClock::default()));
    let cfg = Config::default().count_window(4).minimum_calls(1);
    let mut held = Vec::new();
    for i in 0..64u32 {
        let b = r.get_or_create(&i.to_le_bytes(), &cfg).unwrap();
        if i % 2 == 0 {
            b.try_acquire().unwrap().failure(0); // opens: never evicted
        }
        held.push(b);
    }
    assert_eq!(r.get_or_create(b"one more", &cfg).unwrap_err(), RegistryError::Full);
    held.clear();
    for i in 0..32u32 {
        r.get_or_create(format!("new {i}").as_bytes(), &cfg).unwrap();
    }
    assert_eq!(r.len(), 64);
    for i in (0..64u32).step_by(2) {
        assert_eq!(r.get(&i.to_le_bytes()).unwrap().state(), State::Open, "open breakers are kept");
    }
    // The new breakers are not held: one of them makes room.
    assert!(r.get_or_create(b"and another", &cfg).is_ok());
    assert_eq!(r.len(), 64);
}

#[test]
fn many_threads_on_one_closed_breaker_keep_exact_counts() {
    let b = Arc::new(CircuitBreaker::new(Config::default().count_window(1000).minimum_calls(1000)).unwrap());
    let per_thread = if cfg!(miri) { 50 } else { 20_000 };
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let p = b.try_acquire().unwrap();
                    // One failure in 100 calls: far below the threshold.
                    if (i + t) % 100 == 0 {
                        p.failure(0);
                    } else {
                        p.success(0);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let m = b.metrics();
    assert_eq!(m.state, State::Closed);
    assert_eq!(m.calls, 1000, "the window is full");
    assert!(m.failed <= 40, "about 10 failures expected in the last 1000, got {}", m.failed);
}

#[test]
fn concurrent_probes_never_exceed_the_budget() {
    for _ in 0..if cfg!(miri) { 2 } else { 200 } {
        let clock = Arc::new(ManualClock::new(SECOND));
        let b = Arc::new(CircuitBreaker::with_clock(r4j().permitted_calls_in_half_open(3), clock).unwrap());
        b.transition_to_half_open();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..4).filter_map(|_| b.try_acquire_raw().ok()).count())
            })
            .collect();
        let granted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(granted, 3);
    }
}

/// At the last instant (`now == u64::MAX`) the open wait and the half-open
/// "no deadline" saturate to the same value; the breaker must still answer
/// at once with one Open -> HalfOpen move, not bounce between them.
#[test]
fn the_last_instant_answers_without_bouncing() {
    for max_wait in [0, SECOND] {
        let (b, _) = breaker(r4j().max_wait_in_half_open(max_wait));
        b.transition_to_open();
        let opened = b.transitions_to(State::Open);
        let p = b.try_acquire_at(u64::MAX).expect("a half-open probe");
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!((b.transitions_to(State::HalfOpen), b.transitions_to(State::Open)), (1, opened));
        assert_eq!(p.success_at(MILLISECOND, u64::MAX), Recorded::Counted);
        assert_eq!(b.state(), State::HalfOpen, "max wait {max_wait}: the probe's result counts");
    }
}

/// A time window never goes back: results at an instant before the newest
/// second seen (a clock set back, an old `now` from a host) count as of that
/// second instead of vanishing while reported as counted.
#[test]
fn a_time_window_counts_results_from_a_clock_set_back() {
    let (b, clock) = breaker(Config::default().time_window(2).minimum_calls(4).failure_rate_threshold(50.0));
    calls(&b, "f");
    clock.advance(3 * SECOND);
    calls(&b, "f");
    clock.set(50 * SECOND);
    assert_eq!(b.metrics().calls, 1, "the newest second still counts");
    calls(&b, "ff");
    assert_eq!((b.metrics().calls, b.state()), (3, State::Closed));
    calls(&b, "f");
    assert_eq!(b.state(), State::Open, "four failures in the newest second trip it");

    // One late result, older than the bucket it falls in, is counted too.
    let (b, clock) = breaker(Config::default().time_window(2).minimum_calls(100));
    let late = b.try_acquire_raw().unwrap();
    clock.advance(10 * SECOND);
    calls(&b, "s");
    assert_eq!(b.record_raw(late, Outcome::Failure, 1, 107 * SECOND), Recorded::Counted);
    let m = b.metrics();
    assert_eq!((m.calls, m.failed), (2, 1));
}

/// Re-opened from half-open, the metrics are the probes' (Resilience4j
/// carries the half-open metrics into the new open state), not the closed
/// window that tripped it the first time.
#[test]
fn open_from_half_open_reports_the_probes() {
    let cfg = Config::default()
        .count_window(2)
        .minimum_calls(2)
        .failure_rate_threshold(50.0)
        .permitted_calls_in_half_open(2)
        .wait_in_open(SECOND);
    let (b, clock) = breaker(cfg);
    calls(&b, "ff");
    assert_eq!(b.state(), State::Open);
    let m = b.metrics();
    assert_eq!((m.calls, m.failed), (2, 2), "opened from closed: the window");
    clock.advance(2 * SECOND);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    p1.failure(MILLISECOND);
    p2.success(MILLISECOND);
    assert_eq!(b.state(), State::Open, "50 % of the probes failed");
    let m = b.metrics();
    assert_eq!((m.calls, m.failed, m.failure_rate), (2, 1, Some(50.0)));
}

/// One result stamped far in the future (a bogus `now`) does not pin a time
/// window: a result more than the restart gap (a minute, or the window)
/// before it starts a new timeline, and the window works again.
#[test]
fn a_bogus_future_stamp_does_not_pin_the_time_window() {
    let (b, clock) = breaker(Config::default().time_window(2).minimum_calls(4).failure_rate_threshold(50.0));
    let p = b.try_acquire_raw().unwrap();
    assert_eq!(b.record_raw(p, Outcome::Success, 1, 1_000_000 * SECOND), Recorded::Counted);
    calls(&b, "fff");
    assert_eq!(b.metrics().calls, 3, "a new timeline from the real time on");
    clock.advance(10 * SECOND);
    calls(&b, "s");
    assert_eq!(b.metrics().calls, 1, "and its seconds expire again");
    calls(&b, "fff");
    assert_eq!(b.state(), State::Open);
}
