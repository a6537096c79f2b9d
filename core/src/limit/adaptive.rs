//! A concurrency limit that adjusts itself from latency and drops (after
//! Netflix concurrency-limits' `AIMDLimit` and `GradientLimit`).

use crate::clock::{Clock, MonotonicClock, Nanos, MILLISECOND};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering};
use std::fmt;

/// Additive increase, multiplicative decrease (after Netflix `AIMDLimit`).
///
/// A drop, or a sample slower than `timeout`, multiplies the limit by
/// `backoff` — at most once per round trip: a bad outcome of a call that
/// started before the last decrease does not decrease again (as TCP reacts
/// once per window; Netflix's version decreases on every such sample, which
/// collapses the limit to its minimum when a whole window of calls comes
/// back slow). Otherwise, while the limiter is at least half used
/// (`inflight * 2 >= limit`), each sample adds `1 / limit`: one per round
/// trip's worth of samples.
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

/// Gradient of no-load latency against observed latency (after Netflix
/// `GradientLimit`).
///
/// The no-load RTT is the smallest RTT seen since the last probe. Each
/// sample, `gradient = clamp(tolerance * no_load / rtt, 0.5, 1)` and
/// `new = limit * gradient + queue_size`, smoothed:
/// `limit = limit * (1 - w) + new * w` with `w = smoothing / limit`, i.e.
/// `smoothing` per round trip's worth of samples rather than per sample
/// (Netflix's per-sample weight makes the limit swing by 2-5x in the
/// simulation, because many samples arrive before latency reacts); while the
/// limiter is less than half used the limit does not move. So the limit grows while
/// latency stays within `tolerance` of the no-load latency and settles where
/// it stops doing so: about `knee * tolerance` for a service whose latency
/// rises in proportion to concurrency past a knee. Every `probe_interval`
/// samples the no-load RTT is forgotten and the limit drops to
/// `queue_size`, so that it is measured again with little in flight (a
/// service whose floor latency changed is followed); calls admitted before
/// the probe are not samples of it. A drop multiplies the
/// limit by `drop_backoff`, at most once per round trip (as in
/// [`AimdConfig`]).
///
/// Netflix's `Gradient2Limit` compares with a long-term average instead of
/// the no-load RTT; under sustained overload that average follows the
/// inflated latency and the limit drifts far past the knee (3x in
/// `core/tests/adaptive_sim.rs`), which is why the no-load form is used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientConfig {
    /// Starting limit.
    pub initial: usize,
    /// Lowest limit (at least 1).
    pub min: usize,
    /// Highest limit.
    pub max: usize,
    /// Weight of the new estimate per round trip, in (0, 1].
    pub smoothing: f64,
    /// How much slower than the no-load RTT a sample may be before the limit
    /// shrinks (>= 1).
    pub tolerance: f64,
    /// Headroom added to each estimate (Netflix's default queue size: 4).
    pub queue_size: usize,
    /// Samples between probes of the no-load RTT (0: never probe).
    pub probe_interval: u32,
    /// Factor applied on a drop, in (0, 1].
    pub drop_backoff: f64,
}

impl Default for GradientConfig {
    /// 20 in [20, 200], smoothing 0.2, queue size 4 (Netflix's values),
    /// tolerance 1.5, a probe every 20 000 samples, drop backoff 0.9.
    fn default() -> Self {
        GradientConfig {
            initial: 20,
            min: 20,
            max: 200,
            smoothing: 0.2,
            tolerance: 1.5,
            queue_size: 4,
            probe_interval: 20_000,
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

#[derive(Debug)]
enum State {
    Aimd {
        cfg: AimdConfig,
        limit: f64,
        last_decrease: Option<Nanos>,
    },
    Gradient {
        cfg: GradientConfig,
        limit: f64,
        no_load: Nanos,
        samples: u32,
        last_decrease: Option<Nanos>,
        /// When the last probe began: calls admitted before it measured the
        /// old load and are not samples of the no-load RTT.
        probe_at: Nanos,
    },
}

fn sane(min: usize, max: usize) -> (f64, f64) {
    let min = min.max(1);
    (min as f64, max.max(min) as f64)
}

fn factor(x: f64, default: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        default
    }
}

/// Whether a bad outcome of a call started at `start` may decrease the
/// limit (once per round trip); records the decrease at `now`.
fn may_decrease(last: &mut Option<Nanos>, start: Nanos, now: Nanos) -> bool {
    if last.is_some_and(|t| start < t) {
        return false;
    }
    *last = Some(now);
    true
}

impl State {
    fn new(alg: Algorithm) -> State {
        match alg {
            Algorithm::Aimd(cfg) => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                State::Aimd { cfg, limit: (cfg.initial as f64).clamp(lo, hi), last_decrease: None }
            }
            Algorithm::Gradient(cfg) => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                State::Gradient {
                    cfg,
                    limit: (cfg.initial as f64).clamp(lo, hi),
                    no_load: Nanos::MAX,
                    samples: 0,
                    last_decrease: None,
                    probe_at: 0,
                }
            }
        }
    }

    /// One sample: a call started at `start`, finished at `start + rtt`.
    fn update(&mut self, start: Nanos, rtt: Nanos, inflight: usize, dropped: bool) -> f64 {
        let now = start.saturating_add(rtt);
        match self {
            State::Aimd { cfg, limit, last_decrease } => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                if dropped || rtt > cfg.timeout {
                    if may_decrease(last_decrease, start, now) {
                        *limit *= factor(cfg.backoff, 0.9);
                    }
                } else if inflight as f64 * 2.0 >= *limit {
                    *limit += 1.0 / limit.max(1.0);
                }
                *limit = limit.clamp(lo, hi);
                *limit
            }
            State::Gradient { cfg, limit, no_load, samples, last_decrease, probe_at } => {
                let (lo, hi) = sane(cfg.min, cfg.max);
                if dropped {
                    if may_decrease(last_decrease, start, now) {
                        *limit = (*limit * factor(cfg.drop_backoff, 0.9)).clamp(lo, hi);
                    }
                    return *limit;
                }
                if start < *probe_at {
                    return *limit;
                }
                *samples = samples.saturating_add(1);
                if cfg.probe_interval > 0 && *samples >= cfg.probe_interval {
                    *samples = 0;
                    *no_load = Nanos::MAX;
                    *probe_at = now;
                    *limit = (cfg.queue_size as f64).clamp(lo, hi);
                    return *limit;
                }
                let rtt = rtt.max(1);
                *no_load = (*no_load).min(rtt);
                if (inflight as f64) < *limit / 2.0 {
                    return *limit;
                }
                let tolerance = if cfg.tolerance.is_finite() { cfg.tolerance.max(1.0) } else { 1.5 };
                // Per round trip (about `limit` samples), not per sample: the
                // limit moves at the same pace whatever the call rate.
                let smoothing = factor(cfg.smoothing, 0.2) / limit.max(1.0);
                let gradient = (tolerance * *no_load as f64 / rtt as f64).clamp(0.5, 1.0);
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
            self.limiter.sample(self.start, rtt, self.inflight, dropped);
        }
    }
}

impl<C: Clock> Drop for Token<'_, C> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// A [`Token`] as plain data (no borrow of the limiter), for the C ABI:
/// from [`AdaptiveLimiter::try_acquire_raw_at`], given back with
/// [`AdaptiveLimiter::release_raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawToken {
    /// When the call was admitted.
    pub start: Nanos,
    /// Calls in flight when it was admitted, itself included.
    pub inflight: usize,
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
        let inflight = self.admit()?;
        Some(Token { limiter: self, start: self.clock.now(), inflight, done: false })
    }

    /// Takes an in-flight slot if one is free; returns the count in flight
    /// with this call.
    #[inline]
    fn admit(&self) -> Option<usize> {
        let mut cur = self.in_flight.load(Ordering::Relaxed);
        loop {
            if cur >= self.limit.load(Ordering::Relaxed) {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match self.in_flight.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(cur + 1),
                Err(seen) => cur = seen,
            }
        }
    }

    /// [`try_acquire`](Self::try_acquire) without a borrow, for hosts that
    /// cannot hold one (the C ABI): the call is taken to start at `now`.
    /// Give every token back exactly once with
    /// [`release_raw`](Self::release_raw).
    #[inline]
    pub fn try_acquire_raw_at(&self, now: Nanos) -> Option<RawToken> {
        let inflight = self.admit()?;
        Some(RawToken { start: now, inflight })
    }

    /// Gives back a token from [`try_acquire_raw_at`](Self::try_acquire_raw_at):
    /// `dropped` is `Some(false)` for a success, `Some(true)` for a drop,
    /// `None` for an outcome that says nothing about the service (release
    /// only); `rtt` is how long the call took. Returns false, and changes
    /// nothing, when no call is in flight (a token given back twice can
    /// never take the count below zero).
    pub fn release_raw(&self, token: RawToken, dropped: Option<bool>, rtt: Nanos) -> bool {
        let mut cur = self.in_flight.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return false;
            }
            match self.in_flight.compare_exchange_weak(cur, cur - 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
        if let Some(dropped) = dropped {
            self.sample(token.start, rtt, token.inflight, dropped);
        }
        true
    }

    /// Feeds one sample: a call that took `rtt`, admitted with `inflight`
    /// calls in flight (itself included), and was `dropped` or not. Returns
    /// the new limit.
    /// (The call is taken to have ended now, for the once-per-round-trip
    /// decrease rule.)
    pub fn on_sample(&self, rtt: Nanos, inflight: usize, dropped: bool) -> usize {
        self.sample(self.clock.now().saturating_sub(rtt), rtt, inflight, dropped)
    }

    fn sample(&self, start: Nanos, rtt: Nanos, inflight: usize, dropped: bool) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let limit = state.update(start, rtt, inflight, dropped) as usize;
        self.limit.store(limit, Ordering::Relaxed);
        limit
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn aimd_grows_when_used_and_backs_off_once_per_round_trip() {
        let clock = ManualClock::default();
        let cfg = AimdConfig { initial: 10, min: 2, max: 15, backoff: 0.5, timeout: 100 * MILLISECOND };
        let l = AdaptiveLimiter::with_clock(Algorithm::Aimd(cfg), &clock);
        assert_eq!(l.on_sample(MILLISECOND, 2, false), 10, "app-limited: no growth");
        // +1/limit per sample: about one per limit's worth of samples.
        for _ in 0..10 {
            l.on_sample(MILLISECOND, 10, false);
        }
        assert_eq!(l.limit(), 10);
        l.on_sample(MILLISECOND, 10, false);
        assert_eq!(l.limit(), 11);
        for _ in 0..200 {
            l.on_sample(MILLISECOND, 20, false);
        }
        assert_eq!(l.limit(), 15);
        clock.advance(SECOND);
        assert_eq!(l.on_sample(MILLISECOND, 15, true), 7);
        // Calls that started before that decrease do not decrease again.
        assert_eq!(l.on_sample(MILLISECOND, 15, true), 7);
        assert_eq!(l.on_sample(500 * MILLISECOND, 15, false), 7);
        clock.advance(SECOND);
        assert_eq!(l.on_sample(200 * MILLISECOND, 7, false), 3, "slow counts as a drop");
        for _ in 0..5 {
            clock.advance(SECOND);
            l.on_sample(MILLISECOND, 1, true);
        }
        assert_eq!(l.limit(), 2);
    }
    const SECOND: Nanos = crate::clock::SECOND;

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
    fn raw_tokens_match_tokens_and_never_underflow() {
        let cfg = AimdConfig { initial: 2, min: 1, max: 2, ..AimdConfig::default() };
        let l = AdaptiveLimiter::with_clock(Algorithm::Aimd(cfg), ManualClock::default());
        let a = l.try_acquire_raw_at(5).unwrap();
        let b = l.try_acquire_raw_at(6).unwrap();
        assert_eq!((a, b.inflight), (RawToken { start: 5, inflight: 1 }, 2));
        assert!(l.try_acquire_raw_at(7).is_none());
        assert_eq!((l.in_flight(), l.rejected()), (2, 1));
        assert!(l.release_raw(a, Some(false), MILLISECOND));
        assert!(l.release_raw(b, Some(true), MILLISECOND));
        assert_eq!((l.in_flight(), l.limit()), (0, 1), "the drop backed off");
        assert!(!l.release_raw(b, None, 0), "a second release changes nothing");
        assert_eq!(l.in_flight(), 0);
        let c = l.try_acquire_raw_at(8).unwrap();
        assert!(l.release_raw(c, None, 0));
        assert_eq!((l.in_flight(), l.limit()), (0, 1));
    }

    #[test]
    fn gradient_shrinks_when_latency_rises_and_holds_when_flat() {
        let cfg = GradientConfig { initial: 50, min: 5, max: 500, ..GradientConfig::default() };
        let l = AdaptiveLimiter::with_clock(Algorithm::Gradient(cfg), ManualClock::default());
        // Latency within tolerance (1.5x) of the no-load RTT does not shrink.
        l.on_sample(10 * MILLISECOND, 60, false);
        l.on_sample(14 * MILLISECOND, 60, false);
        assert!(l.limit() >= 50);
        for _ in 0..500 {
            l.on_sample(10 * MILLISECOND, 60, false);
        }
        let grown = l.limit();
        assert!(grown > 50, "flat latency at full use grows the limit: {grown}");
        for _ in 0..300 {
            l.on_sample(40 * MILLISECOND, grown, false);
        }
        assert!(l.limit() < grown * 3 / 4, "latency x4 shrinks the limit: {} from {grown}", l.limit());
        let before = l.limit();
        l.on_sample(10 * MILLISECOND, 1, true);
        assert!(l.limit() < before);
    }

    #[test]
    fn gradient_probes_the_no_load_rtt_again() {
        let cfg = GradientConfig {
            initial: 50,
            min: 4,
            max: 500,
            probe_interval: 1000,
            ..GradientConfig::default()
        };
        let clock = ManualClock::default();
        let l = AdaptiveLimiter::with_clock(Algorithm::Gradient(cfg), &clock);
        for _ in 0..999 {
            l.on_sample(10 * MILLISECOND, 100, false);
        }
        assert!(l.limit() > 50);
        assert_eq!(l.on_sample(10 * MILLISECOND, 100, false), 4, "probe: down to the queue size");
        clock.advance(SECOND);
        // The service's floor is now 30 ms: measured afresh (from calls
        // admitted after the probe), and the limit grows again.
        for _ in 0..500 {
            l.on_sample(30 * MILLISECOND, 500, false);
        }
        assert!(l.limit() > 20, "{}", l.limit());
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
                probe_interval: 1,
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
