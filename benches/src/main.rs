//! One criterion binary for every subject; each module exposes `register`.
//! Peers sit in the same group as libresilience so the report shows them side
//! by side. Run: `cargo bench -p resilience-benches`.

use criterion::{criterion_group, criterion_main, Criterion};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod breaker;
mod cache;
mod idempotency;
mod limit;
mod queue;

fn all(c: &mut Criterion) {
    queue::register(c);
    limit::register(c);
    breaker::register(c);
    cache::register(c);
    idempotency::register(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().configure_from_args();
    targets = all
}
criterion_main!(benches);
