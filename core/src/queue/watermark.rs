//! High/low watermarks with hysteresis: tell producers to slow down before a
//! queue hits the wall, and when they may resume.

use std::fmt;

use crate::sync::{AtomicBool, Ordering};

/// What a producer should do, from [`Watermark::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pressure {
    /// Below the high watermark (and not slowed down): go ahead.
    Normal,
    /// The length reached the high watermark and has not yet fallen to the
    /// low one: slow down (shed, defer, or push less).
    SlowDown,
    /// The length just fell to the low watermark after a slow-down: full
    /// speed again. Returned by exactly one observation per slow-down period;
    /// later ones say [`Pressure::Normal`].
    Resume,
}

/// The low watermark was above the high one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkError {
    /// The low watermark asked for.
    pub low: usize,
    /// The high watermark asked for.
    pub high: usize,
}

impl fmt::Display for WatermarkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "low watermark {} is above high watermark {}", self.low, self.high)
    }
}

impl std::error::Error for WatermarkError {}

/// A high/low watermark pair with hysteresis over a queue length.
///
/// Once the length reaches `high`, [`observe`](Watermark::observe) answers
/// [`Pressure::SlowDown`] until the length falls to `low` or below, which is
/// answered once with [`Pressure::Resume`]. The gap between the two keeps a
/// producer from flapping around a single threshold. The state is one atomic
/// flag, so producers on several threads can share one watermark (`&self`).
///
/// ```
/// use resilience::queue::{Pressure, Watermark};
///
/// let w = Watermark::new(2, 6).unwrap();
/// assert_eq!(w.observe(5), Pressure::Normal);
/// assert_eq!(w.observe(6), Pressure::SlowDown);
/// assert_eq!(w.observe(3), Pressure::SlowDown); // still above low
/// assert_eq!(w.observe(2), Pressure::Resume);
/// assert_eq!(w.observe(5), Pressure::Normal);
/// assert!(Watermark::new(7, 6).is_err());
/// ```
#[derive(Debug)]
pub struct Watermark {
    low: usize,
    high: usize,
    slowed: AtomicBool,
}

impl Watermark {
    /// A watermark that says slow down at `len >= high` and resume at
    /// `len <= low`. `low == high` is allowed (no hysteresis).
    pub fn new(low: usize, high: usize) -> Result<Self, WatermarkError> {
        if low > high {
            return Err(WatermarkError { low, high });
        }
        Ok(Self { low, high, slowed: AtomicBool::new(false) })
    }

    /// Feeds the current queue length and says what the producer should do.
    #[inline]
    pub fn observe(&self, len: usize) -> Pressure {
        if len >= self.high {
            // Avoid writing the shared flag when it already says so.
            if !self.slowed.load(Ordering::Relaxed) {
                self.slowed.store(true, Ordering::Relaxed);
            }
            Pressure::SlowDown
        } else if len <= self.low {
            // The swap hands `Resume` to exactly one observer.
            if self.slowed.load(Ordering::Relaxed) && self.slowed.swap(false, Ordering::Relaxed) {
                Pressure::Resume
            } else {
                Pressure::Normal
            }
        } else if self.slowed.load(Ordering::Relaxed) {
            Pressure::SlowDown
        } else {
            Pressure::Normal
        }
    }

    /// Whether producers are currently told to slow down.
    pub fn is_slowed(&self) -> bool {
        self.slowed.load(Ordering::Relaxed)
    }

    /// The low watermark.
    pub fn low(&self) -> usize {
        self.low
    }

    /// The high watermark.
    pub fn high(&self) -> usize {
        self.high
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    /// A sequential model: the same rule, written as plainly as possible.
    fn model(slowed: &mut bool, low: usize, high: usize, len: usize) -> Pressure {
        let before = *slowed;
        if len >= high {
            *slowed = true;
        } else if len <= low {
            *slowed = false;
        }
        match (before, *slowed) {
            (_, true) => Pressure::SlowDown,
            (true, false) => Pressure::Resume,
            (false, false) => Pressure::Normal,
        }
    }

    #[test]
    fn matches_the_model_on_every_walk() {
        for low in 0..6 {
            for high in low..8 {
                let w = Watermark::new(low, high).unwrap();
                let mut slowed = false;
                // A walk that rises and falls across both thresholds.
                let mut len = 0usize;
                for step in 0..200u32 {
                    let up = (step / 9) % 2 == 0;
                    len = if up { len + 1 } else { len.saturating_sub(1) };
                    assert_eq!(w.observe(len), model(&mut slowed, low, high, len), "{low} {high} {len}");
                    assert_eq!(w.is_slowed(), slowed);
                }
            }
        }
    }

    #[test]
    fn resume_is_said_once() {
        let w = Watermark::new(1, 3).unwrap();
        assert_eq!(w.observe(0), Pressure::Normal);
        assert_eq!(w.observe(3), Pressure::SlowDown);
        assert_eq!(w.observe(9), Pressure::SlowDown);
        assert_eq!(w.observe(2), Pressure::SlowDown);
        assert_eq!(w.observe(1), Pressure::Resume);
        assert_eq!(w.observe(0), Pressure::Normal);
        assert_eq!(w.observe(2), Pressure::Normal);
        assert_eq!((w.low(), w.high()), (1, 3));
    }

    #[test]
    fn low_above_high_is_an_error() {
        let e = Watermark::new(5, 4).unwrap_err();
        assert_eq!(e, WatermarkError { low: 5, high: 4 });
        assert!(e.to_string().contains("above"));
        assert!(Watermark::new(4, 4).is_ok());
    }
}
