//! The C ABI of libresilience: glue only (argument checks, conversions and
//! panic containment). Every piece of logic lives in the `resilience` crate.
//!
//! One file per C type; every exported function lives in the file of the
//! type it acts on. The exported surface is generated into
//! `include/resilience.h` by cbindgen (`tests/header.rs` fails when the
//! committed header is stale; `RSL_BLESS=1` rewrites it).
//!
//! Conventions for every function: handle first, then inputs, then outputs
//! (`*_out`); every buffer pointer is followed by its `size_t` length;
//! outputs are written only on `RSL_OK` (except the needed length on
//! `RSL_ERR_BUFFER_TOO_SMALL`); `*_free(NULL)` is a no-op.

#![allow(clippy::missing_safety_doc)]

pub mod adaptive;
mod boundary;
pub mod breaker;
pub mod bulkhead;
pub mod bytes_queue;
pub mod cache;
pub mod engine;
mod handle;
pub mod idempotency;
pub mod keyed_limiter;
pub mod limiter;
pub mod queue;
pub mod status;
pub mod version;

pub use status::rsl_status;
