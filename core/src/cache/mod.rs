//! The hashed cache: SIMD tag groups, sharded tables, scan-resistant eviction
//! and per-entry TTL.
