//! Miss ratios of the cache's eviction policy beside exact LRU, moka and
//! quick_cache, on Zipf traces (alpha 0.8, 0.99, 1.2) and a scan-mixed trace,
//! at capacities of 0.1%, 1% and 10% of the key space.
//!
//! Run: `cargo run --release -p resilience-benches --bin cache-missratio`
//! (env `KEYS`, default 100000; `REQUESTS`, default 20 x KEYS).
//!
//! Every cache sees the same trace: `get`, and `insert` on a miss. All run
//! single-threaded with one shard so that only the policy differs: ours is a
//! [`Table`] (what each shard of `Cache` is), quick_cache its `unsync::Cache`
//! (the policy of each of its shards), moka its `sync::Cache` (one policy for
//! the whole cache).

use std::collections::HashMap;
use std::time::Instant;

use resilience::cache::{Limits, Table};
use resilience::hash::SeededState;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Scrambles a rank into a key so that popular keys are not neighbours.
fn key_of(rank: u64) -> u64 {
    let mut r = Rng(rank ^ 0xA5A5_5A5A_1234_5678);
    r.next()
}

struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, alpha: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for i in 1..=n {
            sum += 1.0 / (i as f64).powf(alpha);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

fn zipf_trace(n: usize, len: usize, alpha: f64, seed: u64) -> Vec<u64> {
    let z = Zipf::new(n, alpha);
    let mut rng = Rng(seed);
    (0..len).map(|_| key_of(z.sample(&mut rng))).collect()
}

/// Zipf(0.99) traffic with bursts of one-time sequential scans: segments of
/// `n / 2` Zipf requests, each followed by a scan of `n / 5` keys never seen
/// before (about 29% of the requests are scan requests).
fn scan_trace(n: usize, len: usize, seed: u64) -> Vec<u64> {
    let z = Zipf::new(n, 0.99);
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len);
    let mut scan_key = 1u64 << 62;
    while out.len() < len {
        for _ in 0..n / 2 {
            out.push(key_of(z.sample(&mut rng)));
        }
        for _ in 0..n / 5 {
            out.push(scan_key);
            scan_key += 1;
        }
    }
    out.truncate(len);
    out
}

/// Exact LRU: a hash map into an intrusive doubly linked list.
struct Lru {
    map: HashMap<u64, usize>,
    nodes: Vec<(u64, usize, usize)>, // key, prev, next
    head: usize,
    tail: usize,
    cap: usize,
}

const NIL: usize = usize::MAX;

impl Lru {
    fn new(cap: usize) -> Self {
        Self { map: HashMap::with_capacity(cap), nodes: Vec::with_capacity(cap), head: NIL, tail: NIL, cap }
    }

    fn unlink(&mut self, i: usize) {
        let (_, p, n) = self.nodes[i];
        if p == NIL {
            self.head = n
        } else {
            self.nodes[p].2 = n
        }
        if n == NIL {
            self.tail = p
        } else {
            self.nodes[n].1 = p
        }
    }

    fn push_front(&mut self, i: usize) {
        self.nodes[i].1 = NIL;
        self.nodes[i].2 = self.head;
        if self.head != NIL {
            self.nodes[self.head].1 = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// True on a hit; on a miss the key is inserted.
    fn access(&mut self, k: u64) -> bool {
        if let Some(&i) = self.map.get(&k) {
            self.unlink(i);
            self.push_front(i);
            return true;
        }
        let i = if self.nodes.len() < self.cap {
            self.nodes.push((k, NIL, NIL));
            self.nodes.len() - 1
        } else {
            let t = self.tail;
            self.unlink(t);
            self.map.remove(&self.nodes[t].0);
            self.nodes[t].0 = k;
            t
        };
        self.map.insert(k, i);
        self.push_front(i);
        false
    }
}

fn ratio(misses: usize, total: usize) -> f64 {
    misses as f64 / total as f64
}

fn run_ours(trace: &[u64], cap: usize) -> f64 {
    let mut t: Table<u64, u64> =
        Table::with_limits(Limits::entries(cap), None, SeededState::with_seed(0x5EED)).expect("capacity");
    let mut misses = 0;
    for &k in trace {
        if t.get(&k, 0).is_none() {
            misses += 1;
            t.insert(k, k, 0, 0);
        }
    }
    ratio(misses, trace.len())
}

fn run_lru(trace: &[u64], cap: usize) -> f64 {
    let mut l = Lru::new(cap);
    ratio(trace.iter().filter(|&&k| !l.access(k)).count(), trace.len())
}

fn run_moka(trace: &[u64], cap: usize) -> f64 {
    let c: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(cap as u64);
    let mut misses = 0;
    for &k in trace {
        if c.get(&k).is_none() {
            misses += 1;
            c.insert(k, k);
        }
    }
    ratio(misses, trace.len())
}

fn run_quick(trace: &[u64], cap: usize) -> f64 {
    let mut c: quick_cache::unsync::Cache<u64, u64> = quick_cache::unsync::Cache::new(cap);
    let mut misses = 0;
    for &k in trace {
        if c.get(&k).is_none() {
            misses += 1;
            c.insert(k, k);
        }
    }
    ratio(misses, trace.len())
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let keys = env("KEYS", 100_000);
    let len = env("REQUESTS", keys * 20);
    let start = Instant::now();
    println!("# cache miss ratios: {keys} keys, {len} requests per trace (get, insert on miss)");
    println!("# load average {:?}", resilience_benches::load_average());
    println!();
    println!(
        "| trace | capacity | ours (S3-FIFO) | LRU | moka | quick_cache | ours vs best peer | ours vs LRU |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let traces: Vec<(String, Vec<u64>)> = vec![
        ("zipf 0.8".into(), zipf_trace(keys, len, 0.8, 1)),
        ("zipf 0.99".into(), zipf_trace(keys, len, 0.99, 2)),
        ("zipf 1.2".into(), zipf_trace(keys, len, 1.2, 3)),
        ("scan-mixed".into(), scan_trace(keys, len, 4)),
    ];
    let mut all_ok = true;
    for (name, trace) in &traces {
        for (label, cap) in [("0.1%", keys / 1000), ("1%", keys / 100), ("10%", keys / 10)] {
            let cap = cap.max(1);
            let ours = run_ours(trace, cap);
            let lru = run_lru(trace, cap);
            let moka = run_moka(trace, cap);
            let quick = run_quick(trace, cap);
            let best = moka.min(quick);
            let ok = ours <= best + 0.0005;
            all_ok &= ok;
            println!(
                "| {name} | {label} ({cap}) | {:.4} | {:.4} | {:.4} | {:.4} | {:+.4}{} | {:+.4} |",
                ours,
                lru,
                moka,
                quick,
                ours - best,
                if ok { "" } else { " (worse)" },
                ours - lru
            );
        }
    }
    println!();
    println!(
        "# {} ({:.1} s)",
        if all_ok {
            "ours at or below the better peer on every row"
        } else {
            "ours above the better peer on some rows"
        },
        start.elapsed().as_secs_f64()
    );
}
