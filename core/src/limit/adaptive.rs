//! A concurrency limit that adjusts itself from latency and drops (Netflix
//! concurrency-limits' AIMD and Gradient2).

use crate::clock::{Clock, MonotonicClock, Nanos, MILLISECOND};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering};
use std::fmt;

/// Additive increase, multiplicative decrease (Netflix `AIMDLimit`).
///
/// On a drop, or a sample slower than `timeout`, the limit is multiplied by
/// `backoff`; otherwise, when the limiter is at least half used
/// (`inflight * 2 >= limit`), it grows by one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AimdConfig {
    /// Starting limit.
    pub initial: usize,
    /// Lowest limit (at least 1).
    pub min: usize,
    /// Highest limit.
    pub max: usize,
    /// Factor applied on a drop, in (0, 1).
    pub backoff: f64,
    /// A sample slower than this counts as a drop.
    pub timeout: Nanos,
}

impl Default for AimdConfig {
    /// Netflix's defaults: 20 in [20, 200], backoff 0.9, timeout 5 s.
    fn default() -> Self {
        AimdConfig { initial: 20, min: 20, max: 200, backoff: 0.9, timeout: 5_000 * MILLISECOND }
    }
}

/// Gradient of short-term against long-term latency (Netflix `Gradient2Limit`).
///
/// Keeps an exponential average of the RTT over `long_window` samples; each
/// sample, `gradient = clamp(tolerance * long_rtt / rtt, 0.5, 1)` and
/// `new = limit * gradient + queue_size`, smoothed:
/// `limit = limit * (1 - smoothing) + new * smoothing`. While the limiter is
/// less than half used the limit does not move; when the long average runs
/// more than twice the sample it decays by 5% (recovery after a latency
/// spike). One addition to Gradient2, which ignores drops: a drop multiplies
/// the limit by `drop_backoff`, so an overloaded service that fails fast
/// (drops without latency) is backed off from too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientConfig {
    /// Starting limit.
    pub initial: usize,
    /// Lowest limit (at least 1).
    pub min: usize,
    /// Highest limit.
    pub max: usize,
    /// Weight of each new estimate, in (0, 1].
    pub smoothing: f64,
    /// How much slower than the long-term RTT a sample may be before the
    /// limit shrinks (>= 1).
    pub tolerance: f64,
    /// Samples in the long-term RTT average.
    pub long_window: u32,
    /// Headroom added to each estimate (Netflix's default queue size: 4).
    pub queue_size: usize,
    /// Factor applied on a drop, in (0, 1].
    pub drop_backoff: f64,
}

impl Default for GradientConfig {
    /// Netflix's defaults: 20 in [20, 200], smoothing 0.2, tolerance 1.5,
    /// long window 600, queue size 4; drop backoff 0.9.
    fn default() -> Self {
        GradientConfig {
            initial: 20,
            min: 20,
            max: 200,
            smoothing: 0.2,
            tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
            drop_backoff: 0.9,
        }
    }
}

/// The algorithm behind an [`AdaptiveLimiter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    /// See [`AimdConfig`].
    Aimd(AimdConfig),
    /// See [`GradientConfig`].
    Gradient(GradientConfig),
}

/// Exponential moving average with a simple-average warm-up (Netflix
/// `ExpAvgMeasurement`).
#[derive(Debug, Clone, Copy)]
struct ExpAvg {
    value: f64,
    window: f64,
    warmup: u32,
    count: u32,
}

impl ExpAvg {
    fn add(&mut self, sample: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.value += (sample - self.value) / self.count as f64;
        } else {
            let factor = 2.0 / (self.window + 1.0);
            self.value = self.value * (1.0 - factor) + sample * factor;
        }
        self.value
    }
}

#[derive(Debug)]
enum State {
    Aimd { cfg: AimdConfig, limit: f64 },
    Gradient { cfg: GradientConfig, limit: f64, long_rtt: ExpAvg },
}

fn sane(min: usize, max: usize) -> (f64, f64) {
    let min = min.max(1);
    (min as f64, max.max(min) as f64)
}

impl State {
    fn new(alg: Algorithm) -> State {
        match alg {
            Algorithm::Aimd(cfg) => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                State::Aimd { cfg, limit: (cfg.initial as f64).clamp(lo, hi) }
            }
            Algorithm::Gradient(cfg) => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                let long_rtt =
                    ExpAvg { value: 0.0, window: cfg.long_window.max(1) as f64, warmup: 10, count: 0 };
                State::Gradient { cfg, limit: (cfg.initial as f64).clamp(lo, hi), long_rtt }
            }
        }
    }

    fn update(&mut self, rtt: Nanos, inflight: usize, dropped: bool) -> f64 {
        match self {
            State::Aimd { cfg, limit } => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                let backoff = if cfg.backoff.is_finite() { cfg.backoff.clamp(0.0, 1.0) } else { 0.9 };
                if dropped || rtt > cfg.timeout {
                    *limit *= backoff;
                } else if inflight as f64 * 2.0 >= *limit {
                    *limit += 1.0;
                }
                *limit = limit.clamp(lo, hi);
                *limit
            }
            State::Gradient { cfg, limit, long_rtt } => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                if dropped {
                    let b = if cfg.drop_backoff.is_finite() { cfg.drop_backoff.clamp(0.0, 1.0) } else { 0.9 };
                    *limit = (*limit * b).clamp(lo, hi);
                    return *limit;
                }
                let short = rtt.max(1) as f64;
                let mut long = long_rtt.add(short);
                if long / short > 2.0 {
                    long *= 0.95;
                    long_rtt.value = long;
                }
                if (inflight as f64) < *limit / 2.0 {
                    return *limit;
                }
                let tolerance = if cfg.tolerance.is_finite() { cfg.tolerance.max(1.0) } else { 1.5 };
                let smoothing = if cfg.smoothing.is_finite() { cfg.smoothing.clamp(0.0, 1.0) } else { 0.2 };
                let gradient = (tolerance * long / short).clamp(0.5, 1.0);
                let new = *limit * gradient + cfg.queue_size as f64;
                *limit = (*limit * (1.0 - smoothing) + new * smoothing).clamp(lo, hi);
                *limit
            }
        }
    }
}

/// An in-flight limit that follows observed latency and drops.
///
/// [`try_acquire`](Self::try_acquire) hands out a [`Token`] while fewer than
/// [`limit`](Self::limit) calls are in flight (one compare-exchange); the
/// caller reports the outcome through the token: [`Token::success`] (the RTT
/// is measured from the clock), [`Token::dropped`] (timeout, overload
/// error), or [`Token::ignore`] (an outcome that says nothing about the
/// service, e.g. a client error). The algorithm then moves the limit (under
/// a mutex, once per sample). [`on_sample`](Self::on_sample) feeds samples
/// measured elsewhere.
pub struct AdaptiveLimiter<C = MonotonicClock> {
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    rejected: AtomicU64,
    state: Mutex<State>,
    clock: C,
}

impl<C> fmt::Debug for AdaptiveLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimiter")
            .field("limit", &self.limit.load(Ordering::Relaxed))
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One call admitted by an [`AdaptiveLimiter`]; report how it went. Dropping
/// the token unreported is [`Token::ignore`].
#[must_use = "report the outcome with success(), dropped() or ignore()"]
#[derive(Debug)]
pub struct Token<'a, C: Clock = MonotonicClock> {
    limiter: &'a AdaptiveLimiter<C>,
    start: Nanos,
    inflight: usize,
    done: bool,
}

impl<C: Clock> Token<'_, C> {
    /// The call succeeded: its RTT (now - start) is a sample.
    pub fn success(mut self) {
        self.finish(Some(false));
    }

    /// The call was dropped (timed out, refused by an overloaded service).
    pub fn dropped(mut self) {
        self.finish(Some(true));
    }

    /// The outcome says nothing about the service: release only.
    pub fn ignore(mut self) {
        self.finish(None);
    }

    /// When the call was admitted.
    pub fn start(&self) -> Nanos {
        self.start
    }

    fn finish(&mut self, dropped: Option<bool>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(dropped) = dropped {
            let rtt = self.limiter.clock.now().saturating_sub(self.start);
            self.limiter.on_sample(rtt, self.inflight, dropped);
        }
    }
}

impl<C: Clock> Drop for Token<'_, C> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl AdaptiveLimiter {
    /// A limiter running `algorithm`, timing calls with the monotonic clock.
    pub fn new(algorithm: Algorithm) -> Self {
        Self::with_clock(algorithm, MonotonicClock)
    }
}

impl<C: Clock> AdaptiveLimiter<C> {
    /// A limiter running `algorithm`, timing calls with `clock`.
    pub fn with_clock(algorithm: Algorithm, clock: C) -> Self {
        let state = State::new(algorithm);
        let limit = match &state {
            State::Aimd { limit, .. } | State::Gradient { limit, .. } => *limit as usize,
        };
        AdaptiveLimiter {
            limit: AtomicUsize::new(limit),
            in_flight: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            state: Mutex::new(state),
            clock,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// `try_acquire` calls refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// A token if fewer than [`limit`](Self::limit) calls are in flight.
    pub fn try_acquire(&self) -> Option<Token<'_, C>> {
        let mut cur = self.in_flight.load(Ordering::Relaxed);
        loop {
            if cur >= self.limit.load(Ordering::Relaxed) {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match self.in_flight.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    return Some(Token {
                        limiter: self,
                        start: self.clock.now(),
                        inflight: cur + 1,
                        done: false,
                    })
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// Feeds one sample: a call that took `rtt`, admitted with `inflight`
    /// calls in flight (itself included), and was `dropped` or not. Returns
    /// the new limit.
    pub fn on_sample(&self, rtt: Nanos, inflight: usize, dropped: bool) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let limit = state.update(rtt, inflight, dropped) as usize;
        self.limit.store(limit, Ordering::Relaxed);
        limit
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn aimd_grows_when_used_and_backs_off_on_drops() {
        let cfg = AimdConfig { initial: 10, min: 2, max: 15, backoff: 0.5, timeout: 100 * MILLISECOND };
        let l = AdaptiveLimiter::with_clock(Algorithm::Aimd(cfg), ManualClock::default());
        assert_eq!(l.on_sample(MILLISECOND, 2, false), 10, "app-limited: no growth");
        assert_eq!(l.on_sample(MILLISECOND, 5, false), 11);
        for _ in 0..10 {
            l.on_sample(MILLISECOND, 20, false);
        }
        assert_eq!(l.limit(), 15);
        assert_eq!(l.on_sample(MILLISECOND, 15, true), 7);
        assert_eq!(l.on_sample(SECOND_, 7, false), 3, "slow counts as a drop");
        for _ in 0..5 {
            l.on_sample(MILLISECOND, 1, true);
        }
        assert_eq!(l.limit(), 2);
    }
    const SECOND_: Nanos = crate::clock::SECOND;

    #[test]
    fn tokens_hold_and_release_slots() {
        let clock = ManualClock::default();
        let cfg = AimdConfig { initial: 2, min: 1, max: 2, ..AimdConfig::default() };
        let l = AdaptiveLimiter::with_clock(Algorithm::Aimd(cfg), &clock);
        let a = l.try_acquire().unwrap();
        let b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        assert_eq!((l.in_flight(), l.rejected()), (2, 1));
        clock.advance(MILLISECOND);
        a.success();
        b.dropped();
        assert_eq!(l.limit(), 1);
        let c = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(c);
        l.try_acquire().unwrap().ignore();
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn gradient_shrinks_when_latency_rises_and_holds_when_flat() {
        let cfg = GradientConfig { initial: 50, min: 5, max: 500, ..GradientConfig::default() };
        let l = AdaptiveLimiter::with_clock(Algorithm::Gradient(cfg), ManualClock::default());
        for _ in 0..100 {
            l.on_sample(10 * MILLISECOND, 60, false);
        }
        let grown = l.limit();
        assert!(grown > 50, "flat latency at full use grows the limit: {grown}");
        for _ in 0..20 {
            l.on_sample(40 * MILLISECOND, grown, false);
        }
        assert!(l.limit() < grown * 3 / 4, "latency x4 shrinks the limit: {} from {grown}", l.limit());
        let before = l.limit();
        l.on_sample(10 * MILLISECOND, 1, true);
        assert!(l.limit() < before);
    }

    #[test]
    fn odd_configs_do_not_panic() {
        for alg in [
            Algorithm::Aimd(AimdConfig { initial: 0, min: 0, max: 0, backoff: f64::NAN, timeout: 0 }),
            Algorithm::Gradient(GradientConfig {
                initial: 0,
                min: 0,
                max: 0,
                smoothing: f64::INFINITY,
                tolerance: -1.0,
                long_window: 0,
                queue_size: usize::MAX,
                drop_backoff: f64::NAN,
            }),
        ] {
            let l = AdaptiveLimiter::with_clock(alg, ManualClock::default());
            for i in 0..100 {
                l.on_sample(i, i as usize, i % 3 == 0);
                assert!(l.limit() >= 1);
            }
            l.try_acquire().unwrap().success();
        }
    }
}
