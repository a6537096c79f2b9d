//! `rsl_adaptive`: an in-flight limit that follows latency and drops (AIMD
//! or gradient, after Netflix concurrency-limits).
//!
//! Tokens are plain data (`rsl_adaptive_token`): take one before the call,
//! give it back exactly once after it with `rsl_adaptive_record`, saying how
//! the call went and how long it took.

use crate::boundary::{boundary, boundary_or, fail, Result};
use crate::handle::{self, opaque, Plain};
use crate::status::{rsl_status, RSL_ERR_INVALID_ARG, RSL_ERR_REJECTED};
use resilience::clock::{self, Nanos};
use resilience::limit::{AdaptiveLimiter, AimdConfig, Algorithm, GradientConfig, RawToken};

/// Algorithm code: additive increase, multiplicative decrease.
pub const RSL_ADAPTIVE_AIMD: i32 = 0;
/// Algorithm code: gradient of no-load latency against observed latency.
pub const RSL_ADAPTIVE_GRADIENT: i32 = 1;

/// Outcome code: the call succeeded; its round-trip time is a sample.
pub const RSL_ADAPTIVE_SUCCESS: i32 = 0;
/// Outcome code: the call was dropped (timed out, refused by an overloaded
/// service): the limit backs off (at most once per round trip).
pub const RSL_ADAPTIVE_DROPPED: i32 = 1;
/// Outcome code: the outcome says nothing about the service (e.g. a client
/// error): the slot is released, no sample is taken.
pub const RSL_ADAPTIVE_IGNORED: i32 = 2;

/// `rtt_ns` value for rsl_adaptive_record: measure the round trip as
/// CLOCK_MONOTONIC now minus the token's `start_ns`.
pub const RSL_ADAPTIVE_RTT_MEASURE: u64 = u64::MAX;

/// Largest limit accepted in a config.
pub const RSL_ADAPTIVE_MAX_LIMIT: u64 = u32::MAX as u64;

/// An adaptive limiter's settings. Start from `rsl_adaptive_config_default()`
/// (AIMD); the fields of the other algorithm are ignored. The `_reserved`
/// tail must stay zero (nonzero is refused with RSL_ERR_INVALID_ARG).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct rsl_adaptive_config {
    /// RSL_ADAPTIVE_AIMD (default) or RSL_ADAPTIVE_GRADIENT.
    pub algorithm: i32,
    /// Gradient: samples between probes of the no-load RTT (0: never).
    /// Default 20000.
    pub gradient_probe_interval: u32,
    /// Starting limit, in [min_limit, max_limit]. Default 20.
    pub initial_limit: u64,
    /// Lowest limit, >= 1. Default 20.
    pub min_limit: u64,
    /// Highest limit, >= min_limit, <= RSL_ADAPTIVE_MAX_LIMIT. Default 200.
    pub max_limit: u64,
    /// AIMD: factor applied on a drop, in (0, 1). Default 0.9.
    pub aimd_backoff: f64,
    /// AIMD: a sample slower than this counts as a drop, > 0. Default 5 s.
    pub aimd_timeout_ns: u64,
    /// Gradient: weight of the new estimate per round trip, in (0, 1].
    /// Default 0.2.
    pub gradient_smoothing: f64,
    /// Gradient: how much slower than the no-load RTT a sample may be before
    /// the limit shrinks, finite and >= 1. Default 1.5.
    pub gradient_tolerance: f64,
    /// Gradient: headroom added to each estimate, <= RSL_ADAPTIVE_MAX_LIMIT.
    /// Default 4.
    pub gradient_queue_size: u64,
    /// Gradient: factor applied on a drop, in (0, 1]. Default 0.9.
    pub gradient_drop_backoff: f64,
    /// Reserved for future fields, must be zero.
    pub _reserved: [u64; 6],
}

// SAFETY: repr(C), integer and float fields only.
unsafe impl Plain for rsl_adaptive_config {}

/// Permission for one call: plain data, give it back exactly once with
/// rsl_adaptive_record.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_adaptive_token {
    /// When the call was admitted (CLOCK_MONOTONIC ns).
    pub start_ns: u64,
    /// Calls in flight when it was admitted, itself included (>= 1).
    pub inflight: u64,
}

/// Counters of an adaptive limiter.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_adaptive_stats {
    /// The current limit.
    pub limit: u64,
    /// Calls in flight now.
    pub in_flight: u64,
    /// rsl_adaptive_try_acquire calls refused so far.
    pub rejected: u64,
    /// Reserved for future fields, zero.
    pub _reserved: [u64; 5],
}

/// An adaptive concurrency limit; every function on it is thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_adaptive {
    _private: [u8; 0],
}
opaque!(rsl_adaptive => AdaptiveLimiter);

/// Returns the default settings: AIMD with Netflix's defaults (20 in
/// [20, 200], backoff 0.9, timeout 5 s); gradient fields at their defaults
/// (smoothing 0.2, tolerance 1.5, queue size 4, a probe every 20000
/// samples, drop backoff 0.9); reserved fields zero. Thread-safe. Never
/// fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_config_default() -> rsl_adaptive_config {
    let a = AimdConfig::default();
    let g = GradientConfig::default();
    rsl_adaptive_config {
        algorithm: RSL_ADAPTIVE_AIMD,
        gradient_probe_interval: g.probe_interval,
        initial_limit: a.initial as u64,
        min_limit: a.min as u64,
        max_limit: a.max as u64,
        aimd_backoff: a.backoff,
        aimd_timeout_ns: a.timeout,
        gradient_smoothing: g.smoothing,
        gradient_tolerance: g.tolerance,
        gradient_queue_size: g.queue_size as u64,
        gradient_drop_backoff: g.drop_backoff,
        _reserved: [0; 6],
    }
}

fn invalid(msg: String) -> rsl_status {
    fail(RSL_ERR_INVALID_ARG, format!("rsl_adaptive_config: {msg}"))
}

fn algorithm(c: &rsl_adaptive_config) -> Result<Algorithm> {
    if c._reserved.iter().any(|&r| r != 0) {
        return Err(invalid("reserved fields must be zero".into()));
    }
    let (initial, min, max) = (c.initial_limit, c.min_limit, c.max_limit);
    if min == 0 || max < min || max > RSL_ADAPTIVE_MAX_LIMIT {
        return Err(invalid(format!(
            "need 1 <= min_limit ({min}) <= max_limit ({max}) <= {RSL_ADAPTIVE_MAX_LIMIT}"
        )));
    }
    if !(min..=max).contains(&initial) {
        return Err(invalid(format!("initial_limit {initial} is not in [{min}, {max}]")));
    }
    let (initial, min, max) = (initial as usize, min as usize, max as usize);
    match c.algorithm {
        RSL_ADAPTIVE_AIMD => {
            let backoff = c.aimd_backoff;
            if !(backoff > 0.0 && backoff < 1.0) {
                return Err(invalid(format!("aimd_backoff {backoff} is not in (0, 1)")));
            }
            if c.aimd_timeout_ns == 0 {
                return Err(invalid("aimd_timeout_ns must be > 0".into()));
            }
            Ok(Algorithm::Aimd(AimdConfig { initial, min, max, backoff, timeout: c.aimd_timeout_ns }))
        }
        RSL_ADAPTIVE_GRADIENT => {
            let (smoothing, tolerance, drop_backoff) =
                (c.gradient_smoothing, c.gradient_tolerance, c.gradient_drop_backoff);
            if !(smoothing > 0.0 && smoothing <= 1.0) {
                return Err(invalid(format!("gradient_smoothing {smoothing} is not in (0, 1]")));
            }
            if !(tolerance.is_finite() && tolerance >= 1.0) {
                return Err(invalid(format!("gradient_tolerance {tolerance} is not finite and >= 1")));
            }
            if !(drop_backoff > 0.0 && drop_backoff <= 1.0) {
                return Err(invalid(format!("gradient_drop_backoff {drop_backoff} is not in (0, 1]")));
            }
            if c.gradient_queue_size > RSL_ADAPTIVE_MAX_LIMIT {
                return Err(invalid(format!("gradient_queue_size {} is too large", c.gradient_queue_size)));
            }
            Ok(Algorithm::Gradient(GradientConfig {
                initial,
                min,
                max,
                smoothing,
                tolerance,
                queue_size: c.gradient_queue_size as usize,
                probe_interval: c.gradient_probe_interval,
                drop_backoff,
            }))
        }
        a => Err(invalid(format!("algorithm {a} is not an RSL_ADAPTIVE_* algorithm"))),
    }
}

/// Creates an adaptive limiter with `config` (NULL: the defaults), timing
/// calls with CLOCK_MONOTONIC.
///
/// Ownership: the caller owns `*adaptive_out` and frees it with
/// rsl_adaptive_free. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `adaptive_out` is NULL; RSL_ERR_INVALID_ARG
/// for an unknown algorithm, a field of the chosen algorithm out of range
/// (NaN included), a nonzero reserved field or a misaligned `config`
/// (rsl_last_error says which); RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_new(
    config: *const rsl_adaptive_config,
    adaptive_out: *mut *mut rsl_adaptive,
) -> rsl_status {
    boundary(|| {
        handle::require_out(adaptive_out, "adaptive_out")?;
        let c = handle::read_plain(config, "config")?.unwrap_or_else(|| rsl_adaptive_config_default());
        let alg = algorithm(&c)?;
        handle::write(adaptive_out, handle::into_raw(AdaptiveLimiter::new(alg)), "adaptive_out")
    })
}

/// Frees the limiter. NULL is a no-op. Tokens still out become meaningless.
/// No other call on it may run concurrently or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_free(adaptive: *mut rsl_adaptive) {
    boundary_or((), || handle::free(adaptive))
}

fn try_acquire(
    adaptive: *const rsl_adaptive,
    now: Option<Nanos>,
    token_out: *mut rsl_adaptive_token,
) -> Result {
    let a = handle::borrow(adaptive)?;
    handle::require_out(token_out, "token_out")?;
    let now = now.unwrap_or_else(clock::now);
    match a.try_acquire_raw_at(now) {
        Some(t) => {
            let token = rsl_adaptive_token { start_ns: t.start, inflight: t.inflight as u64 };
            handle::write(token_out, token, "token_out")
        }
        None => Err(RSL_ERR_REJECTED),
    }
}

/// Admits one call if fewer than the current limit are in flight (one
/// compare-exchange), and writes its token to `*token_out` (start time: now).
/// Give the token back exactly once with rsl_adaptive_record.
///
/// Thread-safe. Returns RSL_OK, RSL_ERR_REJECTED (at the limit; an answer,
/// `rsl_last_error` is not set), RSL_ERR_NULL_ARG (`adaptive` or
/// `token_out` NULL), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_try_acquire(
    adaptive: *const rsl_adaptive,
    token_out: *mut rsl_adaptive_token,
) -> rsl_status {
    boundary(|| try_acquire(adaptive, None, token_out))
}

/// rsl_adaptive_try_acquire with the call's start time `now_ns`
/// (CLOCK_MONOTONIC ns). Thread-safe. Returns as rsl_adaptive_try_acquire.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_try_acquire_at(
    adaptive: *const rsl_adaptive,
    now_ns: u64,
    token_out: *mut rsl_adaptive_token,
) -> rsl_status {
    boundary(|| try_acquire(adaptive, Some(now_ns), token_out))
}

/// Gives back `token` and reports the call: `outcome` is
/// RSL_ADAPTIVE_SUCCESS, RSL_ADAPTIVE_DROPPED or RSL_ADAPTIVE_IGNORED, and
/// `rtt_ns` how long it took (RSL_ADAPTIVE_RTT_MEASURE: now minus
/// `token.start_ns`). Success and drop samples move the limit (under a
/// short lock). Give each token back once: a second record while other
/// calls are in flight releases one of their slots (it cannot be told
/// apart); with none in flight it is refused.
///
/// Thread-safe. Returns RSL_OK; RSL_ERR_INVALID_ARG for an unknown
/// `outcome`, a token with `inflight` 0 (never issued), or when no call is
/// in flight (nothing changed); RSL_ERR_NULL_ARG if `adaptive` is NULL;
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_record(
    adaptive: *const rsl_adaptive,
    token: rsl_adaptive_token,
    outcome: i32,
    rtt_ns: u64,
) -> rsl_status {
    boundary(|| {
        let a = handle::borrow(adaptive)?;
        let dropped = match outcome {
            RSL_ADAPTIVE_SUCCESS => Some(false),
            RSL_ADAPTIVE_DROPPED => Some(true),
            RSL_ADAPTIVE_IGNORED => None,
            o => {
                return Err(fail(
                    RSL_ERR_INVALID_ARG,
                    format!("outcome {o} is not an RSL_ADAPTIVE_* outcome"),
                ))
            }
        };
        if token.inflight == 0 {
            return Err(fail(RSL_ERR_INVALID_ARG, "token.inflight is 0: not a token from try_acquire"));
        }
        let rtt = match rtt_ns {
            RSL_ADAPTIVE_RTT_MEASURE => clock::now().saturating_sub(token.start_ns),
            r => r,
        };
        let raw = RawToken {
            start: token.start_ns,
            inflight: usize::try_from(token.inflight).unwrap_or(usize::MAX),
        };
        if a.release_raw(raw, dropped, rtt) {
            Ok(())
        } else {
            Err(fail(RSL_ERR_INVALID_ARG, "rsl_adaptive_record: no call is in flight"))
        }
    })
}

/// Writes the current limit to `*limit_out`. Thread-safe. Returns
/// RSL_ERR_NULL_ARG if `adaptive` or `limit_out` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_limit(adaptive: *const rsl_adaptive, limit_out: *mut usize) -> rsl_status {
    boundary(|| handle::write(limit_out, handle::borrow(adaptive)?.limit(), "limit_out"))
}

/// Writes the number of calls in flight to `*in_flight_out`. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `adaptive` or `in_flight_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_in_flight(
    adaptive: *const rsl_adaptive,
    in_flight_out: *mut usize,
) -> rsl_status {
    boundary(|| handle::write(in_flight_out, handle::borrow(adaptive)?.in_flight(), "in_flight_out"))
}

/// Writes the limiter's counters to `*stats_out` (reserved fields zeroed;
/// read one after another, not as one snapshot). Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `adaptive` or `stats_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_adaptive_get_stats(
    adaptive: *const rsl_adaptive,
    stats_out: *mut rsl_adaptive_stats,
) -> rsl_status {
    boundary(|| {
        let a = handle::borrow(adaptive)?;
        let stats = rsl_adaptive_stats {
            limit: a.limit() as u64,
            in_flight: a.in_flight() as u64,
            rejected: a.rejected(),
            _reserved: [0; 5],
        };
        handle::write(stats_out, stats, "stats_out")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_are_fixed() {
        assert_eq!(std::mem::size_of::<rsl_adaptive_config>(), 128);
        assert_eq!(std::mem::size_of::<rsl_adaptive_token>(), 16);
        assert_eq!(std::mem::size_of::<rsl_adaptive_stats>(), 64);
    }

    #[test]
    fn config_is_validated() {
        let c = rsl_adaptive_config_default();
        assert_eq!(algorithm(&c).unwrap(), Algorithm::Aimd(AimdConfig::default()));
        let g = rsl_adaptive_config { algorithm: RSL_ADAPTIVE_GRADIENT, ..c };
        assert_eq!(algorithm(&g).unwrap(), Algorithm::Gradient(GradientConfig::default()));
        for bad in [
            rsl_adaptive_config { algorithm: 2, ..c },
            rsl_adaptive_config { min_limit: 0, initial_limit: 0, ..c },
            rsl_adaptive_config { max_limit: 10, ..c },
            rsl_adaptive_config { initial_limit: 201, ..c },
            rsl_adaptive_config { max_limit: u64::MAX, ..c },
            rsl_adaptive_config { aimd_backoff: 1.0, ..c },
            rsl_adaptive_config { aimd_backoff: f64::NAN, ..c },
            rsl_adaptive_config { aimd_timeout_ns: 0, ..c },
            rsl_adaptive_config { gradient_smoothing: 0.0, ..g },
            rsl_adaptive_config { gradient_tolerance: 0.5, ..g },
            rsl_adaptive_config { gradient_tolerance: f64::INFINITY, ..g },
            rsl_adaptive_config { gradient_drop_backoff: f64::NAN, ..g },
            rsl_adaptive_config { gradient_queue_size: u64::MAX, ..g },
            rsl_adaptive_config { _reserved: [0, 0, 0, 0, 0, 1], ..c },
        ] {
            assert_eq!(algorithm(&bad).unwrap_err(), RSL_ERR_INVALID_ARG, "{bad:?}");
        }
        // The other algorithm's fields are ignored.
        assert!(algorithm(&rsl_adaptive_config { gradient_smoothing: f64::NAN, ..c }).is_ok());
    }
}
