//! The packed words: the state word (state + generation) and the half-open
//! word (probe budget and probe results, tagged with the generation).

/// A breaker's state (Resilience4j's six).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls pass; results fill the sliding window; thresholds are checked.
    Closed = 0,
    /// Calls are rejected until the wait in open is over.
    Open = 1,
    /// A limited number of probe calls pass; their results decide.
    HalfOpen = 2,
    /// Calls pass; nothing is recorded; no transition happens by itself.
    Disabled = 3,
    /// Calls are rejected; no transition happens by itself.
    ForcedOpen = 4,
    /// Calls pass and are recorded, but the breaker never opens by itself.
    MetricsOnly = 5,
}

impl State {
    /// Every state, in code order.
    pub const ALL: [State; 6] =
        [State::Closed, State::Open, State::HalfOpen, State::Disabled, State::ForcedOpen, State::MetricsOnly];

    /// The state with this code, if any (for values coming from C).
    pub fn from_u8(code: u8) -> Option<State> {
        Self::ALL.get(code as usize).copied()
    }

    /// A lower-case name, as Resilience4j prints them.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced_open",
            State::MetricsOnly => "metrics_only",
        }
    }

    /// Whether calls are let through (without a probe budget).
    pub(crate) fn passes(self) -> bool {
        matches!(self, State::Closed | State::Disabled | State::MetricsOnly)
    }
}

/// Bits of the state word that hold the state.
const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

/// Packs a state and a generation into one word.
#[inline]
pub(crate) const fn pack(state: State, generation: u64) -> u64 {
    (generation << STATE_BITS) | state as u64
}

/// The state in a state word.
#[inline]
pub(crate) fn state_of(word: u64) -> State {
    match word & STATE_MASK {
        0 => State::Closed,
        1 => State::Open,
        2 => State::HalfOpen,
        3 => State::Disabled,
        4 => State::ForcedOpen,
        _ => State::MetricsOnly,
    }
}

/// The generation in a state word.
#[inline]
pub(crate) const fn generation_of(word: u64) -> u64 {
    word >> STATE_BITS
}

/// The half-open word: `tag:24 | issued:10 | completed:10 | failed:10 | slow:10`
/// (high to low). `tag` is the half-open state's generation (low 24 bits);
/// `issued` counts permits handed out (an ignored result gives one back),
/// `completed` results counted, of which `failed` failed and `slow` were slow.
pub(crate) mod half {
    const F: u32 = 10;
    const M: u64 = (1 << F) - 1;
    const TAG_SHIFT: u32 = 4 * F;
    const TAG_MASK: u64 = (1 << 24) - 1;

    /// An empty word for generation `gen`.
    #[inline]
    pub(crate) const fn fresh(gen: u64) -> u64 {
        (gen & TAG_MASK) << TAG_SHIFT
    }

    /// Whether `word` belongs to generation `gen`.
    #[inline]
    pub(crate) const fn is_of(word: u64, gen: u64) -> bool {
        word >> TAG_SHIFT == gen & TAG_MASK
    }

    /// The decoded counters.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Half {
        pub issued: u64,
        pub completed: u64,
        pub failed: u64,
        pub slow: u64,
    }

    #[inline]
    pub(crate) const fn decode(word: u64) -> Half {
        Half {
            issued: (word >> (3 * F)) & M,
            completed: (word >> (2 * F)) & M,
            failed: (word >> F) & M,
            slow: word & M,
        }
    }

    /// Re-encodes `h` under the tag of `word`. Fields must be below 1024.
    #[inline]
    pub(crate) fn encode(word: u64, h: Half) -> u64 {
        debug_assert!(h.issued <= M && h.completed <= M && h.failed <= M && h.slow <= M);
        (word & !((1u64 << TAG_SHIFT) - 1))
            | h.issued << (3 * F)
            | h.completed << (2 * F)
            | h.failed << F
            | h.slow
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn state_word_round_trips() {
        for s in State::ALL {
            for g in [0u64, 1, 7, 1 << 40, (1 << 61) - 1] {
                let w = pack(s, g);
                assert_eq!(state_of(w), s);
                assert_eq!(generation_of(w), g);
            }
            assert_eq!(State::from_u8(s as u8), Some(s));
        }
        assert_eq!(State::from_u8(6), None);
    }

    #[test]
    fn half_word_round_trips_and_tags() {
        let w = half::fresh(5);
        assert!(half::is_of(w, 5));
        assert!(!half::is_of(w, 6));
        assert!(half::is_of(half::fresh(5 + (1 << 24)), 5), "tag is the low 24 bits");
        let h = half::Half { issued: 1023, completed: 3, failed: 2, slow: 1 };
        let w2 = half::encode(w, h);
        assert!(half::is_of(w2, 5));
        assert_eq!(half::decode(w2), h);
    }
}
