//! `rsl_breaker` (a circuit breaker) and `rsl_breaker_registry` (breakers by
//! name).
//!
//! A breaker handle is a reference-counted share of one breaker: the handle
//! from `rsl_breaker_new`, every `rsl_breaker_clone` and every handle from the
//! registry each own one reference, freed with `rsl_breaker_free`; the breaker
//! lives until the last reference (the registry's included) is gone.
//!
//! Permits are plain data (`rsl_permit`): acquire one, make the call, give it
//! back once with `rsl_breaker_record`. A permit that is never recorded is
//! simply forgotten; in half-open its probe slot stays taken until the state
//! changes, so set `max_wait_in_half_open_ns` when permits can be lost.

use crate::boundary::{boundary, boundary_or, fail, Result};
use crate::handle::{self, opaque, shared_opaque, Plain};
use crate::status::{
    rsl_status, RSL_ERR_FULL, RSL_ERR_INVALID_ARG, RSL_ERR_NOT_FOUND, RSL_ERR_REJECTED, RSL_ERR_STALE, RSL_OK,
};
use resilience::breaker::{
    Cause, CircuitBreaker, Config, Metrics, Outcome, RawPermit, Recorded, Registry, RegistryError,
    SlidingWindow, State, Transition,
};
use resilience::clock::Clock;
use std::ffi::c_void;

/// State code: calls pass and are recorded in the sliding window.
pub const RSL_BREAKER_CLOSED: i32 = 0;
/// State code: calls are rejected until the wait in open is over.
pub const RSL_BREAKER_OPEN: i32 = 1;
/// State code: a limited number of probe calls pass; their results decide.
pub const RSL_BREAKER_HALF_OPEN: i32 = 2;
/// State code: calls pass, nothing is recorded (entered only by hand).
pub const RSL_BREAKER_DISABLED: i32 = 3;
/// State code: every call is rejected (entered only by hand).
pub const RSL_BREAKER_FORCED_OPEN: i32 = 4;
/// State code: calls pass and are recorded, but the breaker never opens.
pub const RSL_BREAKER_METRICS_ONLY: i32 = 5;

/// Outcome code: the call succeeded (it still counts as slow if it took
/// longer than the slow-call threshold).
pub const RSL_OUTCOME_SUCCESS: i32 = 0;
/// Outcome code: the call failed.
pub const RSL_OUTCOME_FAILURE: i32 = 1;
/// Outcome code: not counted at all (e.g. a client error); in half-open the
/// probe slot is given back.
pub const RSL_OUTCOME_IGNORED: i32 = 2;

/// Window type: the last `window_size` calls.
pub const RSL_BREAKER_WINDOW_COUNT: i32 = 0;
/// Window type: the calls of the last `window_size` seconds.
pub const RSL_BREAKER_WINDOW_TIME: i32 = 1;

/// Transition cause: the failure rate reached its threshold.
pub const RSL_BREAKER_CAUSE_FAILURE_RATE: i32 = 0;
/// Transition cause: the slow-call rate reached its threshold.
pub const RSL_BREAKER_CAUSE_SLOW_CALL_RATE: i32 = 1;
/// Transition cause: the wait in open was over.
pub const RSL_BREAKER_CAUSE_WAIT_ELAPSED: i32 = 2;
/// Transition cause: every half-open probe finished below both thresholds.
pub const RSL_BREAKER_CAUSE_PROBES_PASSED: i32 = 3;
/// Transition cause: the half-open probes did not finish within the maximum
/// wait.
pub const RSL_BREAKER_CAUSE_HALF_OPEN_TIMEOUT: i32 = 4;
/// Transition cause: a manual transition (`rsl_breaker_transition_to`).
pub const RSL_BREAKER_CAUSE_MANUAL: i32 = 5;

/// A breaker's settings (Resilience4j's `CircuitBreakerConfig`; durations in
/// nanoseconds). Always start from `rsl_breaker_config_default()` and change
/// the fields you need: the `_reserved` tail keeps the size fixed when
/// fields are added, and must stay zero (zero means "default" for every
/// future field; a nonzero value is refused with RSL_ERR_INVALID_ARG).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct rsl_breaker_config {
    /// A call strictly longer than this is slow. Default 60 s.
    pub slow_call_duration_threshold_ns: u64,
    /// Longest time in half-open before going back to open when probes do
    /// not all finish; 0 waits for ever. Default 0.
    pub max_wait_in_half_open_ns: u64,
    /// Time in open before probes are let through, > 0. Default 60 s.
    pub wait_in_open_ns: u64,
    /// Failure rate in percent, in (0, 100], at or above which the breaker
    /// opens. Default 50.
    pub failure_rate_threshold: f32,
    /// Slow-call rate in percent, in (0, 100], at or above which the breaker
    /// opens. Default 100.
    pub slow_call_rate_threshold: f32,
    /// Probe calls let through in half-open, 1..=1023. Default 10.
    pub permitted_calls_in_half_open: u32,
    /// RSL_BREAKER_WINDOW_COUNT (default) or RSL_BREAKER_WINDOW_TIME.
    pub window_type: i32,
    /// Calls (1..=65536) or seconds (1..=3600) in the window. Default 100.
    pub window_size: u32,
    /// Calls needed in the window before a rate is computed, >= 1. Default
    /// 100 (a count window uses min(minimum_calls, window_size)).
    pub minimum_calls: u32,
    /// 1: `rsl_breaker_poll` moves open to half-open when the wait is over;
    /// 0 (default): the next acquire does. Other values are refused.
    pub automatic_transition: u32,
    /// Reserved, must be zero.
    pub _reserved0: u32,
    /// Reserved for future fields, must be zero.
    pub _reserved: [u64; 8],
}

// SAFETY: repr(C), integer and float fields only.
unsafe impl Plain for rsl_breaker_config {}

impl rsl_breaker_config {
    fn from_core(c: &Config) -> Self {
        let (window_type, window_size) = match c.sliding_window {
            SlidingWindow::CountBased { size } => (RSL_BREAKER_WINDOW_COUNT, size),
            SlidingWindow::TimeBased { seconds } => (RSL_BREAKER_WINDOW_TIME, seconds),
        };
        Self {
            slow_call_duration_threshold_ns: c.slow_call_duration_threshold,
            max_wait_in_half_open_ns: c.max_wait_in_half_open,
            wait_in_open_ns: c.wait_in_open,
            failure_rate_threshold: c.failure_rate_threshold,
            slow_call_rate_threshold: c.slow_call_rate_threshold,
            permitted_calls_in_half_open: c.permitted_calls_in_half_open,
            window_type,
            window_size,
            minimum_calls: c.minimum_calls,
            automatic_transition: c.automatic_transition_from_open_to_half_open as u32,
            _reserved0: 0,
            _reserved: [0; 8],
        }
    }

    /// The core config (validated by the core when the breaker is built).
    fn to_core(self) -> Result<Config> {
        if self._reserved0 != 0 || self._reserved.iter().any(|&r| r != 0) {
            return Err(fail(RSL_ERR_INVALID_ARG, "rsl_breaker_config: reserved fields must be zero"));
        }
        let sliding_window = match self.window_type {
            RSL_BREAKER_WINDOW_COUNT => SlidingWindow::CountBased { size: self.window_size },
            RSL_BREAKER_WINDOW_TIME => SlidingWindow::TimeBased { seconds: self.window_size },
            t => {
                return Err(fail(
                    RSL_ERR_INVALID_ARG,
                    format!("rsl_breaker_config: window_type {t} is unknown"),
                ))
            }
        };
        let automatic = match self.automatic_transition {
            0 => false,
            1 => true,
            v => {
                return Err(fail(
                    RSL_ERR_INVALID_ARG,
                    format!("rsl_breaker_config: automatic_transition {v} is not 0 or 1"),
                ))
            }
        };
        let c = Config {
            failure_rate_threshold: self.failure_rate_threshold,
            slow_call_rate_threshold: self.slow_call_rate_threshold,
            slow_call_duration_threshold: self.slow_call_duration_threshold_ns,
            permitted_calls_in_half_open: self.permitted_calls_in_half_open,
            max_wait_in_half_open: self.max_wait_in_half_open_ns,
            sliding_window,
            minimum_calls: self.minimum_calls,
            wait_in_open: self.wait_in_open_ns,
            automatic_transition_from_open_to_half_open: automatic,
            ..Config::default()
        };
        c.validate().map_err(|e| fail(RSL_ERR_INVALID_ARG, format!("rsl_breaker_config: {e}")))?;
        Ok(c)
    }
}

/// Reads an optional config pointer (NULL: the defaults).
fn read_config(config: *const rsl_breaker_config) -> Result<Config> {
    match handle::read_plain(config, "config")? {
        Some(c) => c.to_core(),
        None => Ok(Config::default()),
    }
}

/// Permission to make one call: plain data, copy it freely, but record it
/// at most once (`rsl_breaker_record`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_permit {
    /// The generation of the state that issued the permit.
    pub generation: u64,
}

/// A state change, as given to a state-change callback.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_breaker_transition {
    /// The generation of the new state (one more than the old one's): order
    /// callbacks that run concurrently on different threads by it.
    pub generation: u64,
    /// When it happened (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
    /// The state left (RSL_BREAKER_CLOSED...).
    pub from: i32,
    /// The state entered.
    pub to: i32,
    /// Why (RSL_BREAKER_CAUSE_...).
    pub cause: i32,
    /// Reserved, zero.
    pub _reserved0: u32,
}

/// A snapshot of a breaker's metrics.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct rsl_breaker_metrics {
    /// The current generation (number of transitions since creation).
    pub generation: u64,
    /// Calls in the current window: the closed window (also shown while open
    /// and in metrics-only), or the half-open probes that finished; 0 when
    /// disabled or forced open.
    pub calls: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which slow (a call can be both failed and slow).
    pub slow: u64,
    /// Calls rejected since the breaker was created.
    pub not_permitted: u64,
    /// Time since the current state was entered.
    pub time_in_state_ns: u64,
    /// The current state (RSL_BREAKER_CLOSED...).
    pub state: i32,
    /// `failed / calls` in percent, or -1 below the minimum number of calls.
    pub failure_rate: f32,
    /// `slow / calls` in percent, or -1 below the minimum number of calls.
    pub slow_call_rate: f32,
    /// Reserved, zero.
    pub _reserved0: u32,
    /// Reserved for future fields, zero.
    pub _reserved: [u64; 4],
}

impl From<Metrics> for rsl_breaker_metrics {
    fn from(m: Metrics) -> Self {
        Self {
            generation: m.generation,
            calls: m.calls,
            failed: m.failed,
            slow: m.slow,
            not_permitted: m.not_permitted,
            time_in_state_ns: m.time_in_state,
            state: m.state as i32,
            failure_rate: m.failure_rate.unwrap_or(-1.0),
            slow_call_rate: m.slow_call_rate.unwrap_or(-1.0),
            _reserved0: 0,
            _reserved: [0; 4],
        }
    }
}

fn cause_code(c: Cause) -> i32 {
    match c {
        Cause::FailureRate => RSL_BREAKER_CAUSE_FAILURE_RATE,
        Cause::SlowCallRate => RSL_BREAKER_CAUSE_SLOW_CALL_RATE,
        Cause::WaitElapsed => RSL_BREAKER_CAUSE_WAIT_ELAPSED,
        Cause::ProbesPassed => RSL_BREAKER_CAUSE_PROBES_PASSED,
        Cause::HalfOpenTimeout => RSL_BREAKER_CAUSE_HALF_OPEN_TIMEOUT,
        Cause::Manual => RSL_BREAKER_CAUSE_MANUAL,
    }
}

impl From<&Transition> for rsl_breaker_transition {
    fn from(t: &Transition) -> Self {
        Self {
            generation: t.generation,
            at_ns: t.at,
            from: t.from as i32,
            to: t.to as i32,
            cause: cause_code(t.cause),
            _reserved0: 0,
        }
    }
}

fn state_arg(code: i32) -> Result<State> {
    u8::try_from(code)
        .ok()
        .and_then(State::from_u8)
        .ok_or_else(|| fail(RSL_ERR_INVALID_ARG, format!("state {code} is not an RSL_BREAKER_* state")))
}

#[inline]
fn outcome_arg(code: i32) -> Result<Outcome> {
    u8::try_from(code).ok().and_then(Outcome::from_u8).ok_or_else(|| bad_outcome(code))
}

#[cold]
#[inline(never)]
fn bad_outcome(code: i32) -> rsl_status {
    fail(RSL_ERR_INVALID_ARG, format!("outcome {code} is not an RSL_OUTCOME_* code"))
}

/// A circuit breaker (shared, reference-counted). Every function on it is
/// thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_breaker {
    _private: [u8; 0],
}
shared_opaque!(rsl_breaker => CircuitBreaker);

/// Circuit breakers by name, with a bound on how many it holds. Every
/// function on it is thread-safe.
#[allow(non_camel_case_types)]
pub struct rsl_breaker_registry {
    _private: [u8; 0],
}
opaque!(rsl_breaker_registry => Registry);

/// Returns Resilience4j's default settings: failure rate 50 %, slow-call
/// rate 100 % above 60 s, a count window of 100 calls, 100 minimum calls,
/// 60 s in open, 10 probes in half-open, no half-open timeout, no automatic
/// transition; reserved fields zero. Thread-safe. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_config_default() -> rsl_breaker_config {
    rsl_breaker_config::from_core(&Config::default())
}

/// Creates a closed breaker with `config` (NULL: the defaults).
///
/// Ownership: the caller owns one reference in `*breaker_out` and releases
/// it with rsl_breaker_free. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `breaker_out` is NULL; RSL_ERR_INVALID_ARG if
/// a config field is out of range, an enum field is unknown, a reserved
/// field is nonzero or `config` is misaligned (rsl_last_error says which);
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_new(
    config: *const rsl_breaker_config,
    breaker_out: *mut *mut rsl_breaker,
) -> rsl_status {
    boundary(|| {
        handle::require_out(breaker_out, "breaker_out")?;
        let config = read_config(config)?;
        let b = CircuitBreaker::new(config).map_err(|e| fail(RSL_ERR_INVALID_ARG, e.to_string()))?;
        handle::write(breaker_out, handle::into_raw_arc(std::sync::Arc::new(b)), "breaker_out")
    })
}

/// Writes to `*breaker_out` a new handle to the same breaker (one more
/// reference), e.g. for another owner or thread. Free each handle with
/// rsl_breaker_free. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `breaker` or `breaker_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_clone(
    breaker: *const rsl_breaker,
    breaker_out: *mut *mut rsl_breaker,
) -> rsl_status {
    boundary(|| {
        handle::require_out(breaker_out, "breaker_out")?;
        let h = handle::clone_arc(breaker)?;
        handle::write(breaker_out, h, "breaker_out")
    })
}

/// Releases the caller's reference to the breaker; the breaker is destroyed
/// (and the `user_free` functions of its state-change callbacks run, on
/// this thread) when no handle and no registry holds it any more. NULL is a
/// no-op. The handle must not be used afterwards, nor concurrently with this
/// call; other handles to the same breaker stay valid and may be used by
/// other threads meanwhile.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_free(breaker: *mut rsl_breaker) {
    boundary_or((), || handle::free_arc(breaker))
}

#[inline(always)]
fn acquire(
    breaker: *const rsl_breaker,
    now: Option<u64>,
    permit_out: *mut rsl_permit,
    retry_after_ns_out: *mut u64,
) -> Result {
    let b = handle::borrow_arc(breaker)?;
    handle::require_out(permit_out, "permit_out")?;
    let r = match now {
        None => b.try_acquire_raw(),
        Some(t) => b.try_acquire_raw_at(t),
    };
    match r {
        Ok(p) => handle::write(permit_out, rsl_permit { generation: p.generation }, "permit_out"),
        Err(rej) => {
            if !retry_after_ns_out.is_null() {
                handle::write(retry_after_ns_out, rej.retry_after, "retry_after_ns_out")?;
            }
            Err(RSL_ERR_REJECTED)
        }
    }
}

/// Asks to make a call now. In the closed state this is one atomic load.
///
/// On RSL_OK writes the permit to `*permit_out`; record it later, exactly
/// once, with rsl_breaker_record. On RSL_ERR_REJECTED (open, forced open, or
/// half-open with every probe out) writes to `*retry_after_ns_out` (if not
/// NULL) the nanoseconds until a call may be permitted again: the rest of
/// the wait in open; in half-open the rest of the maximum wait (0: probes are
/// in flight); UINT64_MAX when forced open. `rsl_last_error` is not set for
/// a rejection (it is an answer, not a failure).
/// Thread-safe. Returns RSL_OK, RSL_ERR_REJECTED, RSL_ERR_NULL_ARG (`breaker`
/// or `permit_out` NULL), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_try_acquire(
    breaker: *const rsl_breaker,
    permit_out: *mut rsl_permit,
    retry_after_ns_out: *mut u64,
) -> rsl_status {
    // Fast path, outside the unwind guard: `try_acquire_passing` is one
    // atomic load and cannot panic. Everything else (NULLs, a state that
    // must decide) goes through the guarded call.
    if let Some(p) = handle::peek_arc(breaker).and_then(|b| b.try_acquire_passing()) {
        if handle::try_write(permit_out, rsl_permit { generation: p.generation }) {
            return RSL_OK;
        }
    }
    try_acquire_guarded(breaker, permit_out, retry_after_ns_out)
}

// `extern "C"` (nounwind: `boundary` never lets a panic out) so that the
// fast path's caller needs no abort landing pad and can tail-call it.
#[inline(never)]
extern "C" fn try_acquire_guarded(
    breaker: *const rsl_breaker,
    permit_out: *mut rsl_permit,
    retry_after_ns_out: *mut u64,
) -> rsl_status {
    boundary(|| acquire(breaker, None, permit_out, retry_after_ns_out))
}

/// rsl_breaker_try_acquire at time `now_ns` (CLOCK_MONOTONIC ns), for hosts
/// that read the clock once per batch and for deterministic tests.
/// Thread-safe. Returns as rsl_breaker_try_acquire.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_try_acquire_at(
    breaker: *const rsl_breaker,
    now_ns: u64,
    permit_out: *mut rsl_permit,
    retry_after_ns_out: *mut u64,
) -> rsl_status {
    boundary(|| acquire(breaker, Some(now_ns), permit_out, retry_after_ns_out))
}

#[inline(always)]
fn record(
    breaker: *const rsl_breaker,
    permit: rsl_permit,
    outcome: i32,
    duration_ns: u64,
    now: Option<u64>,
) -> Result {
    let b = handle::borrow_arc(breaker)?;
    let outcome = outcome_arg(outcome)?;
    let raw = RawPermit { generation: permit.generation };
    let r = match now {
        None => b.record_raw_now(raw, outcome, duration_ns),
        Some(t) => b.record_raw(raw, outcome, duration_ns, t),
    };
    match r {
        Recorded::Counted | Recorded::Ignored => Ok(()),
        Recorded::Stale => Err(RSL_ERR_STALE),
    }
}

/// Records the result of the call `permit` was issued for: `outcome` is
/// RSL_OUTCOME_SUCCESS, RSL_OUTCOME_FAILURE or RSL_OUTCOME_IGNORED, and
/// `duration_ns` how long the call took (compared with the slow-call
/// threshold). Record each permit at most once: a second record in the
/// closed state counts as another call. May cause a state transition (and
/// run state-change callbacks on this thread).
///
/// Thread-safe. Returns RSL_OK (also for an ignored outcome or a disabled
/// breaker: nothing counted), RSL_ERR_STALE if the permit is from an earlier
/// generation (the state changed since it was issued; nothing was recorded;
/// not an error to act on), RSL_ERR_INVALID_ARG for an unknown `outcome`,
/// RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_record(
    breaker: *const rsl_breaker,
    permit: rsl_permit,
    outcome: i32,
    duration_ns: u64,
) -> rsl_status {
    // Fast path, outside the unwind guard: a fast success that changes
    // nothing (closed, healthy count window) is three loads and cannot
    // panic; anything else is recorded by the guarded call.
    if outcome == RSL_OUTCOME_SUCCESS {
        if let Some(b) = handle::peek_arc(breaker) {
            if b.record_success_unchanged(RawPermit { generation: permit.generation }, duration_ns) {
                return RSL_OK;
            }
        }
    }
    record_guarded(breaker, permit, outcome, duration_ns)
}

// `extern "C"` for the same reason as `try_acquire_guarded`.
#[inline(never)]
extern "C" fn record_guarded(
    breaker: *const rsl_breaker,
    permit: rsl_permit,
    outcome: i32,
    duration_ns: u64,
) -> rsl_status {
    boundary(|| record(breaker, permit, outcome, duration_ns, None))
}

/// rsl_breaker_record at time `now_ns` (used by time-based windows, the
/// half-open maximum wait and transition timestamps). Thread-safe. Returns
/// as rsl_breaker_record.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_record_at(
    breaker: *const rsl_breaker,
    permit: rsl_permit,
    outcome: i32,
    duration_ns: u64,
    now_ns: u64,
) -> rsl_status {
    boundary(|| record(breaker, permit, outcome, duration_ns, Some(now_ns)))
}

/// Writes the current state (RSL_BREAKER_CLOSED...) to `*state_out`. Reading
/// it never moves open to half-open. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `breaker` or `state_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_state(breaker: *const rsl_breaker, state_out: *mut i32) -> rsl_status {
    boundary(|| {
        let b = handle::borrow_arc(breaker)?;
        handle::write(state_out, b.state() as i32, "state_out")
    })
}

fn transition(breaker: *const rsl_breaker, to: i32, now: Option<u64>, generation_out: *mut u64) -> Result {
    let b = handle::borrow_arc(breaker)?;
    let to = state_arg(to)?;
    let now = now.unwrap_or_else(|| b.clock().now());
    let t = b.transition_to_at(to, now);
    if !generation_out.is_null() {
        handle::write(generation_out, t.generation, "generation_out")?;
    }
    Ok(())
}

/// Moves the breaker to state `to` now, whatever its current state:
/// RSL_BREAKER_FORCED_OPEN (force open), RSL_BREAKER_DISABLED (disable),
/// RSL_BREAKER_METRICS_ONLY, RSL_BREAKER_CLOSED (reset: an empty window),
/// RSL_BREAKER_OPEN (the wait starts) or RSL_BREAKER_HALF_OPEN (a fresh probe
/// budget). Always begins a fresh instance of the state (a new generation,
/// so permits issued before are stale), even when `to` is the current state.
/// Writes the new generation to `*generation_out` if it is not NULL. Runs
/// state-change callbacks (cause RSL_BREAKER_CAUSE_MANUAL) on this thread.
///
/// Thread-safe. Returns RSL_ERR_INVALID_ARG for an unknown state,
/// RSL_ERR_NULL_ARG if `breaker` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_transition_to(
    breaker: *const rsl_breaker,
    to: i32,
    generation_out: *mut u64,
) -> rsl_status {
    boundary(|| transition(breaker, to, None, generation_out))
}

/// rsl_breaker_transition_to at time `now_ns`. Thread-safe. Returns as
/// rsl_breaker_transition_to.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_transition_to_at(
    breaker: *const rsl_breaker,
    to: i32,
    now_ns: u64,
    generation_out: *mut u64,
) -> rsl_status {
    boundary(|| transition(breaker, to, Some(now_ns), generation_out))
}

fn poll(breaker: *const rsl_breaker, now: Option<u64>, next_ns_out: *mut u64) -> Result {
    let b = handle::borrow_arc(breaker)?;
    let next = match now {
        None => b.poll(),
        Some(t) => b.poll_at(t),
    };
    if !next_ns_out.is_null() {
        handle::write(next_ns_out, next.unwrap_or(u64::MAX), "next_ns_out")?;
    }
    Ok(())
}

/// Drives the timed transitions now, for a host timer: a half-open state
/// past its maximum wait re-opens, and with `automatic_transition` an open
/// state whose wait is over moves to half-open. Writes to `*next_ns_out`
/// (if not NULL) the CLOCK_MONOTONIC time at which to call it again, or
/// UINT64_MAX when no timed transition is pending. May run state-change
/// callbacks on this thread.
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `breaker` is NULL, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_poll(breaker: *const rsl_breaker, next_ns_out: *mut u64) -> rsl_status {
    boundary(|| poll(breaker, None, next_ns_out))
}

/// rsl_breaker_poll at time `now_ns`. Thread-safe. Returns as
/// rsl_breaker_poll.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_poll_at(
    breaker: *const rsl_breaker,
    now_ns: u64,
    next_ns_out: *mut u64,
) -> rsl_status {
    boundary(|| poll(breaker, Some(now_ns), next_ns_out))
}

/// Writes a metrics snapshot taken now to `*metrics_out` (every field,
/// reserved ones zeroed). Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `breaker` or `metrics_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_get_metrics(
    breaker: *const rsl_breaker,
    metrics_out: *mut rsl_breaker_metrics,
) -> rsl_status {
    boundary(|| {
        let b = handle::borrow_arc(breaker)?;
        handle::write(metrics_out, b.metrics().into(), "metrics_out")
    })
}

/// rsl_breaker_get_metrics at time `now_ns` (the time-based window and the time
/// in state depend on it). Thread-safe. Returns as rsl_breaker_get_metrics.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_get_metrics_at(
    breaker: *const rsl_breaker,
    now_ns: u64,
    metrics_out: *mut rsl_breaker_metrics,
) -> rsl_status {
    boundary(|| {
        let b = handle::borrow_arc(breaker)?;
        handle::write(metrics_out, b.metrics_at(now_ns).into(), "metrics_out")
    })
}

/// Writes to `*count_out` how many times the breaker has entered state
/// `state` since it was created (a transition counter hosts can poll
/// instead of registering a callback). Thread-safe.
/// Returns RSL_ERR_INVALID_ARG for an unknown state, RSL_ERR_NULL_ARG,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_transitions_to(
    breaker: *const rsl_breaker,
    state: i32,
    count_out: *mut u64,
) -> rsl_status {
    boundary(|| {
        let b = handle::borrow_arc(breaker)?;
        let state = state_arg(state)?;
        handle::write(count_out, b.transitions_to(state), "count_out")
    })
}

/// A state-change callback: `user` is the pointer given at registration;
/// `transition` is valid only during the call.
#[allow(non_camel_case_types)]
pub type rsl_breaker_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, transition: *const rsl_breaker_transition)>;

/// Releases a callback's `user` pointer when the breaker is destroyed.
#[allow(non_camel_case_types)]
pub type rsl_user_free = Option<unsafe extern "C" fn(user: *mut c_void)>;

/// A registered C callback and its user pointer; calls `user_free` on drop.
struct Listener {
    callback: unsafe extern "C" fn(*mut c_void, *const rsl_breaker_transition),
    user: *mut c_void,
    user_free: rsl_user_free,
}

// SAFETY: the C contract of rsl_breaker_on_state_change is that the callback
// may be called, and `user_free` run, on any thread, with `user`, including
// concurrently; the library never dereferences `user` itself.
unsafe impl Send for Listener {}
// SAFETY: as for Send: shared calls are allowed by the same contract.
unsafe impl Sync for Listener {}

impl Listener {
    fn call(&self, t: &Transition) {
        let t = rsl_breaker_transition::from(t);
        // SAFETY: `callback` is a non-NULL C function pointer given by the
        // host with the documented signature; `&t` is valid for the call.
        unsafe { (self.callback)(self.user, &t) }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(f) = self.user_free {
            // SAFETY: a C function pointer given by the host for exactly this
            // `user`; it runs once, when the breaker is destroyed.
            unsafe { f(self.user) }
        }
    }
}

/// Registers `callback`, called after every state change of this breaker
/// with `user` and the transition. It runs on the thread that caused the
/// change (inside rsl_breaker_try_acquire, rsl_breaker_record,
/// rsl_breaker_transition_to or rsl_breaker_poll), outside every lock of the
/// breaker, so it may call back into the breaker; two callbacks may run
/// concurrently and out of order on different threads (order them by
/// `transition->generation`). It must not unwind or longjmp out (a C++
/// callback catches its exceptions), and should be short.
///
/// Ownership: the library keeps `user` until the breaker is destroyed (last
/// reference freed, registry's included), then calls `user_free(user)` once
/// if `user_free` is not NULL, on the thread that drops the last reference:
/// inside rsl_breaker_free, rsl_breaker_registry_remove,
/// rsl_breaker_registry_get (evicting an idle breaker) or
/// rsl_breaker_registry_free, never under a lock of the library.
/// Callbacks cannot be unregistered. On an error nothing is kept and
/// `user_free` is not called.
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `breaker` or `callback` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_on_state_change(
    breaker: *const rsl_breaker,
    callback: rsl_breaker_callback,
    user: *mut c_void,
    user_free: rsl_user_free,
) -> rsl_status {
    boundary(|| {
        let b = handle::borrow_arc(breaker)?;
        let Some(callback) = callback else {
            return Err(fail(crate::status::RSL_ERR_NULL_ARG, "callback is NULL"));
        };
        let listener = Listener { callback, user, user_free };
        b.on_state_change(move |t| listener.call(t));
        Ok(())
    })
}

/// Creates an empty registry of at most `max_entries` breakers.
///
/// When full, a lookup of a new name evicts one idle breaker (closed, and
/// held by no handle outside the registry); if none is idle it fails with
/// RSL_ERR_FULL rather than grow.
/// Ownership: the caller owns `*registry_out` and frees it with
/// rsl_breaker_registry_free. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `registry_out` is NULL, RSL_ERR_INVALID_ARG
/// if `max_entries` is 0, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_registry_new(
    max_entries: usize,
    registry_out: *mut *mut rsl_breaker_registry,
) -> rsl_status {
    boundary(|| {
        handle::require_out(registry_out, "registry_out")?;
        if max_entries == 0 {
            return Err(fail(RSL_ERR_INVALID_ARG, "max_entries must be at least 1"));
        }
        handle::write(registry_out, handle::into_raw(Registry::new(max_entries)), "registry_out")
    })
}

/// Frees the registry and its references to its breakers; breakers still
/// held through rsl_breaker handles stay valid until those are freed. NULL
/// is a no-op. No other call on the registry may run concurrently or
/// afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_registry_free(registry: *mut rsl_breaker_registry) {
    boundary_or((), || handle::free(registry))
}

fn write_breaker(out: *mut *mut rsl_breaker, b: std::sync::Arc<CircuitBreaker>) -> Result {
    handle::write(out, handle::into_raw_arc(b), "breaker_out")
}

/// Looks up the breaker named by the `name_len` bytes at `name` (any bytes;
/// NULL allowed when `name_len` is 0) and creates it with `config` (NULL:
/// the defaults) if there is none; an existing breaker keeps its own config.
///
/// Ownership: `*breaker_out` is a NEW reference the caller frees with
/// rsl_breaker_free (the registry keeps its own). While the caller holds it
/// the breaker is never evicted. Thread-safe.
/// Returns RSL_ERR_FULL if the registry is full and no breaker is idle,
/// RSL_ERR_INVALID_ARG for a bad config (checked on every call, even when
/// the breaker exists),
/// RSL_ERR_NULL_ARG, RSL_ERR_TOO_LARGE (`name_len` above 1 GiB),
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_registry_get(
    registry: *const rsl_breaker_registry,
    name: *const u8,
    name_len: usize,
    config: *const rsl_breaker_config,
    breaker_out: *mut *mut rsl_breaker,
) -> rsl_status {
    boundary(|| {
        let r = handle::borrow(registry)?;
        handle::require_out(breaker_out, "breaker_out")?;
        let name = handle::bytes(name, name_len, "name")?;
        let config = read_config(config)?;
        let b = r.get_or_create(name, &config).map_err(|e| match e {
            RegistryError::Full => fail(RSL_ERR_FULL, e.to_string()),
            RegistryError::Config(_) => fail(RSL_ERR_INVALID_ARG, e.to_string()),
        })?;
        write_breaker(breaker_out, b)
    })
}

/// Looks up the breaker named `name` without creating it; on RSL_OK
/// `*breaker_out` is a NEW reference the caller frees with rsl_breaker_free.
/// Thread-safe. Returns RSL_ERR_NOT_FOUND if there is none,
/// RSL_ERR_NULL_ARG, RSL_ERR_TOO_LARGE, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_registry_find(
    registry: *const rsl_breaker_registry,
    name: *const u8,
    name_len: usize,
    breaker_out: *mut *mut rsl_breaker,
) -> rsl_status {
    boundary(|| {
        let r = handle::borrow(registry)?;
        handle::require_out(breaker_out, "breaker_out")?;
        let name = handle::bytes(name, name_len, "name")?;
        match r.get(name) {
            Some(b) => write_breaker(breaker_out, b),
            None => Err(RSL_ERR_NOT_FOUND),
        }
    })
}

/// Removes the breaker named `name` from the registry. Handles to it stay
/// valid (a working breaker, no longer in the registry); the next
/// rsl_breaker_registry_get of the name creates a new one. Thread-safe.
/// Returns RSL_ERR_NOT_FOUND if there is none, RSL_ERR_NULL_ARG,
/// RSL_ERR_TOO_LARGE, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_registry_remove(
    registry: *const rsl_breaker_registry,
    name: *const u8,
    name_len: usize,
) -> rsl_status {
    boundary(|| {
        let r = handle::borrow(registry)?;
        let name = handle::bytes(name, name_len, "name")?;
        match r.remove(name) {
            Some(b) => {
                drop(b);
                Ok(())
            }
            None => Err(RSL_ERR_NOT_FOUND),
        }
    })
}

/// Writes the number of breakers held to `*len_out`. Thread-safe.
/// Returns RSL_ERR_NULL_ARG if `registry` or `len_out` is NULL,
/// RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_breaker_registry_len(
    registry: *const rsl_breaker_registry,
    len_out: *mut usize,
) -> rsl_status {
    boundary(|| {
        let r = handle::borrow(registry)?;
        handle::write(len_out, r.len(), "len_out")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_are_fixed() {
        assert_eq!(std::mem::size_of::<rsl_breaker_config>(), 120);
        assert_eq!(std::mem::size_of::<rsl_breaker_metrics>(), 96);
        assert_eq!(std::mem::size_of::<rsl_breaker_transition>(), 32);
        assert_eq!(std::mem::size_of::<rsl_permit>(), 8);
    }

    #[test]
    fn default_config_round_trips() {
        let c = rsl_breaker_config_default();
        assert_eq!(c.to_core().unwrap(), Config::default());
        let mut bad = c;
        bad._reserved[7] = 1;
        assert_eq!(bad.to_core().unwrap_err(), RSL_ERR_INVALID_ARG);
        let time = rsl_breaker_config { window_type: RSL_BREAKER_WINDOW_TIME, window_size: 10, ..c };
        assert_eq!(time.to_core().unwrap().sliding_window, SlidingWindow::TimeBased { seconds: 10 });
    }

    #[test]
    fn codes_match_the_core_enums() {
        for s in State::ALL {
            assert_eq!(state_arg(s as i32).unwrap(), s);
        }
        assert!(state_arg(6).is_err() && state_arg(-1).is_err() && state_arg(256).is_err());
        assert_eq!(outcome_arg(RSL_OUTCOME_SUCCESS).unwrap(), Outcome::Success);
        assert_eq!(outcome_arg(RSL_OUTCOME_FAILURE).unwrap(), Outcome::Failure);
        assert_eq!(outcome_arg(RSL_OUTCOME_IGNORED).unwrap(), Outcome::Ignored);
        assert!(outcome_arg(3).is_err());
        assert_eq!(RSL_BREAKER_FORCED_OPEN, State::ForcedOpen as i32);
        assert_eq!(RSL_BREAKER_METRICS_ONLY, State::MetricsOnly as i32);
    }
}
