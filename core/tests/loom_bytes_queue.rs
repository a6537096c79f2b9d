//! Loom models of `queue::bytes::BytesQueue`: producers and consumers racing
//! on the per-slot sequence numbers, with the message bytes checked intact.
#![cfg(resilience_loom)]

use loom::sync::Arc;
use loom::thread;
use resilience::queue::bytes::{BytesQueue, PopError, PushError};

fn push_wait(q: &BytesQueue, msg: &[u8]) {
    while let Err(e) = q.push(msg) {
        assert_eq!(e, PushError::Full);
        thread::yield_now();
    }
}

fn pop_wait(q: &BytesQueue) -> Vec<u8> {
    loop {
        if let Some(v) = q.pop() {
            return v;
        }
        thread::yield_now();
    }
}

#[test]
fn two_producers_one_consumer() {
    loom::model(|| {
        let q = Arc::new(BytesQueue::try_new(2, 2).unwrap());
        let producers: Vec<_> = [&b"ab"[..], &b"c"[..]]
            .into_iter()
            .map(|m| {
                let q = q.clone();
                thread::spawn(move || push_wait(&q, m))
            })
            .collect();
        let mut got = [pop_wait(&q), pop_wait(&q)];
        got.sort();
        assert_eq!(got, [b"ab".to_vec(), b"c".to_vec()]);
        assert_eq!(q.pop(), None);
        for p in producers {
            p.join().unwrap();
        }
    });
}

#[test]
fn one_producer_two_consumers_small_buffer() {
    loom::model(|| {
        let q = Arc::new(BytesQueue::try_new(2, 2).unwrap());
        q.push(b"xy").unwrap();
        q.push(b"z").unwrap();
        let q2 = q.clone();
        // A one-byte buffer either takes "z" or is told the size; never a
        // torn or lost message.
        let small = thread::spawn(move || {
            let mut buf = [0u8; 1];
            match q2.pop_into(&mut buf) {
                Ok(n) => Some(buf[..n].to_vec()),
                Err(PopError::BufferTooSmall { needed }) => {
                    assert_eq!(needed, 2);
                    None
                }
                Err(PopError::Empty) => None,
            }
        });
        let first = q.pop();
        let small = small.join().unwrap();
        let mut all: Vec<Vec<u8>> = first.into_iter().chain(small).collect();
        all.extend(q.pop());
        all.extend(q.pop());
        all.sort();
        assert_eq!(all, [b"xy".to_vec(), b"z".to_vec()]);
    });
}
