//! The Rust side of the ABI-crossing bench: the same loops as
//! `benches/c/abi_bench.c`, timed the same way (`Instant` around N calls
//! after a warm-up pass of N), calling the core directly with the types the
//! C ABI wraps. Prints one `name<TAB>ns/op` line per operation.
//!
//! Run by `benches/abi-bench`, which alternates it with the C program and
//! prints the table. Usage: `abi-rust [N]`. No global allocator is set, as
//! in the C program (the timed loops do not allocate).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use resilience::breaker::{CircuitBreaker, Config, Outcome};
use resilience::cache::Cache;
use resilience::clock::SECOND;
use resilience::key::{copy_bytes, ByteKey, ByteStr};
use resilience::limit::{FullPolicy, KeyedLimiter, Quota, TokenBucket};

const KEYS: usize = 1024;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 64;

fn report(name: &str, ns: u128, n: u64) {
    println!("{name}\t{:.3}", ns as f64 / n as f64);
}

/// 1 token per microsecond, 1000 held: with `now` advancing one token per
/// call every acquire is granted (the compare-exchange path).
fn bucket_quota() -> Quota {
    Quota::new(999, 1_000_000, SECOND).expect("quota")
}

fn bench_bucket_at(n: u64) {
    let l = TokenBucket::new(bucket_quota());
    let (mut now, mut granted) = (1_000_000_000_000u64, 0u64);
    let mut t0 = Instant::now();
    for pass in 0..2 {
        if pass == 1 {
            t0 = Instant::now();
        }
        for _ in 0..n {
            now += 1000;
            granted += u64::from(black_box(l.acquire_at(1, black_box(now))).allowed);
        }
    }
    let ns = t0.elapsed().as_nanos();
    assert_eq!(granted, 2 * n, "bucket acquire_at: not every acquire granted");
    report("bucket acquire_at", ns, n);
}

fn bench_bucket_clock(n: u64) {
    let l = TokenBucket::new(Quota::new(99_999_999, 100_000_000, SECOND).expect("quota"));
    let mut granted = 0u64;
    let mut t0 = Instant::now();
    for pass in 0..2 {
        if pass == 1 {
            t0 = Instant::now();
        }
        for _ in 0..n {
            granted += u64::from(black_box(l.acquire(black_box(1))).allowed);
        }
    }
    let ns = t0.elapsed().as_nanos();
    assert!(granted > 0, "bucket acquire: nothing granted");
    report("bucket acquire (clock)", ns, n);
}

fn bench_keyed_at(n: u64, keys: &[[u8; KEY_LEN]]) {
    let l: KeyedLimiter<ByteKey> = KeyedLimiter::new(bucket_quota(), 4 * KEYS, FullPolicy::Deny);
    let (mut now, mut granted) = (1_000_000_000_000u64, 0u64);
    let mut t0 = Instant::now();
    for pass in 0..2 {
        if pass == 1 {
            t0 = Instant::now();
        }
        for i in 0..n as usize {
            now += 1000;
            let key = ByteStr::new(black_box(&keys[i % KEYS][..]));
            granted += u64::from(black_box(l.acquire_at(key, 1, now)).allowed);
        }
    }
    let ns = t0.elapsed().as_nanos();
    assert_eq!(granted, 2 * n, "keyed acquire_at: not every acquire granted");
    report("keyed acquire_at (16 B key)", ns, n);
}

fn bench_breaker(n: u64) {
    let b = Arc::new(CircuitBreaker::new(Config::default()).expect("config"));
    let mut t0 = Instant::now();
    for pass in 0..2 {
        if pass == 1 {
            t0 = Instant::now();
        }
        for _ in 0..n {
            let p = b.try_acquire_raw().expect("closed breaker permits");
            black_box(b.record_raw_now(black_box(p), Outcome::Success, black_box(1000)));
        }
    }
    let ns = t0.elapsed().as_nanos();
    report("breaker try_acquire+record (2 calls)", ns, n);
}

#[allow(clippy::borrowed_box)] // the weigher's signature is fixed: fn(&K, &V)
fn weigh(k: &ByteKey, v: &Box<[u8]>) -> u64 {
    (k.len() + v.len()) as u64
}

fn bench_cache(n: u64, keys: &[[u8; KEY_LEN]]) {
    // As rsl_cache_new(NULL): a 64 MiB weight budget, bytes weighed.
    let c =
        Cache::<ByteKey, Box<[u8]>>::builder().weigher(weigh).max_weight(64 << 20).build().expect("cache");
    for (k, key) in keys.iter().enumerate() {
        assert!(c.try_insert(ByteKey::from(&key[..]), vec![k as u8; VALUE_LEN].into_boxed_slice(), None));
    }
    let mut buf = [0u8; 256];
    let mut bytes = 0u64;
    let mut t0 = Instant::now();
    for pass in 0..2 {
        if pass == 1 {
            t0 = Instant::now();
        }
        for i in 0..n as usize {
            let key = ByteStr::new(black_box(&keys[i % KEYS][..]));
            let dst = black_box(&mut buf[..]);
            #[allow(clippy::borrowed_box)]
            let len = c
                .get_with(key, |v: &Box<[u8]>| match dst.get_mut(..v.len()) {
                    Some(d) => {
                        copy_bytes(d, v);
                        Ok(v.len())
                    }
                    None => Err(v.len()),
                })
                .expect("hit")
                .expect("fits");
            bytes += len as u64 + u64::from(buf[0]);
        }
    }
    let ns = t0.elapsed().as_nanos();
    let want: u64 = (0..n).map(|i| VALUE_LEN as u64 + ((i % KEYS as u64) & 0xff)).sum();
    assert_eq!(bytes, 2 * want, "cache get: wrong values");
    report("cache get (hit, 64 B copy-out)", ns, n);
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000).max(1);
    let keys: Vec<[u8; KEY_LEN]> = (0..KEYS)
        .map(|k| {
            let mut key = [0u8; KEY_LEN];
            key.copy_from_slice(format!("key-{k:012}").as_bytes());
            key
        })
        .collect();
    bench_bucket_at(n);
    bench_bucket_clock(n);
    bench_keyed_at(n, &keys);
    bench_breaker(n);
    bench_cache(n, &keys);
}
