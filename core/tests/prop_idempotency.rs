//! Property test: the idempotency store against a sequential model under a
//! manual timeline. Random begin / complete / abandon / sweep / time steps;
//! every answer (tokens via a one-to-one mapping) and every statistic must
//! agree. `PROP_SEED=<n>` replays one case, `PROP_CASES=<n>` runs more.
#![cfg(not(resilience_loom))]

mod common;
#[path = "../src/idempotency/model.rs"]
mod model;

use common::{check, Rng};
use model::{Op, FORGED_TOKEN, KEYS};
use resilience::idempotency::{record_cost, Config, Stats};

/// A small store: a few records per shard, so that eviction, `Full` and
/// takeovers happen within a short scenario.
fn config(rng: &mut Rng) -> Config {
    let shards = 1usize << rng.below(3);
    let (max_key_len, max_fingerprint_len, max_response_len) = (16, 8, 64);
    let smallest = record_cost(max_key_len, max_fingerprint_len, max_response_len);
    let per_shard = smallest + rng.below(4 * smallest as u64) as usize;
    Config {
        shards,
        max_bytes: per_shard * shards,
        retention: 1 + rng.below(100),
        max_key_len,
        max_fingerprint_len,
        max_response_len,
    }
}

fn op(rng: &mut Rng) -> Op {
    let key = |rng: &mut Rng| {
        if rng.chance(0.02) {
            254 + rng.below(2) as u8
        } else {
            rng.below(KEYS as u64) as u8
        }
    };
    // Token picks count back from the latest issued: mostly recent ones, which
    // are the likely owners.
    let token = |rng: &mut Rng| match rng.below(10) {
        0 => FORGED_TOKEN,
        1 => rng.below(16) as u8,
        _ => rng.below(3) as u8,
    };
    match rng.below(100) {
        0..=39 => Op::Begin {
            key: key(rng),
            fp: if rng.chance(0.02) {
                255
            } else if rng.chance(0.8) {
                0
            } else {
                rng.below(3) as u8
            },
            lease: rng.below(20),
        },
        40..=64 => Op::Complete {
            key: key(rng),
            token: token(rng),
            resp_len: if rng.chance(0.02) { 65 } else { rng.below(65) as u16 },
            retention: rng.below(60),
        },
        65..=74 => Op::Abandon { key: key(rng), token: token(rng) },
        75..=89 => Op::Advance(rng.below(15)),
        90..=92 => Op::Rewind(rng.below(10)),
        _ => Op::Sweep(rng.below(4) as u8),
    }
}

/// The event counters of `s`, named.
fn events(s: &Stats) -> [(&'static str, u64); 11] {
    [
        ("started", s.started),
        ("takeovers", s.takeovers),
        ("replays", s.replays),
        ("in_progress", s.in_progress),
        ("mismatches", s.mismatches),
        ("full", s.full),
        ("completed", s.completed),
        ("complete_full", s.complete_full),
        ("abandoned", s.abandoned),
        ("evicted", s.evicted),
        ("expired", s.expired),
    ]
}

#[test]
fn store_agrees_with_the_sequential_model() {
    let mut totals = [0u64; 11];
    check(400, |rng| {
        let config = config(rng);
        let n = 50 + rng.below(250) as usize;
        let ops: Vec<Op> = (0..n).map(|_| op(rng)).collect();
        let s = model::run(&config, 1_000 + rng.below(1_000), &ops);
        for (t, (_, v)) in totals.iter_mut().zip(events(&s)) {
            *t += v;
        }
    });
    // The scenarios are not vacuous: every kind of answer and removal occurs.
    if std::env::var("PROP_SEED").is_err() {
        for (t, (name, _)) in totals.iter().zip(events(&Stats::default())) {
            eprintln!("{name}: {t}");
            assert!(*t > 0, "no case produced any {name}");
        }
    }
}

#[test]
fn store_agrees_with_the_model_near_the_end_of_time() {
    // Deadlines saturate at u64::MAX: nothing may wrap around.
    check(50, |rng| {
        let config = config(rng);
        let ops: Vec<Op> = (0..200).map(|_| op(rng)).collect();
        model::run(&config, u64::MAX - 100, &ops);
    });
}
