//! The hashed cache: SIMD tag groups, sharded tables, scan-resistant eviction
//! and per-entry TTL.
//!
//! - [`group`]: 16 one-byte tags matched at once (SSE2, NEON, portable).
//! - [`table`]: [`Table`], the single-owner table (no lock): open
//!   addressing with keys and values inline, S3-FIFO eviction
//!   ([`eviction`]), deadlines ([`ttl`]), count and weight limits
//!   ([`weigher`]). The engine gives each CPU shard its own.
//! - [`sharded`]: [`Cache`], the multi-threaded cache: tables in
//!   power-of-two shards behind short spin locks, with get-or-insert that
//!   runs one loader per key.
//!
//! ```
//! use resilience::cache::Cache;
//! use std::time::Duration;
//!
//! let cache: Cache<u64, String> = Cache::builder()
//!     .max_entries(10_000)
//!     .default_ttl(Duration::from_secs(60))
//!     .build()
//!     .expect("valid limits");
//! cache.insert(1, "one".to_string());
//! assert_eq!(cache.get(&1).as_deref(), Some("one"));
//! let v = cache.get_or_insert_with(2, || Ok::<_, std::io::Error>("two".to_string()));
//! assert_eq!(v.unwrap(), "two");
//! assert_eq!(cache.stats().hits, 1);
//!
//! // Byte keys looked up by slice.
//! let bytes: Cache<Box<[u8]>, Box<[u8]>> = Cache::builder()
//!     .max_weight(1 << 20)
//!     .weigher(|k: &Box<[u8]>, v: &Box<[u8]>| (k.len() + v.len()) as u64)
//!     .build()
//!     .expect("valid limits");
//! bytes.insert(b"k".to_vec().into(), b"v".to_vec().into());
//! assert_eq!(bytes.get_with(&b"k"[..], |v| v.len()), Some(1));
//! ```

pub mod bias;
pub mod eviction;
pub mod group;
pub mod sharded;
pub mod table;
pub mod ttl;
pub mod weigher;

pub use bias::{asymmetric_fences, thread_has_reader_slot};
pub use sharded::{Cache, CacheBuilder, SharedClock};
pub use table::{Inserted, Stats, Table};
pub use weigher::{CapacityError, Limits, Weigher};
