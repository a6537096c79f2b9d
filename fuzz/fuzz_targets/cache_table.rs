//! Fuzzes the cache table with byte keys (`ByteKey`, as the C ABI uses:
//! inline up to 15 bytes, on the heap beyond) and values against a model of the
//! last value written per key: any limits (bad ones must be refused, not
//! panic), inserts with TTLs, removes, reads, time moving, sweeps, clears;
//! both the SIMD and the portable control groups.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use resilience::cache::group::{Generic, Group, GroupOps};
use resilience::cache::{Inserted, Limits, Table};
use resilience::hash::SeededState;
use resilience::key::{ByteKey, ByteStr};

#[derive(Arbitrary, Debug)]
enum Op {
    Get(Vec<u8>),
    Insert(Vec<u8>, Vec<u8>, Option<u16>),
    Remove(Vec<u8>),
    Advance(u16),
    Sweep(u8),
    Clear,
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_entries: Option<u16>,
    max_weight: Option<u16>,
    portable: bool,
    seed: u64,
    ops: Vec<Op>,
}

fn weigh(k: &ByteKey, v: &Vec<u8>) -> u64 {
    (k.len() + v.len()) as u64
}

fn run<G: GroupOps>(input: &Input) {
    let limits = Limits {
        max_entries: input.max_entries.map(usize::from),
        max_weight: input.max_weight.map(u64::from),
    };
    let Ok(mut t) = Table::<ByteKey, Vec<u8>, SeededState, G>::with_limits(
        limits,
        Some(weigh),
        SeededState::with_seed(input.seed),
    ) else {
        assert!(limits.validate().is_err(), "valid limits refused");
        return;
    };
    // key -> (value, deadline; 0 = never): the last write that was stored.
    let mut model: HashMap<Vec<u8>, (Vec<u8>, u64)> = HashMap::new();
    let mut now = 1u64;
    for op in &input.ops {
        match op {
            Op::Get(k) => {
                let got = t.get(ByteStr::new(k), now).cloned();
                let want = model.get(k).filter(|(_, d)| *d == 0 || now < *d).map(|(v, _)| v.clone());
                if let Some(v) = &got {
                    assert_eq!(Some(v), want.as_ref(), "a read returned a value never stored for its key");
                }
                let s = t.stats();
                if s.evictions == 0 {
                    assert_eq!(got, want, "nothing was evicted, so the table is exact");
                }
            }
            Op::Insert(k, v, ttl) => {
                let deadline = ttl.map_or(0, |d| now + u64::from(d));
                match t.insert(ByteKey::from(k.clone()), v.clone(), deadline, now) {
                    Inserted::New | Inserted::Replaced(_) => {
                        model.insert(k.clone(), (v.clone(), deadline));
                    }
                    Inserted::Rejected(_) => {
                        assert!(
                            (k.len() + v.len()) as u64 > t.max_weight() || (deadline != 0 && now >= deadline),
                            "rejected an entry that fits"
                        );
                        model.remove(k);
                    }
                }
            }
            Op::Remove(k) => {
                let got = t.remove(ByteStr::new(k)).map(|(_, v)| v);
                let want = model.remove(k).map(|(v, _)| v);
                if got.is_some() {
                    assert_eq!(got, want);
                }
            }
            Op::Advance(d) => now += u64::from(*d),
            Op::Sweep(max) => {
                t.sweep_expired(usize::from(*max), now);
            }
            Op::Clear => {
                t.clear();
                model.clear();
                assert!(t.is_empty());
            }
        }
        assert!(t.len() <= t.max_entries());
        assert!(t.weight() <= t.max_weight());
        let (small, main) = t.queue_lengths();
        assert_eq!(small + main, t.len());
        if !t.may_hold_expired(now) {
            // A sweep now would examine nothing: nothing held may be due.
            for (k, _) in t.iter() {
                let d = model.get(k.as_bytes()).map_or(0, |(_, d)| *d);
                assert!(d == 0 || now < d, "an expired entry that sweeps would skip");
            }
        }
    }
    assert_eq!(t.iter().count(), t.len());
}

fuzz_target!(|input: Input| {
    if input.portable {
        run::<Generic>(&input);
    } else {
        run::<Group>(&input);
    }
});
