//! # resilienced
//!
//! The libresilience engine served over RESP: every Redis client is a client.
//! One shard per CPU, each pinned and driving its own io_uring, each owning a
//! partition of the keyed state (cache entries, rate limiters, breakers,
//! idempotency records); shards talk only through the runtime's mesh of SPSC
//! rings.
//!
//! Modules: [`resp`] (request parser, reply encoder).

pub mod resp;
