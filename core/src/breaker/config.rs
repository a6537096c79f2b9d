//! Breaker configuration: Resilience4j's settings, validated up front.

use crate::clock::{Nanos, SECOND};
use std::fmt;

/// Largest count-based window (calls). The window's aggregate counters are
/// packed into one atomic word, 18 bits each; this bound leaves them headroom.
pub const MAX_COUNT_WINDOW: u32 = 1 << 16;
/// Largest time-based window (seconds). Evaluating the window reads every
/// bucket, so a record in a time-based window costs O(seconds).
pub const MAX_TIME_WINDOW_SECONDS: u32 = 3600;
/// Largest number of probe calls in half-open (10 bits of the half-open word).
pub const MAX_HALF_OPEN_CALLS: u32 = 1023;

/// How the closed state remembers recent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `size` calls (Resilience4j `COUNT_BASED`).
    CountBased {
        /// Number of calls remembered, `1..=MAX_COUNT_WINDOW`.
        size: u32,
    },
    /// The calls of the last `seconds` seconds, in one-second buckets
    /// (Resilience4j `TIME_BASED`).
    TimeBased {
        /// Number of one-second buckets, `1..=MAX_TIME_WINDOW_SECONDS`.
        seconds: u32,
    },
}

/// What a [`Permit`](super::Permit) dropped without a result counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropPolicy {
    /// Counts as [`Outcome::Ignored`](super::Outcome::Ignored): nothing enters
    /// the window and, in half-open, the probe slot is given back. The default:
    /// a dropped permit usually means the caller gave up or was cancelled,
    /// which says nothing about the dependency's health.
    #[default]
    Ignore,
    /// Counts as [`Outcome::Failure`](super::Outcome::Failure) with a zero
    /// duration: for callers that treat cancellation (e.g. a timeout that drops
    /// the future) as the dependency's fault.
    Failure,
}

/// A circuit breaker's settings. Field names follow Resilience4j's
/// `CircuitBreakerConfig`; durations are nanoseconds. Start from
/// [`Config::default`] (Resilience4j's defaults) and chain the setters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Failure rate in percent, `(0, 100]`, at or above which the breaker
    /// opens. Default 50.
    pub failure_rate_threshold: f32,
    /// Slow-call rate in percent, `(0, 100]`, at or above which the breaker
    /// opens. Default 100.
    pub slow_call_rate_threshold: f32,
    /// A call that takes strictly longer than this is slow. Default 60 s.
    pub slow_call_duration_threshold: Nanos,
    /// Probe calls let through in half-open, `1..=MAX_HALF_OPEN_CALLS`. The
    /// state is decided when all of them have a result. Default 10.
    pub permitted_calls_in_half_open: u32,
    /// Longest time in half-open before going back to open when probes do not
    /// finish; 0 waits for ever (Resilience4j's default). Default 0. A wait
    /// that would end at or past the last instant (`u64::MAX` ns) is "for
    /// ever" too.
    pub max_wait_in_half_open: Nanos,
    /// The closed state's window. Default: count-based, 100 calls.
    pub sliding_window: SlidingWindow,
    /// Calls needed in the window before a rate is computed, >= 1. For a
    /// count-based window the effective minimum is `min(minimum_calls, size)`
    /// (as in Resilience4j). Default 100.
    pub minimum_calls: u32,
    /// Time in open before probes are let through, > 0. Default 60 s.
    pub wait_in_open: Nanos,
    /// Whether [`CircuitBreaker::poll_at`](super::CircuitBreaker::poll_at)
    /// moves open to half-open when the wait is over (a host timer drives it;
    /// no thread is spawned). Without it, the move happens lazily on the next
    /// `try_acquire`. Default false.
    pub automatic_transition_from_open_to_half_open: bool,
    /// What a dropped permit counts as. Default [`DropPolicy::Ignore`].
    pub drop_policy: DropPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration_threshold: 60 * SECOND,
            permitted_calls_in_half_open: 10,
            max_wait_in_half_open: 0,
            sliding_window: SlidingWindow::CountBased { size: 100 },
            minimum_calls: 100,
            wait_in_open: 60 * SECOND,
            automatic_transition_from_open_to_half_open: false,
            drop_policy: DropPolicy::Ignore,
        }
    }
}

/// Why a [`Config`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `failure_rate_threshold` is not in `(0, 100]` (or is NaN).
    FailureRateThreshold,
    /// `slow_call_rate_threshold` is not in `(0, 100]` (or is NaN).
    SlowCallRateThreshold,
    /// `permitted_calls_in_half_open` is 0 or above [`MAX_HALF_OPEN_CALLS`].
    PermittedCallsInHalfOpen,
    /// The window size is 0 or above its maximum.
    WindowSize,
    /// `minimum_calls` is 0.
    MinimumCalls,
    /// `wait_in_open` is 0.
    WaitInOpen,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FailureRateThreshold => "failure_rate_threshold must be in (0, 100]",
            Self::SlowCallRateThreshold => "slow_call_rate_threshold must be in (0, 100]",
            Self::PermittedCallsInHalfOpen => "permitted_calls_in_half_open must be in 1..=1023",
            Self::WindowSize => "sliding window size must be in 1..=65536 calls or 1..=3600 seconds",
            Self::MinimumCalls => "minimum_calls must be at least 1",
            Self::WaitInOpen => "wait_in_open must be greater than 0",
        })
    }
}

impl std::error::Error for ConfigError {}

fn valid_percent(p: f32) -> bool {
    p > 0.0 && p <= 100.0
}

impl Config {
    /// Checks every field; bad values are errors, never panics.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_percent(self.failure_rate_threshold) {
            return Err(ConfigError::FailureRateThreshold);
        }
        if !valid_percent(self.slow_call_rate_threshold) {
            return Err(ConfigError::SlowCallRateThreshold);
        }
        if self.permitted_calls_in_half_open == 0 || self.permitted_calls_in_half_open > MAX_HALF_OPEN_CALLS {
            return Err(ConfigError::PermittedCallsInHalfOpen);
        }
        let size_ok = match self.sliding_window {
            SlidingWindow::CountBased { size } => (1..=MAX_COUNT_WINDOW).contains(&size),
            SlidingWindow::TimeBased { seconds } => (1..=MAX_TIME_WINDOW_SECONDS).contains(&seconds),
        };
        if !size_ok {
            return Err(ConfigError::WindowSize);
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::MinimumCalls);
        }
        if self.wait_in_open == 0 {
            return Err(ConfigError::WaitInOpen);
        }
        Ok(())
    }

    /// Sets [`Config::failure_rate_threshold`] (percent).
    pub fn failure_rate_threshold(mut self, percent: f32) -> Self {
        self.failure_rate_threshold = percent;
        self
    }

    /// Sets [`Config::slow_call_rate_threshold`] (percent).
    pub fn slow_call_rate_threshold(mut self, percent: f32) -> Self {
        self.slow_call_rate_threshold = percent;
        self
    }

    /// Sets [`Config::slow_call_duration_threshold`].
    pub fn slow_call_duration_threshold(mut self, d: Nanos) -> Self {
        self.slow_call_duration_threshold = d;
        self
    }

    /// Sets [`Config::permitted_calls_in_half_open`].
    pub fn permitted_calls_in_half_open(mut self, n: u32) -> Self {
        self.permitted_calls_in_half_open = n;
        self
    }

    /// Sets [`Config::max_wait_in_half_open`] (0 = wait for ever).
    pub fn max_wait_in_half_open(mut self, d: Nanos) -> Self {
        self.max_wait_in_half_open = d;
        self
    }

    /// A count-based window of the last `size` calls.
    pub fn count_window(mut self, size: u32) -> Self {
        self.sliding_window = SlidingWindow::CountBased { size };
        self
    }

    /// A time-based window of the last `seconds` seconds.
    pub fn time_window(mut self, seconds: u32) -> Self {
        self.sliding_window = SlidingWindow::TimeBased { seconds };
        self
    }

    /// Sets [`Config::minimum_calls`].
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = n;
        self
    }

    /// Sets [`Config::wait_in_open`].
    pub fn wait_in_open(mut self, d: Nanos) -> Self {
        self.wait_in_open = d;
        self
    }

    /// Sets [`Config::automatic_transition_from_open_to_half_open`].
    pub fn automatic_transition(mut self, on: bool) -> Self {
        self.automatic_transition_from_open_to_half_open = on;
        self
    }

    /// Sets [`Config::drop_policy`].
    pub fn drop_policy(mut self, p: DropPolicy) -> Self {
        self.drop_policy = p;
        self
    }

    /// The minimum number of calls the closed window needs before it is
    /// evaluated: `min(minimum_calls, size)` for a count window.
    pub fn effective_minimum_calls(&self) -> u32 {
        match self.sliding_window {
            SlidingWindow::CountBased { size } => self.minimum_calls.min(size),
            SlidingWindow::TimeBased { .. } => self.minimum_calls,
        }
    }

    /// Whether `part` out of `calls` reaches `threshold` percent, computed
    /// exactly as `part * 100 >= threshold * calls` (no rounding of a rate).
    /// `calls == 0` never reaches a threshold.
    pub fn rate_reaches(part: u64, calls: u64, threshold: f32) -> bool {
        calls > 0 && (part as f64) * 100.0 >= (threshold as f64) * (calls as f64)
    }

    /// Whether a call of this duration is slow (strictly longer than the
    /// threshold, as in Resilience4j).
    #[inline]
    pub fn is_slow(&self, duration: Nanos) -> bool {
        duration > self.slow_call_duration_threshold
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_resilience4j_and_valid() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.failure_rate_threshold, 50.0);
        assert_eq!(c.minimum_calls, 100);
        assert_eq!(c.sliding_window, SlidingWindow::CountBased { size: 100 });
        assert_eq!(c.permitted_calls_in_half_open, 10);
    }

    #[test]
    fn bad_values_are_errors() {
        let c = Config::default();
        assert_eq!(c.failure_rate_threshold(0.0).validate(), Err(ConfigError::FailureRateThreshold));
        assert_eq!(c.failure_rate_threshold(f32::NAN).validate(), Err(ConfigError::FailureRateThreshold));
        assert_eq!(c.failure_rate_threshold(100.1).validate(), Err(ConfigError::FailureRateThreshold));
        assert_eq!(c.slow_call_rate_threshold(-1.0).validate(), Err(ConfigError::SlowCallRateThreshold));
        assert_eq!(c.permitted_calls_in_half_open(0).validate(), Err(ConfigError::PermittedCallsInHalfOpen));
        assert_eq!(
            c.permitted_calls_in_half_open(1024).validate(),
            Err(ConfigError::PermittedCallsInHalfOpen)
        );
        assert_eq!(c.count_window(0).validate(), Err(ConfigError::WindowSize));
        assert_eq!(c.count_window(MAX_COUNT_WINDOW + 1).validate(), Err(ConfigError::WindowSize));
        assert_eq!(c.time_window(0).validate(), Err(ConfigError::WindowSize));
        assert_eq!(c.time_window(3601).validate(), Err(ConfigError::WindowSize));
        assert_eq!(c.minimum_calls(0).validate(), Err(ConfigError::MinimumCalls));
        assert_eq!(c.wait_in_open(0).validate(), Err(ConfigError::WaitInOpen));
        assert_eq!(c.failure_rate_threshold(100.0).count_window(MAX_COUNT_WINDOW).validate(), Ok(()));
    }

    #[test]
    fn rate_comparison_is_exact_and_inclusive() {
        assert!(Config::rate_reaches(5, 10, 50.0));
        assert!(!Config::rate_reaches(4, 10, 50.0));
        assert!(!Config::rate_reaches(1, 3, 50.0));
        assert!(Config::rate_reaches(1, 3, 33.333332));
        assert!(!Config::rate_reaches(0, 0, 0.0001));
        assert!(Config::rate_reaches(3, 3, 100.0));
    }
}
