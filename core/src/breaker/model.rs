//! A sequential reference model of the breaker, for property tests and
//! fuzzing: the same rules written as plainly as possible (a `VecDeque` for
//! the count window, a vector of optional buckets for the time window, plain
//! integers for everything else), single-threaded and driven by explicit
//! times. Not part of the supported API.

use super::window::TimeWindow;
use super::{Cause, Config, Metrics, Outcome, Recorded, Rejected, SlidingWindow, State};
use crate::clock::{Nanos, SECOND};
use std::collections::VecDeque;

/// One call in the model's count window: (failed, slow).
type Call = (bool, bool);

/// One second in the model's time window: (second, calls, failed, slow).
type Second = (u64, u64, u64, u64);

/// The reference state machine.
#[derive(Debug, Clone)]
pub struct Model {
    cfg: Config,
    state: State,
    generation: u64,
    count: VecDeque<Call>,
    seconds: Vec<Option<Second>>,
    /// The newest second recorded: the time window never goes back.
    newest_sec: u64,
    open_until: Nanos,
    half_deadline: Option<Nanos>,
    /// The current state is Open, entered straight from HalfOpen.
    open_from_half: bool,
    state_since: Nanos,
    half_issued: u64,
    half_completed: u64,
    half_failed: u64,
    half_slow: u64,
    not_permitted: u64,
    entered: [u64; 6],
    /// Every transition so far: (from, to, generation, cause).
    pub transitions: Vec<(State, State, u64, Cause)>,
}

impl Model {
    /// A closed model at `now`; `cfg` must be valid.
    pub fn new(cfg: Config, now: Nanos) -> Self {
        let n = match cfg.sliding_window {
            SlidingWindow::TimeBased { seconds } => seconds as usize,
            SlidingWindow::CountBased { .. } => 0,
        };
        Self {
            cfg,
            state: State::Closed,
            generation: 0,
            count: VecDeque::new(),
            seconds: vec![None; n],
            newest_sec: 0,
            open_until: 0,
            half_deadline: None,
            open_from_half: false,
            state_since: now,
            half_issued: 0,
            half_completed: 0,
            half_failed: 0,
            half_slow: 0,
            not_permitted: 0,
            entered: [0; 6],
            transitions: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Transitions into `s` so far.
    pub fn transitions_to(&self, s: State) -> u64 {
        self.entered[s as usize]
    }

    fn go(&mut self, to: State, cause: Cause, now: Nanos) {
        self.open_from_half = to == State::Open && self.state == State::HalfOpen;
        self.transitions.push((self.state, to, self.generation + 1, cause));
        self.generation += 1;
        self.state = to;
        self.state_since = now;
        self.entered[to as usize] += 1;
        match to {
            State::Closed | State::MetricsOnly => {
                self.count.clear();
                self.seconds.iter_mut().for_each(|b| *b = None);
            }
            State::Open => self.open_until = now.saturating_add(self.cfg.wait_in_open),
            State::HalfOpen => {
                self.half_issued = 0;
                self.half_completed = 0;
                self.half_failed = 0;
                self.half_slow = 0;
                let max = self.cfg.max_wait_in_half_open;
                // A deadline that saturates to the last instant is none, as
                // in the breaker (`half_open_timed_out`).
                self.half_deadline = (max > 0).then(|| now.saturating_add(max)).filter(|&d| d != u64::MAX);
            }
            State::Disabled | State::ForcedOpen => {}
        }
    }

    /// A manual transition.
    pub fn transition_to(&mut self, to: State, now: Nanos) {
        self.go(to, Cause::Manual, now);
    }

    fn reject(&mut self, retry_after: Nanos, state: State) -> Rejected {
        self.not_permitted += 1;
        Rejected { retry_after, state }
    }

    fn half_expired(&self, now: Nanos) -> bool {
        self.half_deadline.is_some_and(|d| now >= d)
    }

    /// Asks for a permit at `now`: its generation, or the rejection.
    pub fn try_acquire(&mut self, now: Nanos) -> Result<u64, Rejected> {
        loop {
            match self.state {
                State::Closed | State::Disabled | State::MetricsOnly => return Ok(self.generation),
                State::ForcedOpen => return Err(self.reject(u64::MAX, State::ForcedOpen)),
                State::Open => {
                    if now < self.open_until {
                        return Err(self.reject(self.open_until - now, State::Open));
                    }
                    self.go(State::HalfOpen, Cause::WaitElapsed, now);
                }
                State::HalfOpen => {
                    if self.half_expired(now) {
                        self.go(State::Open, Cause::HalfOpenTimeout, now);
                        continue;
                    }
                    let retry = self.half_deadline.map_or(0, |d| d - now);
                    if self.half_issued >= self.cfg.permitted_calls_in_half_open as u64 {
                        return Err(self.reject(retry, State::HalfOpen));
                    }
                    self.half_issued += 1;
                    return Ok(self.generation);
                }
            }
        }
    }

    /// The closed window's counts at `now`: (calls, failed, slow).
    fn window(&self, now: Nanos) -> (u64, u64, u64) {
        match self.cfg.sliding_window {
            SlidingWindow::CountBased { .. } => {
                let calls = self.count.len() as u64;
                let failed = self.count.iter().filter(|c| c.0).count() as u64;
                let slow = self.count.iter().filter(|c| c.1).count() as u64;
                (calls, failed, slow)
            }
            SlidingWindow::TimeBased { seconds } => {
                let s = now / SECOND;
                let gap = TimeWindow::restart_gap(seconds);
                let now_sec =
                    if s < self.newest_sec && self.newest_sec - s < gap { self.newest_sec } else { s };
                let mut t = (0, 0, 0);
                for &(sec, calls, failed, slow) in self.seconds.iter().flatten() {
                    if sec <= now_sec && now_sec - sec < seconds as u64 {
                        t = (t.0 + calls, t.1 + failed, t.2 + slow);
                    }
                }
                t
            }
        }
    }

    /// Records the result of a permit of generation `gen`.
    pub fn record(&mut self, gen: u64, outcome: Outcome, duration: Nanos, now: Nanos) -> Recorded {
        if gen != self.generation {
            return Recorded::Stale;
        }
        let slow = duration > self.cfg.slow_call_duration_threshold;
        let failed = outcome == Outcome::Failure;
        match self.state {
            State::Disabled => Recorded::Ignored,
            State::Open | State::ForcedOpen => Recorded::Stale,
            State::Closed | State::MetricsOnly => {
                if outcome == Outcome::Ignored {
                    return Recorded::Ignored;
                }
                match self.cfg.sliding_window {
                    SlidingWindow::CountBased { size } => {
                        self.count.push_back((failed, slow));
                        if self.count.len() > size as usize {
                            self.count.pop_front();
                        }
                    }
                    SlidingWindow::TimeBased { seconds } => {
                        // Late by less than the restart gap: as of the
                        // newest second; further back: a new timeline.
                        let s = now / SECOND;
                        let gap = TimeWindow::restart_gap(seconds);
                        let sec = if s > self.newest_sec {
                            s
                        } else if self.newest_sec - s < gap {
                            self.newest_sec
                        } else {
                            self.seconds.iter_mut().for_each(|b| *b = None);
                            s
                        };
                        self.newest_sec = sec;
                        let b = &mut self.seconds[(sec % seconds as u64) as usize];
                        match b {
                            Some(s) if s.0 == sec => {
                                s.1 += 1;
                                s.2 += failed as u64;
                                s.3 += slow as u64;
                            }
                            Some(s) if s.0 > sec => {} // older than the bucket: dropped
                            _ => *b = Some((sec, 1, failed as u64, slow as u64)),
                        }
                    }
                }
                if self.state == State::Closed {
                    let (calls, f, s) = self.window(now);
                    if calls >= self.cfg.effective_minimum_calls() as u64 {
                        if Config::rate_reaches(f, calls, self.cfg.failure_rate_threshold) {
                            self.go(State::Open, Cause::FailureRate, now);
                        } else if Config::rate_reaches(s, calls, self.cfg.slow_call_rate_threshold) {
                            self.go(State::Open, Cause::SlowCallRate, now);
                        }
                    }
                }
                Recorded::Counted
            }
            State::HalfOpen => {
                if self.half_expired(now) {
                    self.go(State::Open, Cause::HalfOpenTimeout, now);
                    return Recorded::Stale;
                }
                if self.half_completed >= self.half_issued {
                    return Recorded::Stale;
                }
                if outcome == Outcome::Ignored {
                    self.half_issued -= 1;
                    return Recorded::Ignored;
                }
                self.half_completed += 1;
                self.half_failed += failed as u64;
                self.half_slow += slow as u64;
                if self.half_completed == self.cfg.permitted_calls_in_half_open as u64 {
                    let (c, f, s) = (self.half_completed, self.half_failed, self.half_slow);
                    if Config::rate_reaches(f, c, self.cfg.failure_rate_threshold) {
                        self.go(State::Open, Cause::FailureRate, now);
                    } else if Config::rate_reaches(s, c, self.cfg.slow_call_rate_threshold) {
                        self.go(State::Open, Cause::SlowCallRate, now);
                    } else {
                        self.go(State::Closed, Cause::ProbesPassed, now);
                    }
                }
                Recorded::Counted
            }
        }
    }

    /// The timed transitions at `now`; returns when to poll next.
    pub fn poll(&mut self, now: Nanos) -> Option<Nanos> {
        for _ in 0..4 {
            match self.state {
                State::Open if self.cfg.automatic_transition_from_open_to_half_open => {
                    if now < self.open_until {
                        return Some(self.open_until);
                    }
                    self.go(State::HalfOpen, Cause::WaitElapsed, now);
                }
                State::HalfOpen => match self.half_deadline {
                    None => return None,
                    Some(d) if now < d => return Some(d),
                    Some(_) => self.go(State::Open, Cause::HalfOpenTimeout, now),
                },
                _ => return None,
            }
        }
        None
    }

    /// The metrics at `now`.
    pub fn metrics(&self, now: Nanos) -> Metrics {
        let (calls, failed, slow, minimum) = match self.state {
            // Open straight from half-open reports the probes.
            State::HalfOpen | State::Open if self.state == State::HalfOpen || self.open_from_half => (
                self.half_completed,
                self.half_failed,
                self.half_slow,
                self.cfg.permitted_calls_in_half_open as u64,
            ),
            State::Disabled | State::ForcedOpen => (0, 0, 0, u64::MAX),
            _ => {
                let (c, f, s) = self.window(now);
                (c, f, s, self.cfg.effective_minimum_calls() as u64)
            }
        };
        let rate = |part: u64| (calls >= minimum && calls > 0).then(|| part as f32 * 100.0 / calls as f32);
        Metrics {
            state: self.state,
            generation: self.generation,
            calls,
            failed,
            slow,
            failure_rate: rate(failed),
            slow_call_rate: rate(slow),
            not_permitted: self.not_permitted,
            time_in_state: now.saturating_sub(self.state_since),
        }
    }
}
