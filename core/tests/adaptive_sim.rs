//! The adaptive limit against a simulated service, under a manual clock.
//!
//! The service has a concurrency knee: a request admitted with at most
//! `KNEE` requests in flight takes `BASE` (20 ms); past the knee its latency
//! rises in proportion (queueing: `BASE * inflight / KNEE`), and past
//! `drop_at` requests in flight it fails fast (a drop, after 1 ms). Demand is
//! far above capacity: 400 clients each retry as soon as they are refused
//! (next 1 ms step) or served. Phase 1 (no drops below 3x the knee): the limit
//! must settle near the knee. Phase 2 (the service degrades and drops past
//! half the knee): the limit must back off below the drop threshold.

use resilience::clock::{Clock, ManualClock, Nanos, MILLISECOND};
use resilience::limit::{AdaptiveLimiter, AimdConfig, Algorithm, GradientConfig, Token};

const KNEE: usize = 40;
const BASE: Nanos = 20 * MILLISECOND;
const CLIENTS: usize = 400;
const STEP: Nanos = MILLISECOND;

struct Sim<'a> {
    clock: &'a ManualClock,
    limiter: &'a AdaptiveLimiter<&'a ManualClock>,
    /// (finish time, dropped, token)
    running: Vec<(Nanos, bool, Token<'a, &'a ManualClock>)>,
    drop_at: usize,
}

impl<'a> Sim<'a> {
    /// Runs `steps` milliseconds; returns the limit sampled every step.
    fn run(&mut self, steps: usize) -> Vec<usize> {
        let mut trace = Vec::with_capacity(steps);
        for _ in 0..steps {
            let now = self.clock.now();
            // Completions first: each reports its outcome through its token.
            let mut i = 0;
            while i < self.running.len() {
                if self.running[i].0 <= now {
                    let (_, dropped, token) = self.running.swap_remove(i);
                    if dropped {
                        token.dropped();
                    } else {
                        token.success();
                    }
                } else {
                    i += 1;
                }
            }
            // Every idle client tries once this step.
            let idle = CLIENTS - self.running.len();
            for _ in 0..idle {
                let Some(token) = self.limiter.try_acquire() else { break };
                let inflight = self.running.len() + 1;
                let (latency, dropped) = if inflight > self.drop_at {
                    (MILLISECOND, true)
                } else if inflight <= KNEE {
                    (BASE, false)
                } else {
                    (BASE * inflight as u64 / KNEE as u64, false)
                };
                self.running.push((now + latency, dropped, token));
            }
            trace.push(self.limiter.limit());
            self.clock.advance(STEP);
        }
        trace
    }
}

fn mean(xs: &[usize]) -> f64 {
    xs.iter().sum::<usize>() as f64 / xs.len() as f64
}

/// Runs both phases for `alg`; returns (phase-1 mean limit over its last
/// half, phase-2 mean limit over its last half, phase-2 max over its last
/// half), after checking that the phase-1 median is in [1, 1.5] x the knee.
fn simulate(alg: Algorithm) -> (f64, f64, usize) {
    let clock = ManualClock::default();
    let limiter = AdaptiveLimiter::with_clock(alg, &clock);
    let mut sim = Sim { clock: &clock, limiter: &limiter, running: Vec::new(), drop_at: 3 * KNEE };
    let p1 = sim.run(20_000);
    sim.drop_at = KNEE / 2;
    let p2 = sim.run(20_000);
    let settled = mean(&p1[p1.len() / 2..]);
    let backed_off = mean(&p2[p2.len() / 2..]);
    let worst = *p2[p2.len() / 2..].iter().max().unwrap_or(&0);
    let coarse: Vec<usize> = p1.iter().chain(&p2).step_by(2000).copied().collect();
    let mut tail = p1[p1.len() / 2..].to_vec();
    tail.sort_unstable();
    let pct = |p: usize| tail[tail.len() * p / 100];
    eprintln!(
        "  phase 1 tail percentiles p10 {} p25 {} p50 {} p75 {} p90 {}",
        pct(10),
        pct(25),
        pct(50),
        pct(75),
        pct(90)
    );
    assert!((KNEE..=KNEE * 3 / 2).contains(&pct(50)), "median limit {} vs knee {KNEE}", pct(50));
    eprintln!("{alg:?}\n  limit every 2 s: {coarse:?}\n  phase 1 settled at {settled:.1} (knee {KNEE}), phase 2 at {backed_off:.1} (max {worst}, drops past {})", KNEE / 2);
    (settled, backed_off, worst)
}

#[test]
fn gradient_settles_near_the_knee_and_backs_off_on_drops() {
    // The gradient limit lets latency rise to `tolerance` x the no-load RTT:
    // with tolerance 1.2 it settles at 1.2 x the knee plus the queue-size
    // headroom (52 here), minus the dips of its probes. Tolerance: mean in
    // [0.8, 1.5] x the knee, median in [1, 1.5] x.
    let cfg = GradientConfig { initial: 10, min: 4, max: 400, tolerance: 1.2, ..GradientConfig::default() };
    let (settled, backed_off, worst) = simulate(Algorithm::Gradient(cfg));
    assert!(
        (0.8 * KNEE as f64..=1.5 * KNEE as f64).contains(&settled),
        "gradient settled at {settled}, knee {KNEE}"
    );
    // With drops past KNEE/2, the limit falls below 1.5x that threshold
    // (and far below where it was).
    assert!(backed_off <= 1.5 * (KNEE / 2) as f64, "gradient after drops: {backed_off}");
    assert!(worst < settled as usize, "max {worst} after drops, settled {settled}");
}

#[test]
fn aimd_settles_near_the_knee_and_backs_off_on_drops() {
    // AIMD only sees latency through its timeout: set just above the
    // service's normal latency (1.25 x), it backs off once requests queue
    // past the knee, and saws between 0.9 and 1 x 1.25 x the knee.
    // Tolerance: mean in [0.7, 1.4] x the knee, median in [1, 1.5] x.
    let cfg = AimdConfig { initial: 10, min: 4, max: 400, backoff: 0.9, timeout: BASE * 5 / 4 };
    let (settled, backed_off, worst) = simulate(Algorithm::Aimd(cfg));
    assert!(
        (0.7 * KNEE as f64..=1.4 * KNEE as f64).contains(&settled),
        "AIMD settled at {settled}, knee {KNEE}"
    );
    assert!(backed_off <= 1.5 * (KNEE / 2) as f64, "AIMD after drops: {backed_off}");
    assert!(worst < settled as usize, "max {worst} after drops, settled {settled}");
}
