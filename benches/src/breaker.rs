//! breaker benches (filled in by the breaker issue).

use criterion::Criterion;

/// Registers the breaker benches.
pub fn register(_c: &mut Criterion) {}
