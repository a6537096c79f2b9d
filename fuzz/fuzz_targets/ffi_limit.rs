//! The rate-limiting C ABI (token bucket, keyed limiter with its batch call,
//! bulkhead, adaptive limit) driven with arbitrary configs, codes, keys,
//! lengths and times, against models: the core bucket for every decision
//! (one bucket per key for the keyed limiter, whose table is big enough that
//! reclaiming changes no answer), counters for the bulkhead and the
//! adaptive limiter's in-flight slots. No input may panic, and every status
//! must be the documented one.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use resilience::limit::{AutoClock, Quota, TokenBucket};
use rsl_ffi::adaptive::*;
use rsl_ffi::bulkhead::*;
use rsl_ffi::keyed_limiter::*;
use rsl_ffi::limiter::*;
use rsl_ffi::status::rsl_status::{self, *};
use std::collections::HashMap;
use std::ptr::{null, null_mut};

#[derive(Debug, Arbitrary)]
enum Op {
    Acquire { quantity: u64, now: u64 },
    Keyed { key: Vec<u8>, quantity: u8, now: u64, null_key: bool },
    Many { keys: Vec<Vec<u8>>, quantity: u8, now: u64, bad: Option<u8> },
    BulkheadTry,
    BulkheadTimeout,
    BulkheadRelease,
    AdaptiveAcquire { now: u64 },
    AdaptiveRecord { which: u8, outcome: i32, rtt: u64, forge: bool },
}

#[derive(Debug, Arbitrary)]
struct Input {
    max_burst: u64,
    count: u64,
    period: u64,
    small: bool,
    clock: i8,
    policy: i8,
    max_concurrent: u8,
    max_waiters: u8,
    algorithm: i8,
    limits: (u8, u8, u8),
    backoff: f64,
    ops: Vec<Op>,
}

fn decision(d: &rsl_decision, want: resilience::limit::Decision) {
    assert_eq!(*d, rsl_decision::from(want));
}

fuzz_target!(|input: Input| {
    let (max_burst, count, period) = if input.small {
        (input.max_burst % 8, input.count % 8 + 1, input.period % 4_000_000_000)
    } else {
        (input.max_burst, input.count, input.period)
    };
    let quota = rsl_quota { max_burst, count, period_ns: period };
    let core_quota = Quota::new(max_burst, count, period);

    // Token bucket.
    let mut c = rsl_limiter_config_default();
    c.quota = quota;
    c.clock = i32::from(input.clock);
    let mut bucket = null_mut();
    let s = rsl_limiter_new(&c, &mut bucket);
    let clock_ok = (0..=2).contains(&c.clock);
    assert_eq!(s == RSL_OK, core_quota.is_ok() && clock_ok, "{s:?}");
    // Keyed limiter, big enough never to be full.
    let mut kc = rsl_keyed_limiter_config_default();
    kc.quota = quota;
    kc.max_keys = 1 << 20;
    kc.shards = 4;
    kc.full_policy = i32::from(input.policy);
    let mut keyed = null_mut();
    let s = rsl_keyed_limiter_new(&kc, &mut keyed);
    assert_eq!(s == RSL_OK, core_quota.is_ok() && (0..=1).contains(&kc.full_policy), "{s:?}");
    let model = core_quota.ok().map(|q| TokenBucket::with_clock(q, AutoClock::precise()));
    let mut keyed_model: HashMap<Vec<u8>, TokenBucket> = HashMap::new();

    // Bulkhead.
    let mut bh = null_mut();
    let s = rsl_bulkhead_new(u64::from(input.max_concurrent), u64::from(input.max_waiters), &mut bh);
    assert_eq!(s == RSL_OK, input.max_concurrent > 0);
    let mut held = 0u64;

    // Adaptive limiter.
    let mut ac = rsl_adaptive_config_default();
    ac.algorithm = i32::from(input.algorithm);
    (ac.min_limit, ac.initial_limit, ac.max_limit) =
        (u64::from(input.limits.0), u64::from(input.limits.1), u64::from(input.limits.2));
    ac.aimd_backoff = input.backoff;
    ac.gradient_drop_backoff = input.backoff;
    let mut ad = null_mut();
    let s = rsl_adaptive_new(&ac, &mut ad);
    let (lo, init, hi) = (ac.min_limit, ac.initial_limit, ac.max_limit);
    let limits_ok = lo >= 1 && lo <= init && init <= hi;
    let ok = match ac.algorithm {
        RSL_ADAPTIVE_AIMD => limits_ok && input.backoff > 0.0 && input.backoff < 1.0,
        RSL_ADAPTIVE_GRADIENT => limits_ok && input.backoff > 0.0 && input.backoff <= 1.0,
        _ => false,
    };
    assert_eq!(s == RSL_OK, ok, "{s:?} {ac:?}");
    let mut tokens: Vec<rsl_adaptive_token> = Vec::new();

    for op in input.ops.iter().take(256) {
        let mut d = rsl_decision::from(resilience::limit::Decision::EMPTY);
        match op {
            Op::Acquire { quantity, now } => {
                let s = rsl_limiter_acquire_at(bucket, *quantity, *now, &mut d);
                match &model {
                    Some(m) if !bucket.is_null() => {
                        assert_eq!(s, RSL_OK);
                        decision(&d, m.acquire_at(*quantity, *now));
                    }
                    _ => assert_eq!(s, RSL_ERR_NULL_ARG),
                }
            }
            Op::Keyed { key, quantity, now, null_key } => {
                let ptr = if *null_key { null() } else { key.as_ptr() };
                let s =
                    rsl_keyed_limiter_acquire_at(keyed, ptr, key.len(), u64::from(*quantity), *now, &mut d);
                if keyed.is_null() || (*null_key && !key.is_empty()) {
                    assert_eq!(s, RSL_ERR_NULL_ARG);
                    continue;
                }
                assert_eq!(s, RSL_OK);
                let q = core_quota.unwrap();
                let m = keyed_model
                    .entry(key.clone())
                    .or_insert_with(|| TokenBucket::with_clock(q, AutoClock::precise()));
                decision(&d, m.acquire_at(u64::from(*quantity), *now));
            }
            Op::Many { keys, quantity, now, bad } => {
                let keys = &keys[..keys.len().min(40)];
                let mut ptrs: Vec<*const u8> = keys.iter().map(|k| k.as_ptr()).collect();
                let lens: Vec<usize> = keys.iter().map(|k| k.len()).collect();
                let mut bad_at = None;
                if let Some(b) = bad {
                    if !keys.is_empty() && !keys[*b as usize % keys.len()].is_empty() {
                        let i = *b as usize % keys.len();
                        ptrs[i] = null();
                        bad_at = Some(i);
                    }
                }
                let mut out = vec![d; keys.len()];
                let s = rsl_keyed_limiter_acquire_many_at(
                    keyed,
                    ptrs.as_ptr(),
                    lens.as_ptr(),
                    keys.len(),
                    u64::from(*quantity),
                    *now,
                    out.as_mut_ptr(),
                );
                if keyed.is_null() || bad_at.is_some() {
                    assert_eq!(s, RSL_ERR_NULL_ARG);
                    continue; // nothing acquired
                }
                assert_eq!(s, RSL_OK);
                let q = core_quota.unwrap();
                for (k, o) in keys.iter().zip(&out) {
                    let m = keyed_model
                        .entry(k.clone())
                        .or_insert_with(|| TokenBucket::with_clock(q, AutoClock::precise()));
                    decision(o, m.acquire_at(u64::from(*quantity), *now));
                }
            }
            Op::BulkheadTry | Op::BulkheadTimeout => {
                let s = if matches!(op, Op::BulkheadTry) {
                    rsl_bulkhead_try_acquire(bh)
                } else {
                    rsl_bulkhead_acquire_timeout(bh, 0)
                };
                let want: rsl_status = if bh.is_null() {
                    RSL_ERR_NULL_ARG
                } else if held < u64::from(input.max_concurrent) {
                    RSL_OK
                } else if matches!(op, Op::BulkheadTry) {
                    RSL_ERR_REJECTED
                } else if input.max_waiters == 0 {
                    RSL_ERR_FULL
                } else {
                    RSL_ERR_TIMEOUT
                };
                assert_eq!(s, want);
                if s == RSL_OK {
                    held += 1;
                }
            }
            Op::BulkheadRelease => {
                let s = rsl_bulkhead_release(bh);
                let want = if bh.is_null() {
                    RSL_ERR_NULL_ARG
                } else if held == 0 {
                    RSL_ERR_INVALID_ARG
                } else {
                    held -= 1;
                    RSL_OK
                };
                assert_eq!(s, want);
            }
            Op::AdaptiveAcquire { now } => {
                let mut t = rsl_adaptive_token { start_ns: 0, inflight: 0 };
                let s = rsl_adaptive_try_acquire_at(ad, *now, &mut t);
                if ad.is_null() {
                    assert_eq!(s, RSL_ERR_NULL_ARG);
                    continue;
                }
                let mut limit = 0;
                assert_eq!(rsl_adaptive_limit(ad, &mut limit), RSL_OK);
                if tokens.len() < limit {
                    assert_eq!(s, RSL_OK);
                    assert_eq!((t.start_ns, t.inflight), (*now, tokens.len() as u64 + 1));
                    tokens.push(t);
                } else {
                    assert_eq!(s, RSL_ERR_REJECTED);
                }
            }
            Op::AdaptiveRecord { which, outcome, rtt, forge } => {
                let t = match tokens.len() {
                    _ if *forge => rsl_adaptive_token { start_ns: *rtt, inflight: u64::from(*which) },
                    0 => continue,
                    n => tokens[*which as usize % n],
                };
                let s = rsl_adaptive_record(ad, t, *outcome, *rtt);
                let want = if ad.is_null() {
                    RSL_ERR_NULL_ARG
                } else if !(0..=2).contains(outcome) || t.inflight == 0 || tokens.is_empty() {
                    RSL_ERR_INVALID_ARG
                } else {
                    RSL_OK
                };
                assert_eq!(s, want);
                if s == RSL_OK {
                    tokens.pop(); // one slot fewer in flight (which one cannot be told)
                }
                if !ad.is_null() {
                    let mut n = usize::MAX;
                    assert_eq!(rsl_adaptive_in_flight(ad, &mut n), RSL_OK);
                    assert_eq!(n, tokens.len());
                    let mut limit = 0;
                    assert_eq!(rsl_adaptive_limit(ad, &mut limit), RSL_OK);
                    assert!(limit as u64 >= lo && limit as u64 <= hi);
                }
            }
        }
    }
    if !bh.is_null() {
        let mut st = std::mem::MaybeUninit::<rsl_bulkhead_stats>::uninit();
        assert_eq!(rsl_bulkhead_get_stats(bh, st.as_mut_ptr()), RSL_OK);
        // SAFETY: written by the call, which returned RSL_OK.
        let st = unsafe { st.assume_init() };
        assert_eq!(st.in_flight, held);
    }
    rsl_limiter_free(bucket);
    rsl_keyed_limiter_free(keyed);
    rsl_bulkhead_free(bh);
    rsl_adaptive_free(ad);
});
