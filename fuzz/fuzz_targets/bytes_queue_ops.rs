//! Drives a random sequence of operations on `queue::bytes::BytesQueue` and
//! compares every answer with a `VecDeque<Vec<u8>>` bounded by its capacity.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use resilience::queue::bytes::{BytesQueue, PopError, PushError};

#[derive(Arbitrary, Debug)]
enum Op {
    Push(Vec<u8>),
    Pop,
    PopInto(u8),
    PushMany(Vec<Vec<u8>>),
    PopMany(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    max_len: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let max_len = input.max_len as usize;
    let q = BytesQueue::try_new(input.capacity as usize % 33, max_len).unwrap();
    let cap = q.capacity();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    for op in input.ops {
        match op {
            Op::Push(m) => {
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
            Op::Pop => assert_eq!(q.pop(), model.pop_front()),
            Op::PopInto(size) => {
                let mut buf = vec![0u8; size as usize];
                match (q.pop_into(&mut buf), model.front()) {
                    (Err(PopError::Empty), None) => {}
                    (Err(PopError::BufferTooSmall { needed }), Some(m)) => {
                        assert!(needed == m.len() && needed > buf.len())
                    }
                    (Ok(n), Some(m)) => {
                        assert_eq!(&buf[..n], &m[..]);
                        model.pop_front();
                    }
                    (r, m) => panic!("pop_into gave {r:?}, model has {m:?}"),
                }
            }
            Op::PushMany(msgs) => {
                let (n, err) = q.push_many(msgs.iter().map(Vec::as_slice));
                for m in &msgs[..n] {
                    model.push_back(m.clone());
                }
                match err {
                    None => assert_eq!(n, msgs.len()),
                    Some(PushError::Full) => assert_eq!(model.len(), cap),
                    Some(PushError::TooLarge) => assert!(msgs[n].len() > max_len),
                }
            }
            Op::PopMany(max) => {
                let mut out = Vec::new();
                let n = q.pop_many(max as usize, &mut out);
                let want: Vec<Vec<u8>> = (0..n).filter_map(|_| model.pop_front()).collect();
                assert_eq!(out, want);
                assert!(n == max as usize || model.is_empty());
            }
        }
        assert_eq!(q.len(), model.len());
    }
});
