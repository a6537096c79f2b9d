//! Token bucket and keyed limiter (byte keys, as the C ABI passes them)
//! against a sequential reference written from redis-cell's algorithm in
//! i128 arithmetic: random quotas, times (backwards and absurd ones too) and
//! quantities. No input may panic or overflow, and every decision must match.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use resilience::clock::ManualClock;
use resilience::hash::SeededState;
use resilience::limit::{Decision, FullPolicy, KeyedLimiter, Quota, Reason, TokenBucket, MAX_NOW};
use std::collections::HashMap;

#[derive(Debug, Arbitrary)]
enum Time {
    Forward(u32),
    Back(u32),
    Absolute(u64),
    Same,
}

#[derive(Debug, Arbitrary)]
struct Op {
    time: Time,
    quantity: u64,
    small_quantity: bool,
    key: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    max_burst: u64,
    count: u64,
    period: u64,
    small: bool,
    start: u64,
    ops: Vec<Op>,
}

struct Ref {
    limit: i128,
    t: i128,
    tau: i128,
}

impl Ref {
    fn decide(&self, tat: Option<i128>, now: u64, quantity: u64) -> (Decision, Option<i128>) {
        let now = now.min(MAX_NOW) as i128;
        let tat = tat.map_or(now, |t| t.max(now));
        let q = quantity as i128;
        let remaining = |ttl: i128| {
            let next = self.tau - ttl;
            if next > -self.t {
                (next / self.t) as u64
            } else {
                0
            }
        };
        let denied = |reason, retry: Option<i128>| Decision {
            allowed: false,
            limit: self.limit as u64,
            remaining: remaining(tat - now),
            retry_after: retry.map(|r| r as u64),
            reset_after: (tat - now) as u64,
            reason,
        };
        if q > self.limit {
            return (denied(Reason::ExceedsLimit, None), None);
        }
        let new_tat = tat + self.t * q;
        let diff = now - (new_tat - self.tau);
        if diff < 0 {
            return (denied(Reason::Limited, Some(-diff)), None);
        }
        let d = Decision {
            allowed: true,
            limit: self.limit as u64,
            remaining: remaining(new_tat - now),
            retry_after: None,
            reset_after: (new_tat - now) as u64,
            reason: Reason::Allowed,
        };
        (d, (q > 0).then_some(new_tat))
    }
}

fuzz_target!(|input: Input| {
    let (b, c, p) = if input.small {
        (input.max_burst % 8, input.count % 16, input.period % 100_000)
    } else {
        (input.max_burst, input.count, input.period)
    };
    let quota = match Quota::new(b, c, p) {
        Ok(q) => q,
        Err(_) => {
            // Invalid exactly when the reference says so.
            let t = if c == 0 { 0 } else { p / c };
            let tau = (t as u128) * (b as u128 + 1);
            assert!(c == 0 || p == 0 || t == 0 || tau >= 1 << 62);
            return;
        }
    };
    let reference = Ref {
        limit: quota.limit() as i128,
        t: quota.emission_interval() as i128,
        tau: quota.burst_window() as i128,
    };
    let bucket = TokenBucket::with_clock(quota, ManualClock::new(0));
    let keyed: KeyedLimiter<Box<[u8]>, SeededState, ManualClock> = KeyedLimiter::with_options(
        quota,
        1 << 16,
        FullPolicy::Deny,
        4,
        SeededState::with_seed(1),
        ManualClock::new(0),
    );
    let mut tat = None;
    let mut tats: HashMap<Vec<u8>, i128> = HashMap::new();
    let mut now = input.start;
    for op in input.ops.iter().take(512) {
        now = match op.time {
            Time::Forward(d) => now.saturating_add(d as u64 * 1000),
            Time::Back(d) => now.saturating_sub(d as u64 * 1000),
            Time::Absolute(t) => t,
            Time::Same => now,
        };
        let q = if op.small_quantity { op.quantity % (quota.limit().saturating_add(2)) } else { op.quantity };
        let (want, next) = reference.decide(tat, now, q);
        // Odd quantities go through `check`, which must take the same tokens
        // and give the yes/no part of the same answer.
        if q % 2 == 1 {
            let got = bucket.check_at(q, now).map_err(|d| (d.retry_after(), d.reason()));
            let expect = if want.allowed { Ok(()) } else { Err((want.retry_after, want.reason)) };
            assert_eq!(got, expect, "bucket check: quota {quota:?} tat {tat:?} now {now} q {q}");
        } else {
            let got = bucket.acquire_at(q, now);
            assert_eq!(got, want, "bucket: quota {quota:?} tat {tat:?} now {now} q {q}");
            let _ = got.throttle_reply();
        }
        if let Some(n) = next {
            tat = Some(n);
        }
        let key: &[u8] = &op.key[..op.key.len().min(64)];
        let (want, next) = reference.decide(tats.get(key).copied(), now, q);
        if q % 2 == 1 {
            let got = keyed.check_at(key, q, now).map_err(|d| (d.retry_after(), d.reason()));
            let expect = if want.allowed { Ok(()) } else { Err((want.retry_after, want.reason)) };
            assert_eq!(got, expect, "keyed check: key {key:?} now {now} q {q}");
        } else {
            assert_eq!(keyed.acquire_at(key, q, now), want, "keyed: key {key:?} now {now} q {q}");
        }
        if let Some(n) = next {
            tats.insert(key.to_vec(), n);
        }
    }
    assert_eq!(keyed.len(), tats.len());
});
