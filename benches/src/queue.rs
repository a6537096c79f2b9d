//! Queue benches: `spsc::Ring` beside rtrb and crossbeam's `ArrayQueue`,
//! `mpmc::Ring` beside `ArrayQueue`.
//!
//! The workloads live here and are shared by the criterion benches
//! (`register`) and the `queue-table` binary, which prints the README table:
//!
//! - one-to-one: a producer and a consumer pinned to two cores move `n`
//!   `u64`s through a ring of [`CAPACITY`]; the consumer checks the order;
//! - batch-of-32: the same, pushing slices of 32 and reading chunks of 32;
//! - pairs: one thread pushes then pops, `n` times (the uncontended cost).

use std::hint::{black_box, spin_loop};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use resilience::queue::bytes::BytesQueue;
use resilience::queue::{mpmc, spsc};
use resilience_benches::pin_to;

/// Ring capacity used by every queue bench.
pub const CAPACITY: usize = 4096;

/// Batch size of the batch benches.
pub const BATCH: usize = 32;

/// A bounded queue of `u64` seen as a producer end and a consumer end.
pub trait Queue {
    /// Name in reports.
    const NAME: &'static str;
    /// The producer end.
    type Tx: Send + 'static;
    /// The consumer end.
    type Rx: Send + 'static;
    /// A queue holding `cap` items.
    fn make(cap: usize) -> (Self::Tx, Self::Rx);
    /// Pushes one item; false when full.
    fn push(tx: &mut Self::Tx, v: u64) -> bool;
    /// Pops one item.
    fn pop(rx: &mut Self::Rx) -> Option<u64>;
}

/// A queue with a batch API: whole batches in, whole batches out (a batch
/// is shorter only at the very end of a transfer).
pub trait Batch: Queue {
    /// Pushes all of `items` if that many slots are free; false otherwise.
    fn push_batch(tx: &mut Self::Tx, items: &[u64]) -> bool;
    /// Pops exactly `n` items if that many are queued, handing each to `f`;
    /// false otherwise.
    fn pop_batch(rx: &mut Self::Rx, n: usize, f: impl FnMut(u64)) -> bool;
}

/// `resilience::queue::spsc::Ring`.
pub struct Spsc;
/// `rtrb::RingBuffer`.
pub struct Rtrb;
/// `crossbeam_queue::ArrayQueue` (used by one producer and one consumer).
pub struct CrossbeamArray;
/// `resilience::queue::mpmc::Ring` (used by one producer and one consumer).
pub struct Mpmc;

impl Queue for Spsc {
    const NAME: &'static str = "resilience spsc";
    type Tx = spsc::Producer<u64>;
    type Rx = spsc::Consumer<u64>;
    fn make(cap: usize) -> (Self::Tx, Self::Rx) {
        spsc::Ring::new(cap)
    }
    #[inline(always)]
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    #[inline(always)]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop()
    }
}

impl Batch for Spsc {
    #[inline(always)]
    fn push_batch(tx: &mut Self::Tx, items: &[u64]) -> bool {
        tx.push_all(items)
    }
    #[inline(always)]
    fn pop_batch(rx: &mut Self::Rx, n: usize, mut f: impl FnMut(u64)) -> bool {
        let chunk = rx.read_chunk(n);
        if chunk.len() < n {
            return false; // dropping the chunk consumes nothing
        }
        let (a, b) = chunk.as_slices();
        a.iter().chain(b).for_each(|&v| f(v));
        chunk.commit_all();
        true
    }
}

impl Queue for Rtrb {
    const NAME: &'static str = "rtrb";
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;
    fn make(cap: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(cap)
    }
    #[inline(always)]
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    #[inline(always)]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop().ok()
    }
}

impl Batch for Rtrb {
    #[inline(always)]
    fn push_batch(tx: &mut Self::Tx, items: &[u64]) -> bool {
        tx.push_entire_slice(items).is_ok()
    }
    #[inline(always)]
    fn pop_batch(rx: &mut Self::Rx, n: usize, mut f: impl FnMut(u64)) -> bool {
        match rx.read_chunk(n) {
            Ok(chunk) => {
                let (a, b) = chunk.as_slices();
                a.iter().chain(b).for_each(|&v| f(v));
                chunk.commit_all();
                true
            }
            Err(_) => false,
        }
    }
}

impl Queue for CrossbeamArray {
    const NAME: &'static str = "crossbeam ArrayQueue";
    type Tx = Arc<ArrayQueue<u64>>;
    type Rx = Arc<ArrayQueue<u64>>;
    fn make(cap: usize) -> (Self::Tx, Self::Rx) {
        let q = Arc::new(ArrayQueue::new(cap));
        (q.clone(), q)
    }
    #[inline(always)]
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.push(v).is_ok()
    }
    #[inline(always)]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.pop()
    }
}

impl Queue for Mpmc {
    const NAME: &'static str = "resilience mpmc";
    type Tx = Arc<mpmc::Ring<u64>>;
    type Rx = Arc<mpmc::Ring<u64>>;
    fn make(cap: usize) -> (Self::Tx, Self::Rx) {
        let q = Arc::new(mpmc::Ring::new(cap));
        (q.clone(), q)
    }
    #[inline(always)]
    fn push(tx: &mut Self::Tx, v: u64) -> bool {
        tx.try_push(v).is_ok()
    }
    #[inline(always)]
    fn pop(rx: &mut Self::Rx) -> Option<u64> {
        rx.try_pop()
    }
}

/// Waits for the other side: spins briefly, then yields, so that on a busy
/// machine a waiting thread hands its core to the one it waits for instead of
/// burning its whole time slice. Every queue gets the same treatment.
#[derive(Default)]
struct Wait(u32);

impl Wait {
    #[inline]
    fn snooze(&mut self) {
        if self.0 < 64 {
            self.0 += 1;
            spin_loop();
        } else {
            thread::yield_now();
        }
    }

    #[inline]
    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Runs `produce` on a thread pinned to core 0 and `consume` on a thread
/// pinned to core 1, both released by one barrier; returns the consumer's
/// time from the barrier to its last item.
///
/// Both threads are spawned from the (never pinned) calling thread: a thread
/// inherits its parent's affinity, and `pin_to` picks among the cores the
/// caller may use, so a child of a pinned thread could not leave its core.
fn two_cores<Tx: Send + 'static, C: FnOnce(u64) + Send>(
    tx: Tx,
    produce: fn(Tx, u64),
    n: u64,
    consume: C,
) -> Duration {
    let start = Barrier::new(2);
    thread::scope(|s| {
        let producer = s.spawn(|| {
            pin_to(0);
            start.wait();
            produce(tx, n);
        });
        let consumer = s.spawn(|| {
            pin_to(1);
            start.wait();
            let t0 = Instant::now();
            consume(n);
            t0.elapsed()
        });
        producer.join().expect("producer panicked");
        consumer.join().expect("consumer panicked")
    })
}

/// Moves `0..n` from a producer on core 0 to a consumer on core 1, one item
/// at a time; panics if an item is lost or out of order.
pub fn one_to_one<Q: Queue>(n: u64) -> Duration {
    let (tx, mut rx) = Q::make(CAPACITY);
    fn produce<Q: Queue>(mut tx: Q::Tx, n: u64) {
        let mut wait = Wait::default();
        for i in 0..n {
            while !Q::push(&mut tx, i) {
                wait.snooze();
            }
            wait.reset();
        }
    }
    two_cores(tx, produce::<Q>, n, |n| {
        let mut expect = 0;
        let mut wait = Wait::default();
        while expect < n {
            match Q::pop(&mut rx) {
                Some(v) => {
                    assert_eq!(v, expect, "{}: out of order", Q::NAME);
                    expect += 1;
                    wait.reset();
                }
                None => wait.snooze(),
            }
        }
    })
}

/// Like [`one_to_one`], but pushing slices of [`BATCH`] and reading chunks of
/// [`BATCH`] in place.
pub fn one_to_one_batch<Q: Batch>(n: u64) -> Duration {
    let (tx, mut rx) = Q::make(CAPACITY);
    fn produce<Q: Batch>(mut tx: Q::Tx, n: u64) {
        let mut next = 0;
        let mut buf = [0u64; BATCH];
        let mut wait = Wait::default();
        while next < n {
            let len = (n - next).min(BATCH as u64) as usize;
            for (i, slot) in buf[..len].iter_mut().enumerate() {
                *slot = next + i as u64;
            }
            while !Q::push_batch(&mut tx, &buf[..len]) {
                wait.snooze();
            }
            wait.reset();
            next += len as u64;
        }
    }
    two_cores(tx, produce::<Q>, n, |n| {
        let mut expect = 0;
        let mut ok = true;
        let mut wait = Wait::default();
        while expect < n {
            let want = (n - expect).min(BATCH as u64) as usize;
            let got = Q::pop_batch(&mut rx, want, |v| {
                ok &= v == expect;
                expect += 1;
            });
            if got {
                wait.reset();
            } else {
                wait.snooze();
            }
        }
        assert!(ok, "{}: batch out of order", Q::NAME);
    })
}

/// One thread pushes then pops, `n` times (the ring never holds more than
/// one item); panics on a wrong item.
pub fn pairs<Q: Queue>(n: u64) -> Duration {
    let (mut tx, mut rx) = Q::make(CAPACITY);
    let t0 = Instant::now();
    for i in 0..n {
        assert!(Q::push(&mut tx, black_box(i)));
        assert_eq!(Q::pop(&mut rx), Some(i));
    }
    t0.elapsed()
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g
}

/// Registers the queue benches. Each iteration moves one item, so the
/// reported time is per item; the workloads check order as they go.
pub fn register(c: &mut Criterion) {
    // Right before timing anything: every workload delivers in order.
    let n = 10_000;
    one_to_one::<Spsc>(n);
    one_to_one_batch::<Spsc>(n);
    pairs::<Mpmc>(n);

    let mut g = group(c, "queue/spsc_one_to_one");
    g.bench_function(Spsc::NAME, |b| b.iter_custom(one_to_one::<Spsc>));
    g.bench_function(Rtrb::NAME, |b| b.iter_custom(one_to_one::<Rtrb>));
    g.bench_function(CrossbeamArray::NAME, |b| b.iter_custom(one_to_one::<CrossbeamArray>));
    g.finish();

    let mut g = group(c, "queue/spsc_batch32");
    g.bench_function(Spsc::NAME, |b| b.iter_custom(one_to_one_batch::<Spsc>));
    g.bench_function(Rtrb::NAME, |b| b.iter_custom(one_to_one_batch::<Rtrb>));
    g.finish();

    let mut g = group(c, "queue/spsc_pairs");
    g.bench_function(Spsc::NAME, |b| b.iter_custom(pairs::<Spsc>));
    g.bench_function(Rtrb::NAME, |b| b.iter_custom(pairs::<Rtrb>));
    g.bench_function(CrossbeamArray::NAME, |b| b.iter_custom(pairs::<CrossbeamArray>));
    g.finish();

    let mut g = group(c, "queue/mpmc_one_to_one");
    g.bench_function(Mpmc::NAME, |b| b.iter_custom(one_to_one::<Mpmc>));
    g.bench_function(CrossbeamArray::NAME, |b| b.iter_custom(one_to_one::<CrossbeamArray>));
    g.finish();

    let mut g = group(c, "queue/mpmc_pairs");
    g.bench_function(Mpmc::NAME, |b| b.iter_custom(pairs::<Mpmc>));
    g.bench_function(CrossbeamArray::NAME, |b| b.iter_custom(pairs::<CrossbeamArray>));
    g.finish();

    bytes_pairs(c);
}

/// One thread pushes then pops a 64-byte message: the copy-in/copy-out cost
/// of `BytesQueue` against crossbeam's `ArrayQueue` of arrays and of `Vec`s.
fn bytes_pairs(c: &mut Criterion) {
    let msg = [7u8; 64];
    let bq = BytesQueue::try_new(64, 64).unwrap();
    let arr: ArrayQueue<[u8; 64]> = ArrayQueue::new(64);
    let vecs: ArrayQueue<Vec<u8>> = ArrayQueue::new(64);
    let mut buf = [0u8; 64];
    // Checked before timing: each round trip returns the message intact.
    bq.push(&msg).unwrap();
    assert_eq!(bq.pop_into(&mut buf), Ok(64));
    assert_eq!(buf, msg);
    arr.push(msg).unwrap();
    assert_eq!(arr.pop(), Some(msg));
    vecs.push(msg.to_vec()).unwrap();
    assert_eq!(vecs.pop().as_deref(), Some(&msg[..]));

    let mut g = group(c, "queue/bytes64_pairs");
    g.bench_function("resilience::BytesQueue", |b| {
        b.iter(|| {
            bq.push(black_box(&msg)).unwrap();
            black_box(bq.pop_into(&mut buf).unwrap())
        })
    });
    g.bench_function("crossbeam::ArrayQueue<[u8;64]>", |b| {
        b.iter(|| {
            arr.push(black_box(msg)).unwrap();
            black_box(arr.pop().unwrap())
        })
    });
    g.bench_function("crossbeam::ArrayQueue<Vec<u8>>", |b| {
        b.iter(|| {
            vecs.push(black_box(&msg).to_vec()).unwrap();
            black_box(vecs.pop().unwrap())
        })
    });
    g.finish();
}
