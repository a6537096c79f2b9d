//! cache benches (filled in by the cache issue).

use criterion::Criterion;

/// Registers the cache benches.
pub fn register(_c: &mut Criterion) {}
