//! Multi-threaded stress: every item arrives exactly once, and in order per
//! producer, through small rings that fill and drain all the time.
#![cfg(not(resilience_loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use resilience::queue::{mpmc, spsc};

/// Items per producer: enough to wrap a small ring thousands of times, small
/// enough for a few seconds in a debug build (and far fewer under Miri).
const N: u64 = if cfg!(miri) { 200 } else { 1_000_000 };

#[test]
fn spsc_delivers_everything_in_order() {
    let (mut tx, mut rx) = spsc::Ring::<u64>::new(64);
    let producer = thread::spawn(move || {
        let mut next = 0u64;
        let mut round = 0u64;
        while next < N {
            // Rotate through the three ways to push.
            let pushed = match round % 3 {
                0 => tx.push(next).is_ok() as u64,
                1 => {
                    let batch: Vec<u64> = (next..(next + 37).min(N)).collect();
                    tx.push_slice(&batch) as u64
                }
                _ => tx.push_iter(next..(next + 19).min(N)) as u64,
            };
            next += pushed;
            round += 1;
            if pushed == 0 {
                thread::yield_now();
            }
        }
    });
    let mut expect = 0u64;
    let mut round = 0u64;
    let mut buf = Vec::new();
    while expect < N {
        let got = match round % 3 {
            0 => match rx.pop() {
                Some(v) => {
                    assert_eq!(v, expect);
                    1
                }
                None => 0,
            },
            1 => {
                buf.clear();
                let n = rx.pop_into(&mut buf, 23);
                assert!(buf.iter().copied().eq(expect..expect + n as u64));
                n as u64
            }
            _ => {
                let chunk = rx.read_chunk(41);
                let n = chunk.len();
                let (a, b) = chunk.as_slices();
                assert!(a.iter().chain(b).copied().eq(expect..expect + n as u64));
                chunk.commit_all();
                n as u64
            }
        };
        expect += got;
        round += 1;
        if got == 0 {
            thread::yield_now();
        }
    }
    producer.join().unwrap();
    assert_eq!(rx.pop(), None);
    assert!(rx.is_abandoned());
}

/// Counts live instances, to check that nothing leaks or is dropped twice
/// while both ends race and one of them leaves early.
struct Live(Arc<AtomicUsize>);
impl Live {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Live(live.clone())
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[test]
fn spsc_consumer_leaving_early_leaks_nothing() {
    let live = Arc::new(AtomicUsize::new(0));
    let (mut tx, mut rx) = spsc::Ring::new(16);
    let l = live.clone();
    let producer = thread::spawn(move || {
        while !tx.is_abandoned() {
            if tx.push(Live::new(&l)).is_err() {
                thread::yield_now();
            }
        }
    });
    let mut taken = 0;
    while taken < N / 10 {
        match rx.pop() {
            Some(_) => taken += 1,
            None => thread::yield_now(),
        }
    }
    drop(rx); // with items still inside, while the producer keeps pushing
    producer.join().unwrap();
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

#[test]
fn mpmc_two_producers_two_consumers() {
    mpmc_2x2(false);
}

/// The same with `push_slice` runs of up to 7 and `pop_slice` runs of up to 5.
#[test]
fn mpmc_two_producers_two_consumers_in_batches() {
    mpmc_2x2(true);
}

fn mpmc_2x2(batch: bool) {
    const PRODUCERS: u64 = 2;
    let q = Arc::new(mpmc::Ring::<(u64, u64)>::new(32));
    let done = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut i = 0;
                while i < N {
                    if batch {
                        let run: Vec<(u64, u64)> = (i..(i + 1 + i % 7).min(N)).map(|i| (p, i)).collect();
                        let n = q.push_slice(&run);
                        i += n as u64;
                        if n == 0 {
                            thread::yield_now();
                        }
                    } else {
                        let mut item = (p, i);
                        while let Err(back) = q.try_push(item) {
                            item = back;
                            thread::yield_now();
                        }
                        i += 1;
                    }
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [(0u64, 0u64); 5];
                loop {
                    if batch {
                        let n = q.pop_slice(&mut buf);
                        got.extend_from_slice(&buf[..n]);
                        if n > 0 {
                            continue;
                        }
                    }
                    if let Some(item) = q.try_pop() {
                        got.push(item);
                    } else if done.load(Ordering::Acquire) == PRODUCERS as usize {
                        // Producers finished before this check: drain and stop.
                        while let Some(item) = q.try_pop() {
                            got.push(item);
                        }
                        return got;
                    } else {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut seen = vec![vec![false; N as usize]; PRODUCERS as usize];
    for c in consumers {
        let got = c.join().unwrap();
        // Per producer, each consumer sees increasing sequence numbers.
        let mut last = [None::<u64>; PRODUCERS as usize];
        for (p, i) in got {
            let p = p as usize;
            assert!(last[p] < Some(i), "producer {p}: {i} after {:?}", last[p]);
            last[p] = Some(i);
            assert!(!seen[p][i as usize], "({p}, {i}) delivered twice");
            seen[p][i as usize] = true;
        }
    }
    assert!(seen.iter().flatten().all(|&s| s), "an item was lost");
    assert!(q.is_empty());
}
