//! Circuit breakers: lock-free state machines with count- and time-based
//! sliding windows.
//!
//! The behaviour is Resilience4j's `CircuitBreaker`:
//!
//! - **Closed**: calls pass; each result enters the sliding window. Once the
//!   window holds at least the minimum number of calls, a failure rate or a
//!   slow-call rate *at or above* its threshold opens the breaker.
//! - **Open**: calls are rejected with the time left until the next probe.
//!   After `wait_in_open` the next `try_acquire` moves to half-open (or a host
//!   timer calling [`CircuitBreaker::poll_at`] does, when automatic transition
//!   is on).
//! - **Half-open**: `permitted_calls_in_half_open` probes pass; when all of
//!   them have a result, a failure (or slow) rate at or above the threshold
//!   re-opens the breaker, otherwise it closes. With 3 probes and a 50 %
//!   threshold, one failure (33 %) closes it; two re-open it. An ignored
//!   result gives its probe slot back. If `max_wait_in_half_open` is set and
//!   the probes have not all finished in time, the breaker re-opens.
//! - **Disabled**, **forced-open**, **metrics-only**: entered and left only
//!   by hand; they let every call through without recording, reject every
//!   call, or record without ever opening.
//!
//! Two complaints about the reference implementations are fixed by design:
//! every permit carries the **generation** of the state that issued it (a
//! counter bumped by every transition), and a result whose generation is not
//! the current one is reported [`Recorded::Stale`] and counted nowhere; and a
//! half-open state whose probes never return is bounded by
//! `max_wait_in_half_open` (and by the [`DropPolicy`] of dropped permits).
//!
//! # Example
//!
//! ```
//! use resilience::breaker::{CircuitBreaker, Config, Outcome, State};
//! use resilience::clock::MILLISECOND;
//!
//! let breaker = CircuitBreaker::new(
//!     Config::default().count_window(10).minimum_calls(5).failure_rate_threshold(50.0),
//! )
//! .expect("valid config");
//! for _ in 0..5 {
//!     match breaker.try_acquire() {
//!         // ... make the call, then say how it went and how long it took:
//!         Ok(permit) => {
//!             permit.record(Outcome::Failure, 3 * MILLISECOND);
//!         }
//!         Err(rejected) => println!("not now: retry in {} ns", rejected.retry_after),
//!     }
//! }
//! assert_eq!(breaker.state(), State::Open);
//! // Or let the breaker run and classify the call:
//! let r = breaker.call(|| Ok::<_, std::io::Error>(42));
//! assert!(r.is_err(), "rejected while open");
//! ```
//!
//! # Concurrency
//!
//! The state and generation live in one atomic word. In the closed state
//! `try_acquire` is one atomic load; recording a result updates the window
//! with atomics only (an epoch-tagged ring of outcome slots with one
//! aggregate word, or epoch-tagged per-second counters); a fast success into
//! a full window of fast successes writes nothing at all. The half-open probe budget is one atomic word (a CAS never
//! issues more probes than permitted). Transitions are rare and run under a
//! small mutex that no hot path takes; they publish the new state with one
//! release store after resetting the window, so no thread ever sees a new
//! generation with the old state's data. State-change callbacks run after
//! that mutex is released, on the thread that caused the transition; they may
//! call back into the breaker. Two callbacks may run concurrently and out of
//! order on different threads: order them by [`Transition::generation`].

mod config;
#[doc(hidden)]
pub mod model;
mod registry;
mod state;
mod window;

pub use config::{
    Config, ConfigError, DropPolicy, SlidingWindow, MAX_COUNT_WINDOW, MAX_HALF_OPEN_CALLS,
    MAX_TIME_WINDOW_SECONDS,
};
pub use registry::{Registry, RegistryError};
pub use state::State;

use crate::clock::{Clock, MonotonicClock, Nanos};
use crate::sync::{Arc, AtomicU64, CachePadded, Mutex, Ordering};
use state::{generation_of, half, pack, state_of};
use std::fmt;
use window::{CountWindow, TimeWindow, Window, Write, FAILED, PRESENT, SLOW};

/// How a call went, as the caller classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// Counts as a successful call (slow if it took too long).
    Success = 0,
    /// Counts as a failed call (slow if it took too long).
    Failure = 1,
    /// Not counted at all; in half-open the probe slot is given back.
    Ignored = 2,
}

impl Outcome {
    /// The outcome with this code, if any (for values coming from C).
    pub fn from_u8(code: u8) -> Option<Outcome> {
        match code {
            0 => Some(Outcome::Success),
            1 => Some(Outcome::Failure),
            2 => Some(Outcome::Ignored),
            _ => None,
        }
    }
}

/// What recording a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Recorded {
    /// The result was counted by the state that issued the permit.
    Counted = 0,
    /// Nothing was counted: the outcome was [`Outcome::Ignored`], or the
    /// breaker is disabled.
    Ignored = 1,
    /// The permit belongs to an earlier generation (the state changed since
    /// it was issued, or a half-open probe came back after the maximum wait);
    /// the result was not counted.
    Stale = 2,
}

/// A call was not permitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Nanoseconds until a call may be permitted again: the rest of the wait
    /// in open; in half-open with every probe out, the rest of the maximum
    /// wait (0 when there is none: probes are in flight); `u64::MAX` when
    /// forced open (only a manual transition ends it).
    pub retry_after: Nanos,
    /// The state that refused.
    pub state: State,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker is {}; retry after {} ns", self.state.name(), self.retry_after)
    }
}

impl std::error::Error for Rejected {}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The failure rate reached its threshold (closed or half-open).
    FailureRate,
    /// The slow-call rate reached its threshold (closed or half-open).
    SlowCallRate,
    /// The wait in open was over.
    WaitElapsed,
    /// Every half-open probe finished below both thresholds.
    ProbesPassed,
    /// The half-open probes did not finish within the maximum wait.
    HalfOpenTimeout,
    /// A manual transition (`force_open`, `reset`, ...).
    Manual,
}

/// A state change, as given to [`CircuitBreaker::on_state_change`] callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// The generation of the new state (one more than the old one's).
    pub generation: u64,
    /// When it happened.
    pub at: Nanos,
    /// Why.
    pub cause: Cause,
}

/// A snapshot of a breaker's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// The current state.
    pub state: State,
    /// The current generation (number of transitions since creation).
    pub generation: u64,
    /// Calls in the current window: the closed window (also shown while open
    /// and in metrics-only), or the half-open probes that have finished.
    /// Zero when disabled or forced open.
    pub calls: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which slow (a call can be both failed and slow).
    pub slow: u64,
    /// `failed / calls` in percent, or `None` below the minimum number of
    /// calls (Resilience4j reports -1 there).
    pub failure_rate: Option<f32>,
    /// `slow / calls` in percent, or `None` below the minimum number of calls.
    pub slow_call_rate: Option<f32>,
    /// Calls rejected since the breaker was created (cumulative, unlike
    /// Resilience4j's per-state count, so that it can feed a counter metric).
    pub not_permitted: u64,
    /// Time since the current state was entered.
    pub time_in_state: Nanos,
}

/// A permit in plain data, for hosts that cannot hold a [`Permit`] (the C
/// ABI): no destructor, copyable. Give it back exactly once with
/// [`CircuitBreaker::record_raw`]; a raw permit never recorded is simply
/// forgotten (in half-open its probe slot stays taken until the state
/// changes, so set `max_wait_in_half_open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct RawPermit {
    /// The generation of the state that issued the permit.
    pub generation: u64,
}

/// Why [`CircuitBreaker::call`] did not return the call's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused the call; `f` did not run.
    Rejected(Rejected),
    /// `f` ran and returned this error.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for CallError<E> {}

type Listener = Box<dyn Fn(&Transition) + Send + Sync>;

/// Whether a half-open state with `deadline` ([`u64::MAX`]: none) has run
/// out at `now`. `u64::MAX` stays "none" even at `now == u64::MAX`: read as
/// a deadline there, it would bounce Open -> HalfOpen -> Open forever, since
/// the open wait saturates to the same instant.
#[inline]
fn half_open_timed_out(deadline: Nanos, now: Nanos) -> bool {
    deadline != u64::MAX && now >= deadline
}

/// Data that only transitions write (under `lock`) and rejections read.
#[derive(Debug)]
struct Cold {
    /// When the open state's wait ends.
    open_until: AtomicU64,
    /// When the half-open state times out (`u64::MAX`: never).
    half_open_deadline: AtomicU64,
    /// When the current state began.
    state_since: AtomicU64,
    /// The generation (epoch) of the last closed or metrics-only window.
    window_gen: AtomicU64,
    not_permitted: AtomicU64,
    /// Transitions into each state, indexed by `State as usize`.
    entered: [AtomicU64; 6],
}

/// A circuit breaker. Share it by reference or `Arc`; every method is
/// thread-safe. `C` is the time source ([`MonotonicClock`] unless built with
/// [`CircuitBreaker::with_clock`]).
pub struct CircuitBreaker<C: Clock = MonotonicClock> {
    /// `generation << 3 | state`: the only word the closed hot path reads.
    state: CachePadded<AtomicU64>,
    window: Window,
    /// The half-open probe budget and results ([`half`]).
    half: CachePadded<AtomicU64>,
    cold: Cold,
    /// Serialises transitions (never taken on the closed hot path).
    lock: Mutex<()>,
    listeners: Mutex<Arc<Vec<Arc<Listener>>>>,
    config: Config,
    clock: C,
}

impl<C: Clock> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .field("generation", &self.generation())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker<MonotonicClock> {
    /// A closed breaker on the monotonic clock, or the reason `config` is bad.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Self::with_clock(config, MonotonicClock)
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// A closed breaker reading time from `clock`.
    pub fn with_clock(config: Config, clock: C) -> Result<Self, ConfigError> {
        config.validate()?;
        let window = match config.sliding_window {
            SlidingWindow::CountBased { size } => Window::Count(CountWindow::new(size, 0)),
            SlidingWindow::TimeBased { seconds } => Window::Time(TimeWindow::new(seconds)),
        };
        let now = clock.now();
        Ok(Self {
            state: CachePadded(AtomicU64::new(pack(State::Closed, 0))),
            window,
            half: CachePadded(AtomicU64::new(half::fresh(u64::MAX))),
            cold: Cold {
                open_until: AtomicU64::new(0),
                half_open_deadline: AtomicU64::new(u64::MAX),
                state_since: AtomicU64::new(now),
                window_gen: AtomicU64::new(0),
                not_permitted: AtomicU64::new(0),
                entered: [0; 6].map(AtomicU64::new),
            },
            lock: Mutex::new(()),
            listeners: Mutex::new(Arc::new(Vec::new())),
            config,
            clock,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The time source.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The current state (as last published; open is not moved to half-open
    /// by reading it).
    pub fn state(&self) -> State {
        state_of(self.state.load(Ordering::Acquire))
    }

    /// The current generation: the number of transitions so far.
    pub fn generation(&self) -> u64 {
        generation_of(self.state.load(Ordering::Acquire))
    }

    /// Asks to make a call now. In the closed state this is one atomic load.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Rejected> {
        let word = self.state.load(Ordering::Acquire);
        let generation = if state_of(word).passes() {
            generation_of(word)
        } else {
            self.acquire_slow(word, self.clock.now())?
        };
        Ok(Permit { breaker: self, generation })
    }

    /// [`try_acquire`](Self::try_acquire) at time `now`.
    #[inline]
    pub fn try_acquire_at(&self, now: Nanos) -> Result<Permit<'_, C>, Rejected> {
        let generation = self.acquire_raw(now)?.generation;
        Ok(Permit { breaker: self, generation })
    }

    /// Asks to make a call now; the permit is plain data (see [`RawPermit`]).
    #[inline]
    pub fn try_acquire_raw(&self) -> Result<RawPermit, Rejected> {
        let word = self.state.load(Ordering::Acquire);
        if state_of(word).passes() {
            return Ok(RawPermit { generation: generation_of(word) });
        }
        let generation = self.acquire_slow_now(word)?;
        Ok(RawPermit { generation })
    }

    /// The permit when the state lets calls through (closed, disabled,
    /// metrics-only: one atomic load), else `None`, and then
    /// [`try_acquire_raw`](Self::try_acquire_raw) decides. Never panics, so a
    /// caller may run it outside an unwind guard (the C ABI's fast path).
    #[inline(always)]
    pub fn try_acquire_passing(&self) -> Option<RawPermit> {
        let word = self.state.load(Ordering::Acquire);
        state_of(word).passes().then(|| RawPermit { generation: generation_of(word) })
    }

    /// Records a fast success for `permit` when that changes nothing: the
    /// breaker is closed (or metrics-only) in the permit's generation, the
    /// call was not slow, and the count window is already full of fast
    /// successes. Returns false, having recorded nothing, in every other
    /// case; then [`record_raw_now`](Self::record_raw_now) records it. Never
    /// panics (see [`try_acquire_passing`](Self::try_acquire_passing)).
    #[inline(always)]
    pub fn record_success_unchanged(&self, permit: RawPermit, duration: Nanos) -> bool {
        let word = self.state.load(Ordering::Acquire);
        generation_of(word) == permit.generation
            && matches!(state_of(word), State::Closed | State::MetricsOnly)
            && !self.config.is_slow(duration)
            && self.window.healthy(permit.generation)
    }

    /// The clock read of the slow path stays out of the fast path's body.
    #[cold]
    #[inline(never)]
    fn acquire_slow_now(&self, word: u64) -> Result<u64, Rejected> {
        self.acquire_slow(word, self.clock.now())
    }

    /// [`try_acquire_raw`](Self::try_acquire_raw) at time `now`.
    #[inline]
    pub fn try_acquire_raw_at(&self, now: Nanos) -> Result<RawPermit, Rejected> {
        self.acquire_raw(now)
    }

    #[inline]
    fn acquire_raw(&self, now: Nanos) -> Result<RawPermit, Rejected> {
        let word = self.state.load(Ordering::Acquire);
        let generation =
            if state_of(word).passes() { generation_of(word) } else { self.acquire_slow(word, now)? };
        Ok(RawPermit { generation })
    }

    #[cold]
    fn acquire_slow(&self, mut word: u64, now: Nanos) -> Result<u64, Rejected> {
        loop {
            let gen = generation_of(word);
            match state_of(word) {
                State::Closed | State::Disabled | State::MetricsOnly => return Ok(gen),
                State::ForcedOpen => return Err(self.reject(u64::MAX, State::ForcedOpen)),
                State::Open => {
                    let until = self.cold.open_until.load(Ordering::Acquire);
                    if now < until {
                        return Err(self.reject(until - now, State::Open));
                    }
                    self.transition_from(word, State::HalfOpen, Cause::WaitElapsed, now);
                }
                State::HalfOpen => {
                    let deadline = self.cold.half_open_deadline.load(Ordering::Acquire);
                    if half_open_timed_out(deadline, now) {
                        self.transition_from(word, State::Open, Cause::HalfOpenTimeout, now);
                    } else {
                        let retry = if deadline == u64::MAX { 0 } else { deadline - now };
                        return self.take_probe(gen, retry);
                    }
                }
            }
            word = self.state.load(Ordering::Acquire);
        }
    }

    /// Takes one half-open probe slot of generation `gen`.
    fn take_probe(&self, gen: u64, retry_after: Nanos) -> Result<u64, Rejected> {
        let permitted = self.config.permitted_calls_in_half_open as u64;
        let mut w = self.half.load(Ordering::Acquire);
        loop {
            // A different tag: that half-open state has ended meanwhile.
            let mut h = half::decode(w);
            if !half::is_of(w, gen) || h.issued >= permitted {
                return Err(self.reject(retry_after, State::HalfOpen));
            }
            h.issued += 1;
            match self.half.compare_exchange_weak(w, half::encode(w, h), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(gen),
                Err(seen) => w = seen,
            }
        }
    }

    fn reject(&self, retry_after: Nanos, state: State) -> Rejected {
        self.cold.not_permitted.fetch_add(1, Ordering::Relaxed);
        Rejected { retry_after, state }
    }

    /// Records the result of the call `permit` was issued for. `duration` is
    /// how long the call took (compared with the slow-call threshold); `now`
    /// is the current time (used by time-based windows, the half-open maximum
    /// wait and transition timestamps). Record each raw permit at most once:
    /// a second record in the closed state counts as another call.
    pub fn record_raw(&self, permit: RawPermit, outcome: Outcome, duration: Nanos, now: Nanos) -> Recorded {
        self.record(permit.generation, outcome, duration, Some(now))
    }

    /// [`record_raw`](Self::record_raw) at the clock's now, read only when
    /// the result needs it (a time-based window, half-open, a transition), as
    /// [`Permit::record`] does: the C ABI's hot path.
    #[inline]
    pub fn record_raw_now(&self, permit: RawPermit, outcome: Outcome, duration: Nanos) -> Recorded {
        self.record(permit.generation, outcome, duration, None)
    }

    #[inline]
    fn now_or(&self, now: Option<Nanos>) -> Nanos {
        match now {
            Some(t) => t,
            None => self.clock.now(),
        }
    }

    #[inline]
    fn record(&self, gen: u64, outcome: Outcome, duration: Nanos, now: Option<Nanos>) -> Recorded {
        let word = self.state.load(Ordering::Acquire);
        if generation_of(word) != gen {
            return Recorded::Stale;
        }
        let state = state_of(word);
        match state {
            State::Closed | State::MetricsOnly => {
                let bits = match outcome {
                    Outcome::Ignored => return Recorded::Ignored,
                    Outcome::Success => PRESENT,
                    Outcome::Failure => PRESENT | FAILED,
                } | if self.config.is_slow(duration) { SLOW } else { 0 };
                match self.window.record(gen, bits, || self.now_or(now)) {
                    Write::Stale => Recorded::Stale,
                    Write::Unchanged => Recorded::Counted,
                    Write::Changed(c) => {
                        if state == State::Closed && c.calls >= self.config.effective_minimum_calls() as u64 {
                            let cause = if Config::rate_reaches(
                                c.failed,
                                c.calls,
                                self.config.failure_rate_threshold,
                            ) {
                                Some(Cause::FailureRate)
                            } else if Config::rate_reaches(
                                c.slow,
                                c.calls,
                                self.config.slow_call_rate_threshold,
                            ) {
                                Some(Cause::SlowCallRate)
                            } else {
                                None
                            };
                            if let Some(cause) = cause {
                                self.transition_from(word, State::Open, cause, self.now_or(now));
                            }
                        }
                        Recorded::Counted
                    }
                }
            }
            State::HalfOpen => self.record_probe(word, outcome, duration, self.now_or(now)),
            State::Disabled => Recorded::Ignored,
            // No permit is ever issued with these generations.
            State::Open | State::ForcedOpen => Recorded::Stale,
        }
    }

    #[cold]
    fn record_probe(&self, word: u64, outcome: Outcome, duration: Nanos, now: Nanos) -> Recorded {
        let gen = generation_of(word);
        if half_open_timed_out(self.cold.half_open_deadline.load(Ordering::Acquire), now) {
            self.transition_from(word, State::Open, Cause::HalfOpenTimeout, now);
            return Recorded::Stale;
        }
        let slow = self.config.is_slow(duration) as u64;
        let mut w = self.half.load(Ordering::Acquire);
        let after = loop {
            if !half::is_of(w, gen) {
                return Recorded::Stale;
            }
            let mut h = half::decode(w);
            // Never more results than permits out (a raw permit recorded twice).
            if h.completed >= h.issued {
                return Recorded::Stale;
            }
            match outcome {
                Outcome::Ignored => h.issued -= 1,
                Outcome::Success | Outcome::Failure => {
                    h.completed += 1;
                    h.failed += (outcome == Outcome::Failure) as u64;
                    h.slow += slow;
                }
            }
            match self.half.compare_exchange_weak(w, half::encode(w, h), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break h,
                Err(seen) => w = seen,
            }
        };
        if outcome == Outcome::Ignored {
            return Recorded::Ignored;
        }
        // Exactly one result completes the budget: it decides.
        if after.completed == self.config.permitted_calls_in_half_open as u64 {
            let (to, cause) =
                if Config::rate_reaches(after.failed, after.completed, self.config.failure_rate_threshold) {
                    (State::Open, Cause::FailureRate)
                } else if Config::rate_reaches(
                    after.slow,
                    after.completed,
                    self.config.slow_call_rate_threshold,
                ) {
                    (State::Open, Cause::SlowCallRate)
                } else {
                    (State::Closed, Cause::ProbesPassed)
                };
            self.transition_from(word, to, cause, now);
        }
        Recorded::Counted
    }

    /// Runs `f` if the breaker permits it and records the outcome: `Ok` is a
    /// success, `Err` a failure; the duration is measured with the clock.
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_with(|r: &Result<T, E>| if r.is_ok() { Outcome::Success } else { Outcome::Failure }, f)
    }

    /// Runs `f` if the breaker permits it and records what `classify` makes
    /// of its result (e.g. `Outcome::Ignored` for a client error, `Failure`
    /// for an `Ok` carrying a 503).
    pub fn call_with<T, E>(
        &self,
        classify: impl Fn(&Result<T, E>) -> Outcome,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let start = self.clock.now();
        let result = f();
        let end = self.clock.now();
        permit.record_at(classify(&result), end.saturating_sub(start), end);
        result.map_err(CallError::Inner)
    }

    /// Drives the timed transitions at `now`, for a host or runtime timer: a
    /// half-open state past its maximum wait re-opens, and, when automatic
    /// transition is on, an open state whose wait is over moves to half-open.
    /// Returns when to call it next (`None`: no timed transition is pending).
    pub fn poll_at(&self, now: Nanos) -> Option<Nanos> {
        for _ in 0..4 {
            let word = self.state.load(Ordering::Acquire);
            match state_of(word) {
                State::Open if self.config.automatic_transition_from_open_to_half_open => {
                    let until = self.cold.open_until.load(Ordering::Acquire);
                    if now < until {
                        return Some(until);
                    }
                    self.transition_from(word, State::HalfOpen, Cause::WaitElapsed, now);
                }
                State::HalfOpen => {
                    let deadline = self.cold.half_open_deadline.load(Ordering::Acquire);
                    if deadline == u64::MAX {
                        return None;
                    }
                    if now < deadline {
                        return Some(deadline);
                    }
                    self.transition_from(word, State::Open, Cause::HalfOpenTimeout, now);
                }
                _ => return None,
            }
        }
        None
    }

    /// [`poll_at`](Self::poll_at) now.
    pub fn poll(&self) -> Option<Nanos> {
        self.poll_at(self.clock.now())
    }

    /// A metrics snapshot now.
    pub fn metrics(&self) -> Metrics {
        self.metrics_at(self.clock.now())
    }

    /// A metrics snapshot at `now` (the time-based window and the time in
    /// state depend on it).
    pub fn metrics_at(&self, now: Nanos) -> Metrics {
        let word = self.state.load(Ordering::Acquire);
        let state = state_of(word);
        let gen = generation_of(word);
        // Open straight from half-open reports the probes that re-opened it
        // (as Resilience4j does), not the closed window from before. The
        // half-open counters carry a 24-bit generation tag: only after 2^24
        // transitions in between could an older half-open be mistaken for it.
        let w = self.half.load(Ordering::Acquire);
        let probes = match state {
            State::HalfOpen => Some(gen),
            State::Open if half::is_of(w, gen.wrapping_sub(1)) => Some(gen.wrapping_sub(1)),
            _ => None,
        };
        let (calls, failed, slow, minimum) = match (state, probes) {
            (_, Some(tag)) => {
                let h = if half::is_of(w, tag) { half::decode(w) } else { half::decode(half::fresh(tag)) };
                (h.completed, h.failed, h.slow, self.config.permitted_calls_in_half_open as u64)
            }
            (State::Disabled | State::ForcedOpen, _) => (0, 0, 0, u64::MAX),
            _ => {
                let c = self.window.counts(self.cold.window_gen.load(Ordering::Acquire), now);
                (c.calls, c.failed, c.slow, self.config.effective_minimum_calls() as u64)
            }
        };
        let rate = |part: u64| (calls >= minimum && calls > 0).then(|| part as f32 * 100.0 / calls as f32);
        Metrics {
            state,
            generation: gen,
            calls,
            failed,
            slow,
            failure_rate: rate(failed),
            slow_call_rate: rate(slow),
            not_permitted: self.cold.not_permitted.load(Ordering::Relaxed),
            time_in_state: now.saturating_sub(self.cold.state_since.load(Ordering::Acquire)),
        }
    }

    /// How many times the breaker has entered `state`.
    pub fn transitions_to(&self, state: State) -> u64 {
        self.cold.entered[state as usize].load(Ordering::Relaxed)
    }

    /// Registers a callback run after every state change, outside every lock
    /// of the breaker, on the thread that caused the change (see the module
    /// documentation for ordering). A callback that panics propagates the
    /// panic to that thread after the transition is complete.
    pub fn on_state_change(&self, f: impl Fn(&Transition) + Send + Sync + 'static) {
        let mut list = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Arc<Listener>> = list.iter().cloned().collect();
        next.push(Arc::new(Box::new(f)));
        *list = Arc::new(next);
    }

    /// Forces the breaker open now: every call is rejected until a manual
    /// transition.
    pub fn force_open(&self) -> Transition {
        self.transition_to_at(State::ForcedOpen, self.clock.now())
    }

    /// Disables the breaker now: every call passes, nothing is recorded.
    pub fn disable(&self) -> Transition {
        self.transition_to_at(State::Disabled, self.clock.now())
    }

    /// Switches to metrics-only now: calls pass and are recorded in a fresh
    /// window; the breaker never opens by itself.
    pub fn metrics_only(&self) -> Transition {
        self.transition_to_at(State::MetricsOnly, self.clock.now())
    }

    /// Resets the breaker now: closed, with an empty window.
    pub fn reset(&self) -> Transition {
        self.transition_to_at(State::Closed, self.clock.now())
    }

    /// Moves to closed (an empty window) now.
    pub fn transition_to_closed(&self) -> Transition {
        self.transition_to_at(State::Closed, self.clock.now())
    }

    /// Moves to open (the wait starts) now.
    pub fn transition_to_open(&self) -> Transition {
        self.transition_to_at(State::Open, self.clock.now())
    }

    /// Moves to half-open (a fresh probe budget) now.
    pub fn transition_to_half_open(&self) -> Transition {
        self.transition_to_at(State::HalfOpen, self.clock.now())
    }

    /// Moves to `to` at `now`, whatever the current state. A manual
    /// transition always begins a fresh instance of the state (a new
    /// generation, an empty window or probe budget), even when `to` is the
    /// current state, and is reported to callbacks with [`Cause::Manual`].
    pub fn transition_to_at(&self, to: State, now: Nanos) -> Transition {
        let t = {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            let cur = self.state.load(Ordering::Acquire);
            self.enter(cur, to, Cause::Manual, now)
        };
        self.notify(&t);
        t
    }

    /// Moves from exactly `expected` (state and generation) to `to`; does
    /// nothing if another thread changed the state first.
    fn transition_from(&self, expected: u64, to: State, cause: Cause, now: Nanos) -> bool {
        let t = {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            if self.state.load(Ordering::Acquire) != expected {
                return false;
            }
            self.enter(expected, to, cause, now)
        };
        self.notify(&t);
        true
    }

    /// Prepares the data of state `to` and publishes it. Caller holds `lock`.
    fn enter(&self, cur: u64, to: State, cause: Cause, now: Nanos) -> Transition {
        let gen = generation_of(cur) + 1;
        match to {
            State::Closed | State::MetricsOnly => {
                self.window.reset(gen);
                self.cold.window_gen.store(gen, Ordering::Release);
            }
            State::Open => {
                self.cold.open_until.store(now.saturating_add(self.config.wait_in_open), Ordering::Release);
            }
            State::HalfOpen => {
                self.half.store(half::fresh(gen), Ordering::Release);
                let max = self.config.max_wait_in_half_open;
                let deadline = if max == 0 { u64::MAX } else { now.saturating_add(max) };
                self.cold.half_open_deadline.store(deadline, Ordering::Release);
            }
            State::Disabled | State::ForcedOpen => {}
        }
        self.cold.state_since.store(now, Ordering::Release);
        self.cold.entered[to as usize].fetch_add(1, Ordering::Relaxed);
        self.state.store(pack(to, gen), Ordering::Release);
        Transition { from: state_of(cur), to, generation: gen, at: now, cause }
    }

    fn notify(&self, t: &Transition) {
        let list = {
            let guard = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_empty() {
                return;
            }
            Arc::clone(&guard)
        };
        for f in list.iter() {
            f(t);
        }
    }
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`]. It
/// borrows the breaker; to carry a permit elsewhere (an async task, another
/// thread), turn it into a [`RawPermit`] with [`Permit::into_raw`]. Give
/// the result with [`success`](Permit::success), [`failure`](Permit::failure),
/// [`ignore`](Permit::ignore) or [`record`](Permit::record). A permit dropped
/// without a result counts as the breaker's [`DropPolicy`] says (by default,
/// ignored).
#[must_use = "a permit records its call's result; dropping it applies the drop policy"]
pub struct Permit<'a, C: Clock = MonotonicClock> {
    breaker: &'a CircuitBreaker<C>,
    generation: u64,
}

impl<C: Clock> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("generation", &self.generation).finish()
    }
}

impl<'a, C: Clock> Permit<'a, C> {
    /// The generation of the state that issued this permit.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records a success that took `duration`.
    #[inline]
    pub fn success(self, duration: Nanos) -> Recorded {
        self.finish(Outcome::Success, duration, None)
    }

    /// Records a failure that took `duration`.
    #[inline]
    pub fn failure(self, duration: Nanos) -> Recorded {
        self.finish(Outcome::Failure, duration, None)
    }

    /// Records nothing (in half-open, gives the probe slot back).
    #[inline]
    pub fn ignore(self) -> Recorded {
        self.finish(Outcome::Ignored, 0, None)
    }

    /// Records `outcome` for a call that took `duration`.
    #[inline]
    pub fn record(self, outcome: Outcome, duration: Nanos) -> Recorded {
        self.finish(outcome, duration, None)
    }

    /// [`success`](Self::success) at time `now`.
    #[inline]
    pub fn success_at(self, duration: Nanos, now: Nanos) -> Recorded {
        self.finish(Outcome::Success, duration, Some(now))
    }

    /// [`failure`](Self::failure) at time `now`.
    #[inline]
    pub fn failure_at(self, duration: Nanos, now: Nanos) -> Recorded {
        self.finish(Outcome::Failure, duration, Some(now))
    }

    /// [`ignore`](Self::ignore) at time `now`.
    #[inline]
    pub fn ignore_at(self, now: Nanos) -> Recorded {
        self.finish(Outcome::Ignored, 0, Some(now))
    }

    /// [`record`](Self::record) at time `now`.
    #[inline]
    pub fn record_at(self, outcome: Outcome, duration: Nanos, now: Nanos) -> Recorded {
        self.finish(outcome, duration, Some(now))
    }

    /// Turns the permit into plain data without recording anything; give it
    /// back later with [`CircuitBreaker::record_raw`].
    pub fn into_raw(self) -> RawPermit {
        let raw = RawPermit { generation: self.generation };
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn finish(self, outcome: Outcome, duration: Nanos, now: Option<Nanos>) -> Recorded {
        let (breaker, generation) = (self.breaker, self.generation);
        std::mem::forget(self);
        breaker.record(generation, outcome, duration, now)
    }
}

impl<C: Clock> Drop for Permit<'_, C> {
    fn drop(&mut self) {
        let outcome = match self.breaker.config.drop_policy {
            DropPolicy::Ignore => Outcome::Ignored,
            DropPolicy::Failure => Outcome::Failure,
        };
        self.breaker.record(self.generation, outcome, 0, None);
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, MILLISECOND, SECOND};
    use std::sync::atomic::AtomicUsize;

    fn breaker(config: Config) -> CircuitBreaker<ManualClock> {
        CircuitBreaker::with_clock(config, ManualClock::default()).expect("valid config")
    }

    #[test]
    fn closed_opens_at_threshold_after_minimum_calls() {
        let b = breaker(Config::default().count_window(10).minimum_calls(5));
        for _ in 0..4 {
            assert_eq!(b.try_acquire().unwrap().failure(MILLISECOND), Recorded::Counted);
        }
        assert_eq!(b.state(), State::Closed, "below the minimum number of calls");
        assert_eq!(b.try_acquire().unwrap().success(MILLISECOND), Recorded::Counted);
        assert_eq!(b.state(), State::Open, "4/5 = 80% >= 50%");
        let r = b.try_acquire().unwrap_err();
        assert_eq!(r.state, State::Open);
        assert_eq!(r.retry_after, 60 * SECOND);
        assert_eq!(b.metrics().not_permitted, 1);
    }

    /// The C ABI's fast paths (`try_acquire_passing`, then
    /// `record_success_unchanged` before `record_raw_now`) leave a breaker
    /// exactly where the full calls leave a twin, step by step, through
    /// failures, slow calls, stale permits, open and half-open, with count
    /// and time windows.
    #[test]
    fn fast_paths_match_the_full_calls() {
        for config in [
            Config::default().count_window(8).minimum_calls(4).slow_call_duration_threshold(50 * MILLISECOND),
            Config::default().time_window(2).minimum_calls(4),
        ] {
            let (fast, full) = (breaker(config), breaker(config));
            let mut x = 7u64;
            let mut held: Vec<RawPermit> = Vec::new();
            let mut fast_hits = 0;
            for step in 0..5_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (x >> 33) % 100;
                if r < 45 {
                    let a = fast.try_acquire_passing().map_or_else(|| fast.try_acquire_raw(), Ok);
                    let b = full.try_acquire_raw();
                    assert_eq!(
                        a.as_ref().map(|p| p.generation),
                        b.as_ref().map(|p| p.generation),
                        "step {step}"
                    );
                    if let Ok(p) = a {
                        held.push(p);
                    }
                } else if r < 90 && !held.is_empty() {
                    let p = held.swap_remove((x >> 12) as usize % held.len());
                    let (outcome, duration) = match (x >> 20) % 10 {
                        0 => (Outcome::Failure, MILLISECOND),
                        1 => (Outcome::Success, 80 * MILLISECOND),
                        2 => (Outcome::Ignored, 0),
                        _ => (Outcome::Success, MILLISECOND),
                    };
                    let a = if outcome == Outcome::Success && fast.record_success_unchanged(p, duration) {
                        fast_hits += 1;
                        Recorded::Counted
                    } else {
                        fast.record_raw_now(p, outcome, duration)
                    };
                    assert_eq!(a, full.record_raw_now(p, outcome, duration), "step {step}");
                } else {
                    fast.clock().advance(300 * MILLISECOND);
                    full.clock().advance(300 * MILLISECOND);
                }
                assert_eq!(fast.state(), full.state(), "step {step}");
                assert_eq!(fast.metrics(), full.metrics(), "step {step}");
            }
            assert!(fast.transitions_to(State::Open) > 0 && fast.transitions_to(State::Closed) > 0);
            let counted = matches!(fast.config().sliding_window, SlidingWindow::CountBased { .. });
            assert_eq!(fast_hits > 0, counted, "the fast record serves healthy count windows only");
        }
    }

    #[test]
    fn raw_permits_record_at_the_clocks_now() {
        let b = breaker(Config::default().count_window(2).minimum_calls(2));
        let p = b.try_acquire_raw().unwrap();
        assert_eq!(b.record_raw_now(p, Outcome::Failure, MILLISECOND), Recorded::Counted);
        b.clock().advance(5 * SECOND);
        let q = b.try_acquire_raw().unwrap();
        assert_eq!(b.record_raw_now(q, Outcome::Failure, MILLISECOND), Recorded::Counted);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.metrics().time_in_state, 0, "the transition was stamped with the clock's now");
        assert_eq!(b.record_raw_now(p, Outcome::Success, 0), Recorded::Stale);
        assert_eq!(b.try_acquire_raw().unwrap_err().retry_after, 60 * SECOND);
    }

    #[test]
    fn dropped_permit_follows_policy() {
        let b = breaker(Config::default().count_window(2).minimum_calls(1));
        drop(b.try_acquire().unwrap());
        assert_eq!(b.metrics().calls, 0);
        let b = breaker(Config::default().count_window(2).minimum_calls(1).drop_policy(DropPolicy::Failure));
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), State::Open);
    }

    #[test]
    fn callbacks_see_every_transition_and_may_reenter() {
        let b = Arc::new(breaker(Config::default().count_window(1).minimum_calls(1)));
        let seen = Arc::new(AtomicUsize::new(0));
        let (s, weak) = (seen.clone(), Arc::downgrade(&b));
        b.on_state_change(move |t| {
            s.fetch_add(1, Ordering::Relaxed);
            if t.to == State::Open && t.cause == Cause::FailureRate {
                // Re-entering the breaker from a callback must not deadlock.
                weak.upgrade().unwrap().force_open();
            }
        });
        b.try_acquire().unwrap().failure(0).eq(&Recorded::Counted).then_some(()).unwrap();
        assert_eq!(b.state(), State::ForcedOpen);
        assert_eq!(seen.load(Ordering::Relaxed), 2);
        assert_eq!(b.transitions_to(State::Open), 1);
        assert_eq!(b.transitions_to(State::ForcedOpen), 1);
        assert_eq!(b.generation(), 2);
    }

    #[test]
    fn call_classifies_results() {
        let b = breaker(Config::default().count_window(4).minimum_calls(4));
        assert_eq!(b.call(|| Ok::<_, ()>(1)), Ok(1));
        assert_eq!(b.call(|| Err::<(), _>("boom")), Err(CallError::Inner("boom")));
        let r = b.call_with(|_: &Result<(), &str>| Outcome::Ignored, || Err("client error"));
        assert_eq!(r, Err(CallError::Inner("client error")));
        let m = b.metrics();
        assert_eq!((m.calls, m.failed), (2, 1));
        b.force_open();
        assert!(matches!(
            b.call(|| Ok::<_, ()>(())),
            Err(CallError::Rejected(Rejected { state: State::ForcedOpen, .. }))
        ));
    }
}
