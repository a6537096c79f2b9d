//! Bounded lock-free ring buffers: [`spsc`] (wait-free, one producer and one
//! consumer) and [`mpmc`] (per-slot sequence numbers), plus a [`Watermark`]
//! helper for backpressure.
//!
//! Both rings share one contract: the capacity is rounded up to a power of
//! two (at least 1); a push on a full ring hands the item back; a pop on an
//! empty ring returns `None`; nothing blocks and nothing allocates after
//! construction; dropping the ring drops every item still queued exactly once.
//!
//! ```
//! use resilience::queue::{spsc, mpmc};
//!
//! let (mut tx, mut rx) = spsc::Ring::<u64>::new(4);
//! assert_eq!(tx.push(1), Ok(()));
//! assert_eq!(rx.pop(), Some(1));
//!
//! let q = mpmc::Ring::<u64>::new(2);
//! assert_eq!(q.try_push(7), Ok(()));
//! assert_eq!(q.try_pop(), Some(7));
//! ```

use std::fmt;

pub mod bytes;
pub mod mpmc;
pub mod spsc;
mod watermark;

pub use watermark::{Pressure, Watermark, WatermarkError};

/// The largest capacity either ring accepts (2^(usize::BITS - 3)).
///
/// Positions are free-running `usize` counters; keeping the capacity well
/// below the counter range keeps distances (and the MPMC ring's doubled
/// sequence numbers) unambiguous across wrap-around.
pub const MAX_CAPACITY: usize = 1 << (usize::BITS - 3);

/// A ring could not be built with the requested capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapacityError {
    /// The capacity, rounded up to a power of two, exceeds [`MAX_CAPACITY`].
    TooLarge {
        /// The capacity asked for.
        requested: usize,
    },
    /// The slot buffer could not be allocated (too many bytes, or the
    /// allocator refused).
    OutOfMemory {
        /// The capacity asked for.
        requested: usize,
    },
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CapacityError::TooLarge { requested } => {
                write!(f, "ring capacity {requested} exceeds the maximum of {MAX_CAPACITY}")
            }
            CapacityError::OutOfMemory { requested } => {
                write!(f, "cannot allocate a ring of capacity {requested}")
            }
        }
    }
}

impl std::error::Error for CapacityError {}

/// Rounds `requested` up to a power of two (at least 1), or says why not.
pub(crate) fn round_capacity(requested: usize) -> Result<usize, CapacityError> {
    match requested.max(1).checked_next_power_of_two() {
        Some(cap) if cap <= MAX_CAPACITY => Ok(cap),
        _ => Err(CapacityError::TooLarge { requested }),
    }
}

/// An empty `Vec` with room for exactly `cap` elements, or an error instead of
/// an allocation failure abort.
pub(crate) fn reserve<S>(cap: usize, requested: usize) -> Result<Vec<S>, CapacityError> {
    let mut v = Vec::new();
    v.try_reserve_exact(cap).map_err(|_| CapacityError::OutOfMemory { requested })?;
    Ok(v)
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn capacities_round_up_to_powers_of_two() {
        assert_eq!(round_capacity(0), Ok(1));
        assert_eq!(round_capacity(1), Ok(1));
        assert_eq!(round_capacity(3), Ok(4));
        assert_eq!(round_capacity(1024), Ok(1024));
        assert_eq!(round_capacity(1025), Ok(2048));
        assert_eq!(round_capacity(MAX_CAPACITY), Ok(MAX_CAPACITY));
        assert!(matches!(round_capacity(MAX_CAPACITY + 1), Err(CapacityError::TooLarge { .. })));
        assert!(matches!(round_capacity(usize::MAX), Err(CapacityError::TooLarge { .. })));
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let e = round_capacity(usize::MAX).unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
        let e = reserve::<u64>(MAX_CAPACITY, MAX_CAPACITY).unwrap_err();
        assert_eq!(e, CapacityError::OutOfMemory { requested: MAX_CAPACITY });
    }
}
