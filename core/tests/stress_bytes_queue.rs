//! Multi-threaded stress of `queue::bytes::BytesQueue`: with two producers
//! and two consumers on a small queue, every message arrives exactly once,
//! intact, and in order per producer.
#![cfg(not(resilience_loom))]

use std::sync::Arc;
use std::thread;

use resilience::queue::bytes::{BytesQueue, PopError};

const N: u64 = if cfg!(miri) { 100 } else { 200_000 };

/// Message `i` of producer `p`: 0..=24 bytes, every byte derived from (p, i).
fn message(p: u64, i: u64) -> Vec<u8> {
    let len = (i % 17) as usize;
    let mut m = Vec::with_capacity(len + 9);
    m.push(p as u8);
    m.extend_from_slice(&i.to_le_bytes());
    m.extend((0..len).map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8)));
    m
}

#[test]
fn two_by_two_delivers_everything_intact() {
    let q = Arc::new(BytesQueue::try_new(8, 32).unwrap());
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for i in 0..N {
                    let m = message(p, i);
                    while q.push(&m).is_err() {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 32];
                let mut last = [None::<u64>; 2];
                loop {
                    match q.pop_into(&mut buf) {
                        Ok(n) => {
                            let m = &buf[..n];
                            let p = m[0] as u64;
                            let i = u64::from_le_bytes(m[1..9].try_into().unwrap());
                            assert_eq!(m, &message(p, i)[..], "torn message");
                            if p == 2 {
                                break;
                            }
                            assert!(last[p as usize].is_none_or(|l| l < i), "out of order");
                            last[p as usize] = Some(i);
                            seen.push((p, i));
                        }
                        Err(PopError::Empty) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
                seen
            })
        })
        .collect();
    for t in producers {
        t.join().unwrap();
    }
    // One stop message per consumer.
    for _ in 0..2 {
        let m = message(2, u64::MAX);
        while q.push(&m).is_err() {
            thread::yield_now();
        }
    }
    let mut all: Vec<(u64, u64)> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    all.sort_unstable();
    let want: Vec<(u64, u64)> = (0..2).flat_map(|p| (0..N).map(move |i| (p, i))).collect();
    assert_eq!(all, want);
}
