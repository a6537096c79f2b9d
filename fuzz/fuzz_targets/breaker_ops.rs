//! Random breaker configurations and call / outcome / time sequences, checked
//! step by step against the sequential reference model. Time may go
//! backwards, permits may be recorded twice or never, and outcome codes may be
//! out of range: nothing may panic, and every decision, state and metric must
//! equal the model's.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use resilience::breaker::model::Model;
use resilience::breaker::{CircuitBreaker, Config, DropPolicy, Outcome, RawPermit, State};
use resilience::clock::{ManualClock, MILLISECOND, SECOND};

#[derive(Arbitrary, Debug)]
struct RawConfig {
    failure_rate: u16,
    slow_rate: u16,
    slow_ms: u16,
    permitted: u16,
    max_wait_ms: u16,
    time_based: bool,
    window: u16,
    minimum: u16,
    wait_ms: u16,
    automatic: bool,
    drop_failure: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Acquire,
    AcquireObject,
    Record { which: u8, outcome: u8, ms: u16 },
    /// Records a permit without forgetting it (a C caller's double record).
    RecordTwice { which: u8, outcome: u8 },
    DropObject,
    Advance { ms: u16 },
    Back { ms: u16 },
    Poll,
    Manual { state: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    cfg: RawConfig,
    start_s: u16,
    ops: Vec<Op>,
}

fn config(r: &RawConfig) -> Config {
    Config::default()
        .failure_rate_threshold(r.failure_rate as f32 / 100.0)
        .slow_call_rate_threshold(r.slow_rate as f32 / 100.0)
        .slow_call_duration_threshold(r.slow_ms as u64 * MILLISECOND)
        .permitted_calls_in_half_open(r.permitted as u32 % 1100)
        .max_wait_in_half_open(r.max_wait_ms as u64 * MILLISECOND)
        .minimum_calls(r.minimum as u32 % 40)
        .wait_in_open(r.wait_ms as u64 * MILLISECOND)
        .automatic_transition(r.automatic)
        .drop_policy(if r.drop_failure { DropPolicy::Failure } else { DropPolicy::Ignore })
        .count_window(r.window as u32 % 70)
        .time_window_if(r.time_based, r.window as u32 % 3700)
}

trait TimeWindowIf {
    fn time_window_if(self, on: bool, seconds: u32) -> Self;
}

impl TimeWindowIf for Config {
    fn time_window_if(self, on: bool, seconds: u32) -> Self {
        if on {
            self.time_window(seconds)
        } else {
            self
        }
    }
}

fuzz_target!(|input: Input| {
    let cfg = config(&input.cfg);
    let start = input.start_s as u64 * SECOND;
    let clock = ManualClock::new(start);
    let b = match CircuitBreaker::with_clock(cfg, &clock) {
        Ok(b) => b,
        Err(e) => {
            assert_eq!(cfg.validate(), Err(e));
            return;
        }
    };
    let mut m = Model::new(cfg, start);
    let mut now = start;
    let mut raw: Vec<RawPermit> = Vec::new();
    let mut objects = Vec::new();
    for op in input.ops.iter().take(2000) {
        match *op {
            Op::Acquire => match (m.try_acquire(now), b.try_acquire_raw_at(now)) {
                (Ok(g), Ok(p)) => {
                    assert_eq!(g, p.generation);
                    raw.push(p);
                }
                (Err(a), Err(c)) => assert_eq!(a, c),
                (a, c) => panic!("model {a:?} vs breaker {c:?}"),
            },
            Op::AcquireObject => match (m.try_acquire(now), b.try_acquire()) {
                (Ok(g), Ok(p)) => {
                    assert_eq!(g, p.generation());
                    objects.push(p);
                }
                (Err(a), Err(c)) => assert_eq!(a, c),
                (a, c) => panic!("model {a:?} vs breaker {:?}", c.map(|p| p.generation())),
            },
            Op::Record { which, outcome, ms } if !raw.is_empty() => {
                let p = raw.swap_remove(which as usize % raw.len());
                let Some(o) = Outcome::from_u8(outcome % 4) else { continue };
                let d = ms as u64 * MILLISECOND;
                assert_eq!(m.record(p.generation, o, d, now), b.record_raw(p, o, d, now));
            }
            Op::RecordTwice { which, outcome } if !raw.is_empty() => {
                let p = raw[which as usize % raw.len()];
                let Some(o) = Outcome::from_u8(outcome % 4) else { continue };
                assert_eq!(m.record(p.generation, o, 0, now), b.record_raw(p, o, 0, now));
            }
            Op::DropObject => {
                if let Some(p) = objects.pop() {
                    let o = if input.cfg.drop_failure { Outcome::Failure } else { Outcome::Ignored };
                    m.record(p.generation(), o, 0, now);
                    drop(p);
                }
            }
            Op::Advance { ms } => {
                now = now.saturating_add(ms as u64 * MILLISECOND);
                clock.set(now);
            }
            Op::Back { ms } => {
                now = now.saturating_sub(ms as u64 * MILLISECOND);
                clock.set(now);
            }
            Op::Poll => assert_eq!(m.poll(now), b.poll_at(now)),
            Op::Manual { state } => {
                if let Some(s) = State::from_u8(state % 8) {
                    m.transition_to(s, now);
                    b.transition_to_at(s, now);
                }
            }
            _ => {}
        }
        assert_eq!(m.metrics(now), b.metrics_at(now));
    }
    for p in objects.drain(..).rev() {
        let o = if input.cfg.drop_failure { Outcome::Failure } else { Outcome::Ignored };
        m.record(p.generation(), o, 0, now);
        drop(p);
    }
    assert_eq!(m.metrics(now), b.metrics_at(now));
});
