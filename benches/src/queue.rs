//! Queue benches: `spsc::Ring` beside rtrb and crossbeam's `ArrayQueue`,
//! `mpmc::Ring` beside `ArrayQueue`.

use criterion::Criterion;

/// Registers the queue benches.
pub fn register(_c: &mut Criterion) {}
