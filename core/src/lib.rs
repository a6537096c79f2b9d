//! # resilience
//!
//! The building blocks that keep a backend standing under retries, spikes and
//! failing dependencies: bounded lock-free queues, a SIMD-friendly hashed
//! cache, atomic rate limiters, circuit breakers, idempotency keys and
//! backpressure.
//!
//! Layering (arrows point one way): [`sync`] and [`clock`] are the ground
//! floor; [`queue`] and the cache table stand on them; the primitives
//! ([`limit`], [`breaker`], [`cache`], [`idempotency`]) and the [`runtime`]
//! stand on those. No module reaches back up.
//!
//! Time is monotonic nanoseconds ([`clock`]); every time-dependent call has a
//! variant that takes `now`, so tests and batching hosts can be deterministic.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod breaker;
pub mod cache;
pub mod clock;
pub mod hash;
pub mod idempotency;
pub mod key;
pub mod limit;
pub mod queue;
pub mod runtime;
pub mod sync;
