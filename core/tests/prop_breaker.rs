//! Property test: the breaker against the sequential reference model
//! (`resilience::breaker::model::Model`) under a manual clock. Random
//! configurations and random sequences of acquires, results (through raw
//! permits, `Permit` methods with and without `now`, and dropped permits),
//! time steps, polls and manual transitions; after every step the decisions,
//! the state, the generation, the transition counters and the full metrics
//! snapshot must be identical.
#![cfg(not(resilience_loom))]

mod common;

use common::{check, Rng};
use resilience::breaker::model::Model;
use resilience::breaker::{
    Cause, CircuitBreaker, Config, DropPolicy, Outcome, Permit, RawPermit, Recorded, State, Transition,
};
use resilience::clock::{ManualClock, Nanos, MILLISECOND, SECOND};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// A random valid configuration with small numbers, so that every transition
/// happens often.
pub fn random_config(rng: &mut Rng) -> Config {
    let thresholds = [10.0f32, 25.0, 33.333332, 50.0, 66.66667, 100.0];
    let threshold = |rng: &mut Rng| {
        if rng.chance(0.2) {
            (rng.range(1, 1000) as f32) / 10.0
        } else {
            thresholds[rng.below(thresholds.len() as u64) as usize]
        }
    };
    let mut c = Config::default()
        .failure_rate_threshold(threshold(rng))
        .slow_call_rate_threshold(threshold(rng))
        .slow_call_duration_threshold(rng.range(1, 50) * MILLISECOND)
        .permitted_calls_in_half_open(rng.range(1, 5) as u32)
        .max_wait_in_half_open(if rng.chance(0.5) { 0 } else { rng.range(1, 3000) * MILLISECOND })
        .minimum_calls(rng.range(1, 12) as u32)
        .wait_in_open(rng.range(1, 3000) * MILLISECOND)
        .automatic_transition(rng.chance(0.5))
        .drop_policy(if rng.chance(0.5) { DropPolicy::Ignore } else { DropPolicy::Failure });
    c = if rng.chance(0.5) {
        c.count_window(rng.range(1, 12) as u32)
    } else {
        c.time_window(rng.range(1, 5) as u32)
    };
    assert_eq!(c.validate(), Ok(()));
    c
}

enum Held<'a> {
    Raw(RawPermit),
    Obj(Permit<'a, Arc<ManualClock>>),
}

fn outcome(rng: &mut Rng) -> Outcome {
    match rng.below(10) {
        0..=4 => Outcome::Success,
        5..=8 => Outcome::Failure,
        _ => Outcome::Ignored,
    }
}

/// What a case exercised: (to, cause) of every transition, and whether some
/// result came back stale.
type Coverage = (HashSet<(State, Cause)>, bool);

fn run_case(rng: &mut Rng, steps: usize, cov: &mut Coverage) {
    let cfg = random_config(rng);
    let start = SECOND * rng.range(1, 1000);
    let clock = Arc::new(ManualClock::new(start));
    let b = CircuitBreaker::with_clock(cfg, clock.clone()).expect("valid");
    let seen: Arc<Mutex<Vec<Transition>>> = Arc::default();
    let sink = seen.clone();
    b.on_state_change(move |t| sink.lock().unwrap().push(*t));
    let mut m = Model::new(cfg, start);
    let mut held: Vec<(Held<'_>, u64)> = Vec::new();
    let mut now: Nanos = start;
    for step in 0..steps {
        let ctx = || format!("step {step}, cfg {cfg:?}");
        match rng.below(100) {
            // Acquire, through one of the three entry points.
            0..=34 => {
                let want = m.try_acquire(now);
                let got = match rng.below(3) {
                    0 => b.try_acquire_raw_at(now).map(|p| (p.generation, Held::Raw(p))),
                    1 => b.try_acquire().map(|p| (p.generation(), Held::Obj(p))),
                    _ => b.try_acquire_at(now).map(|p| (p.generation(), Held::Obj(p))),
                };
                match (want, got) {
                    (Ok(g), Ok((gg, h))) => {
                        assert_eq!(g, gg, "{}", ctx());
                        held.push((h, g));
                    }
                    (Err(w), Err(r)) => assert_eq!(w, r, "{}", ctx()),
                    (w, g) => panic!("acquire: model {w:?}, breaker {:?}; {}", g.map(|x| x.0), ctx()),
                }
            }
            // Give a result for a held permit.
            35..=69 if !held.is_empty() => {
                let i = rng.below(held.len() as u64) as usize;
                let (h, gen) = held.swap_remove(i);
                let o = outcome(rng);
                let d = rng.below(cfg.slow_call_duration_threshold * 2);
                let (want, got) = match h {
                    Held::Raw(p) => (m.record(gen, o, d, now), b.record_raw(p, o, d, now)),
                    Held::Obj(p) => match rng.below(6) {
                        0 => {
                            let o = match cfg.drop_policy {
                                DropPolicy::Ignore => Outcome::Ignored,
                                DropPolicy::Failure => Outcome::Failure,
                            };
                            let want = m.record(gen, o, 0, now);
                            drop(p);
                            (want, want) // a drop has no return value; state is compared below
                        }
                        1 => (m.record(gen, o, d, now), p.record(o, d)),
                        2 => (m.record(gen, o, d, now), p.record_at(o, d, now)),
                        3 => (m.record(gen, Outcome::Success, d, now), p.success(d)),
                        4 => (m.record(gen, Outcome::Failure, d, now), p.failure_at(d, now)),
                        _ => (m.record(gen, Outcome::Ignored, 0, now), p.ignore()),
                    },
                };
                assert_eq!(want, got, "{}", ctx());
                if want == Recorded::Stale {
                    cov.1 = true;
                    assert_ne!(gen, b.generation(), "a current permit is never stale; {}", ctx());
                }
            }
            // Let time pass: nothing, a little, around a second, or a lot.
            70..=89 => {
                now += match rng.below(4) {
                    0 => 0,
                    1 => rng.below(20) * MILLISECOND,
                    2 => rng.range(900, 1100) * MILLISECOND,
                    _ => rng.range(1, 4) * SECOND,
                };
                clock.set(now);
            }
            90..=95 => assert_eq!(m.poll(now), b.poll_at(now), "{}", ctx()),
            _ => {
                // A manual transition, rarely.
                if rng.chance(0.3) {
                    let to = State::ALL[rng.below(6) as usize];
                    m.transition_to(to, now);
                    let t = b.transition_to_at(to, now);
                    assert_eq!(t.to, to);
                }
            }
        }
        assert_eq!(m.metrics(now), b.metrics_at(now), "{}", ctx());
        for s in State::ALL {
            assert_eq!(m.transitions_to(s), b.transitions_to(s), "{}", ctx());
        }
    }
    // Dropping the permits still held may transition too (drop policy).
    for (h, gen) in held.drain(..) {
        if let Held::Obj(p) = h {
            let o = match cfg.drop_policy {
                DropPolicy::Ignore => Outcome::Ignored,
                DropPolicy::Failure => Outcome::Failure,
            };
            m.record(gen, o, 0, now);
            drop(p);
        }
    }
    assert_eq!(m.metrics(now), b.metrics_at(now));
    // Every transition was reported once, in order (one thread here).
    let seen = seen.lock().unwrap();
    let reported: Vec<_> = seen.iter().map(|t| (t.from, t.to, t.generation, t.cause)).collect();
    assert_eq!(reported, m.transitions);
    cov.0.extend(m.transitions.iter().map(|t| (t.1, t.3)));
}

#[test]
fn breaker_matches_reference_model() {
    let mut cov = Coverage::default();
    check(400, |rng| run_case(rng, 400, &mut cov));
    // The generator reaches every automatic transition and stale results.
    for want in [
        (State::Open, Cause::FailureRate),
        (State::Open, Cause::SlowCallRate),
        (State::HalfOpen, Cause::WaitElapsed),
        (State::Closed, Cause::ProbesPassed),
        (State::Open, Cause::HalfOpenTimeout),
        (State::ForcedOpen, Cause::Manual),
    ] {
        assert!(cov.0.contains(&want), "never saw {want:?}");
    }
    assert!(cov.1, "never saw a stale result");
}

#[test]
fn long_runs_match_reference_model() {
    check(12, |rng| run_case(rng, 5_000, &mut Coverage::default()));
}
