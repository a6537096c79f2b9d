//! Idempotency store benches: the cost of `begin` answering from a completed
//! record (replay) or an in-progress one, and of a full begin + complete /
//! begin + abandon cycle on fresh keys (with the byte budget full, so the
//! cycle includes evicting the oldest completed record).
//!
//! There is no idempotency-key library among the peers; the floor beside it
//! is what a hand-rolled store would do on the same path: one
//! `Mutex<hashbrown::HashMap>` lookup with a fingerprint compare and an `Arc`
//! clone, and a `moka::sync::Cache` get (a general concurrent cache, which
//! has no leases, tokens or in-progress state).

use criterion::{BenchmarkId, Criterion};
use resilience::clock::SECOND;
use resilience::idempotency::{Begin, Config, Store};
use std::hint::black_box;
use std::sync::{Arc, Mutex};

const KEYS: usize = 1024;
const LEASE: u64 = 30 * SECOND;
const RESPONSE: &[u8] = &[b'r'; 100];
const FP: &[u8] = b"0123456789abcdef0123456789abcdef";

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS).map(|i| format!("idem-key-{i:08}").into_bytes()).collect()
}

type Floor = Mutex<hashbrown::HashMap<Box<[u8]>, (Box<[u8]>, Arc<[u8]>)>>;

/// Registers the idempotency benches.
pub fn register(c: &mut Criterion) {
    if let Some(load) = resilience_benches::load_average() {
        eprintln!("idempotency benches: load average {load:.2}");
    }
    resilience_benches::pin_to(0);
    let keys = keys();

    // --- replay: begin on a completed record --------------------------------
    let store = Store::new(Config::default()).expect("default config");
    for k in &keys {
        let Ok(Begin::Started { token, .. }) = store.begin(k, FP, LEASE) else { panic!("fresh key") };
        store.complete(k, token, RESPONSE).expect("owner completes");
    }
    let floor: Floor = Mutex::new(
        keys.iter()
            .map(|k| (k.clone().into_boxed_slice(), (FP.into(), Arc::<[u8]>::from(RESPONSE))))
            .collect(),
    );
    let moka: moka::sync::Cache<Vec<u8>, Arc<[u8]>> = moka::sync::Cache::new(KEYS as u64 * 2);
    for k in &keys {
        moka.insert(k.clone(), Arc::from(RESPONSE));
    }
    // Right answers before timing.
    for k in &keys {
        assert_eq!(store.begin(k, FP, LEASE).unwrap().response(), Some(RESPONSE));
        assert_eq!(store.begin(k, b"other", LEASE).unwrap(), Begin::Mismatch);
        assert_eq!(&floor.lock().unwrap()[&k[..]].1[..], RESPONSE);
        assert_eq!(moka.get(k).as_deref(), Some(RESPONSE));
    }

    let mut g = c.benchmark_group("idempotency/replay");
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("resilience Store::begin", "completed"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.begin_at(&keys[i], FP, LEASE, 1_000).ok());
        })
    });
    g.bench_function(BenchmarkId::new("Mutex<hashbrown> get+fp+clone", "floor"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let m = floor.lock().unwrap();
            let hit = m.get(&keys[i][..]).filter(|(fp, _)| &fp[..] == FP).map(|(_, r)| r.clone());
            drop(m);
            black_box(hit);
        })
    });
    g.bench_function(BenchmarkId::new("moka::sync::Cache get", "peer"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(moka.get(&keys[i]));
        })
    });
    g.finish();

    // --- in progress: begin on a record someone else owns -------------------
    let busy = Store::new(Config::default()).expect("default config");
    for k in &keys {
        assert!(matches!(busy.begin_at(k, FP, LEASE, 1_000), Ok(Begin::Started { .. })));
        assert!(matches!(busy.begin_at(k, FP, LEASE, 1_001), Ok(Begin::InProgress { .. })));
    }
    let mut g = c.benchmark_group("idempotency/in_progress");
    g.bench_function(BenchmarkId::new("resilience Store::begin", "in_progress"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(busy.begin_at(&keys[i], FP, LEASE, 2_000).ok());
        })
    });
    g.finish();

    // --- a whole cycle on fresh keys ----------------------------------------
    // A 4 MiB budget fills after ~12k completed records (340 bytes each), after which every
    // begin also evicts the completed record that expires first.
    let cycle = Store::new(Config { max_bytes: 4 << 20, max_response_len: 4096, ..Config::default() })
        .expect("config");
    let mut n = 0u64;
    let fresh = |n: &mut u64| {
        *n += 1;
        n.to_le_bytes()
    };
    {
        let k = fresh(&mut n);
        let Ok(Begin::Started { token, .. }) = cycle.begin(&k, FP, LEASE) else { panic!("fresh key") };
        cycle.complete(&k, token, RESPONSE).unwrap();
        assert_eq!(cycle.begin(&k, FP, LEASE).unwrap().response(), Some(RESPONSE));
    }
    let floor: Floor = Mutex::new(hashbrown::HashMap::new());
    let mut g = c.benchmark_group("idempotency/cycle");
    g.bench_function(BenchmarkId::new("resilience begin+complete", "fresh key"), |b| {
        b.iter(|| {
            let k = fresh(&mut n);
            match cycle.begin(&k, FP, LEASE) {
                Ok(Begin::Started { token, .. }) => black_box(cycle.complete(&k, token, RESPONSE).is_ok()),
                other => panic!("fresh key answered {other:?}"),
            };
        })
    });
    g.bench_function(BenchmarkId::new("resilience begin+abandon", "fresh key"), |b| {
        b.iter(|| {
            let k = fresh(&mut n);
            match cycle.begin(&k, FP, LEASE) {
                Ok(Begin::Started { token, .. }) => black_box(cycle.abandon(&k, token).is_ok()),
                other => panic!("fresh key answered {other:?}"),
            };
        })
    });
    g.bench_function(BenchmarkId::new("Mutex<hashbrown> insert+update", "floor"), |b| {
        b.iter(|| {
            let k = fresh(&mut n);
            let mut m = floor.lock().unwrap();
            m.insert(Box::from(&k[..]), (FP.into(), Arc::from(&b""[..])));
            drop(m);
            let mut m = floor.lock().unwrap();
            if let Some(v) = m.get_mut(&k[..]) {
                v.1 = Arc::from(RESPONSE);
            }
            if m.len() > 10_000 {
                m.clear();
            }
        })
    });
    g.finish();
    let s = cycle.stats();
    assert!(s.bytes_used <= 4 << 20);
    eprintln!(
        "idempotency cycle store: {} records, {} bytes, {} evicted",
        s.records, s.bytes_used, s.evicted
    );
}
