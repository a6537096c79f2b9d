//! Fuzzes the idempotency state machine: an arbitrary configuration and op
//! sequence (begin / complete / abandon / sweep / time steps, including
//! invalid keys, fingerprints, responses, zero leases and forged tokens) runs
//! against the store and the sequential model in `core/src/idempotency/
//! model.rs`; any differing answer or statistic, or any panic, is a crash.
#![no_main]

#[path = "../../core/src/idempotency/model.rs"]
mod model;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use model::Op;
use resilience::idempotency::{record_cost, Config};

#[derive(Debug, Arbitrary)]
enum FuzzOp {
    Begin { key: u8, fp: u8, lease: u8 },
    Complete { key: u8, token: u8, resp_len: u8, retention: u8 },
    Abandon { key: u8, token: u8 },
    Advance(u8),
    Rewind(u8),
    Sweep(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    shards_log2: u8,
    /// Extra per-shard budget beyond one maximum record, in 16-byte units.
    slack: u8,
    retention: u8,
    start: u64,
    ops: Vec<FuzzOp>,
}

/// Keys 0..KEYS are valid; 254 and 255 are the invalid picks.
fn key(k: u8) -> u8 {
    if k >= 254 {
        k
    } else {
        k % model::KEYS
    }
}

fuzz_target!(|input: Input| {
    let (max_key_len, max_fingerprint_len, max_response_len) = (16, 8, 64);
    let shards = 1usize << (input.shards_log2 % 3);
    let per_shard = record_cost(max_key_len, max_fingerprint_len, max_response_len) + 16 * input.slack as usize;
    let config = Config {
        shards,
        max_bytes: per_shard * shards,
        retention: input.retention as u64 + 1,
        max_key_len,
        max_fingerprint_len,
        max_response_len,
    };
    let ops: Vec<Op> = input
        .ops
        .iter()
        .take(512)
        .map(|op| match *op {
            FuzzOp::Begin { key: k, fp, lease } => Op::Begin { key: key(k), fp, lease: (lease % 32) as u64 },
            FuzzOp::Complete { key: k, token, resp_len, retention } => Op::Complete {
                key: key(k),
                token,
                // 65 is one byte over the limit.
                resp_len: (resp_len % 66) as u16,
                retention: (retention % 64) as u64,
            },
            FuzzOp::Abandon { key: k, token } => Op::Abandon { key: key(k), token },
            FuzzOp::Advance(by) => Op::Advance((by % 32) as u64),
            FuzzOp::Rewind(by) => Op::Rewind((by % 16) as u64),
            FuzzOp::Sweep(max) => Op::Sweep(max % 8),
        })
        .collect();
    // Near 0, near u64::MAX, or anywhere: deadlines must saturate, not wrap.
    model::run(&config, input.start, &ops);
});
