//! Property test: random operation sequences on `queue::bytes::BytesQueue`,
//! compared step by step with a `VecDeque<Vec<u8>>` bounded by the rounded-up
//! capacity.
#![cfg(not(resilience_loom))]

mod common;

use std::collections::VecDeque;

use common::{check, Rng};
use resilience::queue::bytes::{BytesQueue, PopError, PushError};

fn message(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.below(max as u64 + 1) as usize;
    (0..len).map(|_| rng.below(256) as u8).collect()
}

#[test]
fn bytes_queue_matches_vecdeque() {
    check(500, |rng| {
        let requested = rng.range(1, 16) as usize;
        let cap = requested.next_power_of_two();
        let max_len = rng.below(40) as usize;
        let q = BytesQueue::try_new(requested, max_len).unwrap();
        assert_eq!((q.capacity(), q.max_len()), (cap, max_len));
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for _ in 0..rng.range(1, 300) {
            match rng.below(6) {
                0 | 1 => {
                    // Sometimes longer than max_len.
                    let m = message(rng, max_len + 2);
                    let r = q.push(&m);
                    if m.len() > max_len {
                        assert_eq!(r, Err(PushError::TooLarge));
                    } else if model.len() == cap {
                        assert_eq!(r, Err(PushError::Full));
                    } else {
                        assert_eq!(r, Ok(()));
                        model.push_back(m);
                    }
                }
                2 => assert_eq!(q.pop(), model.pop_front()),
                3 => {
                    let mut buf = vec![0xAA; rng.below(max_len as u64 + 1) as usize];
                    match (q.pop_into(&mut buf), model.front()) {
                        (Err(PopError::Empty), None) => {}
                        (Err(PopError::BufferTooSmall { needed }), Some(m)) => {
                            assert_eq!(needed, m.len());
                            assert!(m.len() > buf.len());
                        }
                        (Ok(n), Some(m)) => {
                            assert_eq!(&buf[..n], &m[..]);
                            model.pop_front();
                        }
                        (r, m) => panic!("pop_into gave {r:?}, model has {m:?}"),
                    }
                }
                4 => {
                    let msgs: Vec<Vec<u8>> =
                        (0..rng.below(cap as u64 + 2)).map(|_| message(rng, max_len)).collect();
                    let (n, err) = q.push_many(msgs.iter().map(Vec::as_slice));
                    let room = cap - model.len();
                    assert_eq!(n, msgs.len().min(room));
                    assert_eq!(err, (msgs.len() > room).then_some(PushError::Full));
                    model.extend(msgs.into_iter().take(n));
                }
                _ => {
                    let max = rng.below(cap as u64 + 2) as usize;
                    let mut out = Vec::new();
                    let n = q.pop_many(max, &mut out);
                    let want: Vec<Vec<u8>> =
                        (0..max.min(model.len())).map(|_| model.pop_front().unwrap()).collect();
                    assert_eq!(n, want.len());
                    assert_eq!(out, want);
                }
            }
            assert_eq!(q.len(), model.len());
        }
    });
}
