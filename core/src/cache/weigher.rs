//! Capacity limits and the weigher.
//!
//! A cache is bounded by entry count, by total weight, or both. An entry's
//! weight comes from a [`Weigher`], a plain function of key and value (the C
//! ABI uses `key.len() + value.len()`); without one every entry weighs 1.
//!
//! A weight below 1 counts as 1, so that a table bounded only by weight is
//! still bounded in entries.
//!
//! The weigher is called when an entry is inserted and again when it is
//! removed, evicted or moved between queues, instead of storing the weight in
//! every entry (that would cost 8 bytes per entry). It must therefore be a
//! pure function of the key and the value: the same answer every time for the
//! same entry. A weigher that breaks this cannot crash the table (the totals
//! saturate), but it makes the weight budget inaccurate.

/// Weight of an entry: a pure function of key and value.
pub type Weigher<K, V> = fn(&K, &V) -> u64;

/// Largest number of buckets one table can have (indices are 30 bits).
pub const MAX_BUCKETS: usize = 1 << 30;

/// The limits of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most entries held at once (`None`: only the weight bounds the table,
    /// up to the index limit).
    pub max_entries: Option<usize>,
    /// Most total weight held at once (`None`: only the count bounds it).
    pub max_weight: Option<u64>,
}

/// Why a set of limits cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityError {
    /// Neither a count nor a weight limit was given: a cache must be bounded.
    Unbounded,
    /// `max_entries` is 0.
    ZeroEntries,
    /// `max_weight` is 0.
    ZeroWeight,
    /// More entries than one table can index (about 800 million per table;
    /// use more shards).
    TooManyEntries,
    /// The shard count is 0, not a power of two, or above 65536.
    BadShardCount,
    /// More shards than entries: every shard must hold at least one entry.
    MoreShardsThanEntries,
    /// A default time to live of zero: every entry would be born expired.
    ZeroTtl,
}

impl std::fmt::Display for CapacityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unbounded => "a cache needs max_entries or max_weight",
            Self::ZeroEntries => "max_entries must be at least 1",
            Self::ZeroWeight => "max_weight must be at least 1",
            Self::TooManyEntries => "max_entries exceeds what one table can index; use more shards",
            Self::BadShardCount => "shard count must be a power of two between 1 and 65536",
            Self::MoreShardsThanEntries => "more shards than entries",
            Self::ZeroTtl => "default TTL must be positive",
        })
    }
}

impl std::error::Error for CapacityError {}

/// Most entries a table holds: 80% of [`MAX_BUCKETS`] (the load at which a
/// full table is sized).
pub const MAX_ENTRIES: usize = MAX_BUCKETS / 5 * 4;

impl Limits {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), CapacityError> {
        match (self.max_entries, self.max_weight) {
            (None, None) => Err(CapacityError::Unbounded),
            (Some(0), _) => Err(CapacityError::ZeroEntries),
            (_, Some(0)) => Err(CapacityError::ZeroWeight),
            (Some(n), _) if n > MAX_ENTRIES => Err(CapacityError::TooManyEntries),
            _ => Ok(()),
        }
    }

    /// Limits with an entry count only.
    pub const fn entries(n: usize) -> Self {
        Self { max_entries: Some(n), max_weight: None }
    }

    /// Limits with a weight budget only.
    pub const fn weight(w: u64) -> Self {
        Self { max_entries: None, max_weight: Some(w) }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(Limits { max_entries: None, max_weight: None }.validate(), Err(CapacityError::Unbounded));
        assert_eq!(Limits::entries(0).validate(), Err(CapacityError::ZeroEntries));
        assert_eq!(Limits::weight(0).validate(), Err(CapacityError::ZeroWeight));
        assert_eq!(Limits::entries(MAX_ENTRIES + 1).validate(), Err(CapacityError::TooManyEntries));
        assert_eq!(Limits::entries(1).validate(), Ok(()));
        assert_eq!(Limits::weight(1).validate(), Ok(()));
        assert!(!CapacityError::Unbounded.to_string().is_empty());
    }
}
