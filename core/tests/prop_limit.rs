//! Property tests: the atomic token bucket and the keyed limiter give exactly
//! the decisions of a simple sequential reference, written from redis-cell
//! 0.2.2's algorithm with wide (i128) arithmetic, for random quotas and
//! random sequences of (time, quantity) — including time going backwards,
//! absurd times, quantity 0 and quantities above the limit.

mod common;

use common::{check, Rng};
use resilience::clock::{ManualClock, Nanos, SECOND};
use resilience::hash::SeededState;
use resilience::limit::{
    Decision, Denied, FullPolicy, KeyedLimiter, Quota, QuotaError, Reason, TokenBucket, MAX_NOW,
};
use std::collections::HashMap;

/// What `check` must answer for a step whose full decision is `d`.
fn check_answer(d: &Decision) -> Result<(), (Option<Nanos>, Reason)> {
    if d.allowed {
        Ok(())
    } else {
        Err((d.retry_after, d.reason))
    }
}

fn seen_by_check(r: Result<(), Denied>) -> Result<(), (Option<Nanos>, Reason)> {
    r.map_err(|d| (d.retry_after(), d.reason()))
}

/// The reference: redis-cell's `rate_limit`, step by step, on one key.
#[derive(Debug, Clone, Copy)]
struct RefQuota {
    limit: i128,
    t: i128,
    tau: i128,
}

impl RefQuota {
    fn new(max_burst: u64, count: u64, period: u64) -> Option<RefQuota> {
        if count == 0 || period == 0 {
            return None;
        }
        let t = (period / count) as i128;
        let limit = max_burst as i128 + 1;
        let tau = t.checked_mul(limit)?;
        if t == 0 || tau >= 1 << 62 {
            return None;
        }
        Some(RefQuota { limit, t, tau })
    }

    /// One decision from state `tat` (None: key missing); returns the new
    /// state. Quantity 0 stores nothing (redis-cell stores max(tat, now),
    /// which only differs when the clock later goes backwards).
    fn decide(&self, tat: Option<i128>, now: u64, quantity: u64) -> (Decision, Option<i128>) {
        let now = now.min(MAX_NOW) as i128;
        // A key whose TAT has passed has expired in Redis: same as missing.
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
        let allow_at = new_tat - self.tau;
        let diff = now - allow_at;
        if diff < 0 {
            return (denied(Reason::Limited, Some(-diff)), None);
        }
        let ttl = new_tat - now;
        let d = Decision {
            allowed: true,
            limit: self.limit as u64,
            remaining: remaining(ttl),
            retry_after: None,
            reset_after: ttl as u64,
            reason: Reason::Allowed,
        };
        (d, (q > 0).then_some(new_tat))
    }
}

fn random_quota(rng: &mut Rng) -> (u64, u64, u64) {
    let max_burst = match rng.below(6) {
        0 => 0,
        1 => rng.below(4),
        2 => rng.below(100),
        3 => rng.below(1 << 20),
        4 => rng.next_u64() >> rng.below(64),
        _ => u64::MAX - rng.below(3),
    };
    let count = match rng.below(4) {
        0 => 1,
        1 => rng.range(1, 1000),
        2 => rng.next_u64() >> rng.below(64),
        _ => rng.below(3),
    };
    let period = match rng.below(5) {
        0 => SECOND * rng.range(1, 100),
        1 => rng.range(1, 1 << 40),
        2 => rng.next_u64() >> rng.below(64),
        3 => rng.below(3),
        _ => u64::MAX - rng.below(3),
    };
    (max_burst, count, period)
}

fn random_quantity(rng: &mut Rng, limit: u64) -> u64 {
    match rng.below(8) {
        0 => 0,
        1 => limit,
        2 => limit.saturating_add(rng.range(1, 3)),
        3 => u64::MAX - rng.below(2),
        4 => rng.below(limit.saturating_add(2)),
        _ => rng.range(1, 3).min(limit.saturating_add(1)),
    }
}

/// Mostly forward by up to two burst windows; sometimes backwards, standing
/// still, or absurd.
fn next_time(rng: &mut Rng, now: u64, tau: u64) -> u64 {
    match rng.below(20) {
        0 => rng.below(now.max(1)),
        1 => now.saturating_sub(rng.below(tau.max(1))),
        2 => u64::MAX - rng.below(SECOND),
        3 => MAX_NOW.saturating_sub(rng.below(tau.max(1))),
        4..=7 => now,
        _ => now.saturating_add(rng.below(tau.saturating_mul(2).max(2))),
    }
}

#[test]
fn quota_validation_matches_the_reference() {
    check(5000, |rng| {
        let (b, c, p) = random_quota(rng);
        match (Quota::new(b, c, p), RefQuota::new(b, c, p)) {
            (Ok(q), Some(r)) => {
                assert_eq!((q.limit() as i128, q.emission_interval() as i128), (r.limit, r.t));
                assert_eq!(q.burst_window() as i128, r.tau);
            }
            (Err(e), None) => assert!(matches!(
                e,
                QuotaError::ZeroCount
                    | QuotaError::ZeroPeriod
                    | QuotaError::RateTooHigh
                    | QuotaError::Overflow
            )),
            (ours, reference) => panic!("quota ({b}, {c}, {p}): {ours:?} vs {reference:?}"),
        }
    });
}

#[test]
fn bucket_matches_the_reference() {
    let mut seen = HashMap::new();
    check(3000, |rng| {
        let (b, c, p) = random_quota(rng);
        let (Ok(quota), Some(reference)) = (Quota::new(b, c, p), RefQuota::new(b, c, p)) else {
            return;
        };
        let clock = ManualClock::new(rng.next_u64() >> rng.below(64));
        let bucket = TokenBucket::with_clock(quota, &clock);
        let mut tat: Option<i128> = None;
        for step in 0..200 {
            let q = random_quantity(rng, quota.limit());
            let now = clock.now_for_test();
            let (expect, next) = reference.decide(tat, now, q);
            let ours = match rng.below(4) {
                // `check` takes the same tokens and answers the yes/no part.
                0 | 1 => {
                    let r = if rng.chance(0.5) { bucket.check(q) } else { bucket.check_at(q, now) };
                    assert_eq!(seen_by_check(r), check_answer(&expect), "step {step}: check, q {q}");
                    expect
                }
                2 => bucket.acquire(q),
                _ => bucket.acquire_at(q, now),
            };
            assert_eq!(ours, expect, "step {step}: quota {quota:?}, tat {tat:?}, now {now}, q {q}");
            assert_eq!(bucket.tat() as i128, next.or(tat).unwrap_or(0), "step {step}: state");
            *seen.entry(format!("{:?}/q0={}", ours.reason, q == 0)).or_insert(0u64) += 1;
            if let Some(n) = next {
                tat = Some(n);
            }
            clock.set(next_time(rng, now, quota.burst_window()));
        }
    });
    eprintln!("bucket decisions: {seen:?}");
    if std::env::var("PROP_SEED").is_err() {
        for kind in [
            "Allowed/q0=true",
            "Allowed/q0=false",
            "Limited/q0=false",
            "Limited/q0=true",
            "ExceedsLimit/q0=false",
        ] {
            assert!(seen.get(kind).copied().unwrap_or(0) > 10, "{kind} rarely seen: {seen:?}");
        }
    }
}

trait NowForTest {
    fn now_for_test(&self) -> Nanos;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> Nanos {
        resilience::clock::Clock::now(self)
    }
}

/// The keyed limiter against a map of reference buckets. With time moving
/// forward, the reference also models the bound: a new key that needs state
/// is refused (per the policy) exactly when `cap` keys are live (TAT > now),
/// since refilled keys can be reclaimed without changing any answer. With
/// time going backwards, the table is big enough never to fill.
#[test]
fn keyed_matches_the_reference() {
    let (mut full, mut reclaimed, mut backwards_cases) = (0u64, 0u64, 0u64);
    check(400, |rng| {
        let quota = Quota::new(rng.below(5), rng.range(1, 4), SECOND * rng.range(1, 5)).expect("valid");
        let reference = RefQuota::new(quota.max_burst(), quota.count(), quota.period()).expect("valid");
        let backwards = rng.chance(0.3);
        let cap = if backwards { 1000 } else { rng.range(1, 12) as usize };
        let policy = if rng.chance(0.5) { FullPolicy::Deny } else { FullPolicy::AllowUntracked };
        let shards = 1 << rng.below(4);
        let limiter: KeyedLimiter<u64, SeededState, ManualClock> = KeyedLimiter::with_options(
            quota,
            cap,
            policy,
            shards,
            SeededState::with_seed(rng.next_u64()),
            ManualClock::default(),
        );
        let mut model: HashMap<u64, i128> = HashMap::new();
        let mut now = SECOND * 10;
        let n_keys = rng.range(1, 24);
        for step in 0..300 {
            let key = rng.below(n_keys);
            let q = match rng.below(6) {
                0 => 0,
                1 => quota.limit() + 1,
                _ => rng.range(1, quota.limit()),
            };
            let use_check = rng.chance(0.3);
            let (ours, checked) = if use_check {
                (None, Some(limiter.check_at(&key, q, now)))
            } else {
                (Some(limiter.acquire_at(&key, q, now)), None)
            };
            let tat = model.get(&key).copied();
            let (mut expect, next) = reference.decide(tat, now, q);
            if let Some(n) = next {
                let live = model.values().filter(|&&t| t > now as i128).count();
                let is_live = tat.is_some_and(|t| t > now as i128);
                if !is_live && !model.contains_key(&key) && live >= cap {
                    expect = match policy {
                        FullPolicy::Deny => Decision {
                            allowed: false,
                            remaining: 0,
                            retry_after: None,
                            reset_after: 0,
                            reason: Reason::TableFull,
                            ..expect
                        },
                        FullPolicy::AllowUntracked => Decision { reason: Reason::Untracked, ..expect },
                    };
                } else {
                    model.insert(key, n);
                }
            }
            let msg = format!("step {step}: key {key} q {q} now {now} cap {cap} {policy:?}");
            match (ours, checked) {
                (Some(ours), _) => assert_eq!(ours, expect, "{msg}"),
                (None, Some(r)) => assert_eq!(seen_by_check(r), check_answer(&expect), "{msg} (check)"),
                (None, None) => unreachable!(),
            }
            // Reclaimed (refilled) keys are as good as absent in the model.
            model.retain(|_, t| *t > now as i128 || backwards);
            assert!(limiter.len() <= cap);
            now = if backwards && rng.chance(0.2) {
                now.saturating_sub(rng.below(SECOND * 5))
            } else {
                now + rng.below(quota.burst_window())
            };
        }
        let st = limiter.stats();
        assert!(st.keys <= cap && st.capacity == cap);
        full += st.denied_full + st.allowed_untracked;
        reclaimed += st.reclaimed;
        backwards_cases += u64::from(backwards);
    });
    // The interesting paths ran.
    if common::cases(400) >= 100 && std::env::var("PROP_SEED").is_err() {
        assert!(
            full > 100 && reclaimed > 100 && backwards_cases > 10,
            "{full} {reclaimed} {backwards_cases}"
        );
    }
    eprintln!(
        "keyed: {full} table-full answers, {reclaimed} keys reclaimed, {backwards_cases} backwards cases"
    );
}
