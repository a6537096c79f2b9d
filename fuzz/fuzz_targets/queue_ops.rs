//! Drives a random sequence of operations on both rings and compares every
//! answer with `VecDeque` bounded by the ring's capacity.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use resilience::queue::{mpmc, spsc};

#[derive(Arbitrary, Debug)]
enum Op {
    Push(u16),
    PushSlice(Vec<u16>),
    PushAll(Vec<u16>),
    PushIter(u8),
    Pop,
    PopInto(u8),
    ReadChunk { max: u8, commit: Option<u8> },
    Peek,
    MpmcPush(u16),
    MpmcPop,
    MpmcPushSlice(Vec<u16>),
    MpmcPopSlice(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let requested = input.capacity as usize % 65;
    let cap = requested.max(1).next_power_of_two();
    let (mut tx, mut rx) = spsc::Ring::<u16>::new(requested);
    let q = mpmc::Ring::<u16>::new(requested);
    assert_eq!((tx.capacity(), q.capacity()), (cap, cap));
    let mut model = VecDeque::new();
    let mut mmodel = VecDeque::new();
    for op in input.ops {
        match op {
            Op::Push(v) => {
                let r = tx.push(v);
                if model.len() < cap {
                    assert_eq!(r, Ok(()));
                    model.push_back(v);
                } else {
                    assert_eq!(r, Err(v));
                }
            }
            Op::PushSlice(items) => {
                let n = tx.push_slice(&items);
                assert_eq!(n, items.len().min(cap - model.len()));
                model.extend(&items[..n]);
            }
            Op::PushAll(items) => {
                let fits = items.len() <= cap - model.len();
                assert_eq!(tx.push_all(&items), fits);
                if fits {
                    model.extend(&items);
                }
            }
            Op::PushIter(k) => {
                let mut it = 0..k as u16;
                let n = tx.push_iter(&mut it);
                assert_eq!(n, (k as usize).min(cap - model.len()));
                assert_eq!(it.start as usize, n);
                model.extend(0..n as u16);
            }
            Op::Pop => assert_eq!(rx.pop(), model.pop_front()),
            Op::PopInto(max) => {
                let mut out = Vec::new();
                let n = rx.pop_into(&mut out, max as usize);
                assert_eq!(n, (max as usize).min(model.len()));
                assert!(out.iter().eq(model.drain(..n).collect::<Vec<_>>().iter()));
            }
            Op::ReadChunk { max, commit } => {
                let chunk = rx.read_chunk(max as usize);
                let len = (max as usize).min(model.len());
                assert_eq!(chunk.len(), len);
                let (a, b) = chunk.as_slices();
                assert!(a.iter().chain(b).eq(model.iter().take(len)));
                if let Some(k) = commit {
                    chunk.commit(k as usize);
                    model.drain(..(k as usize).min(len));
                }
            }
            Op::Peek => assert_eq!(rx.peek(), model.front()),
            Op::MpmcPush(v) => {
                let r = q.try_push(v);
                if mmodel.len() < cap {
                    assert_eq!(r, Ok(()));
                    mmodel.push_back(v);
                } else {
                    assert_eq!(r, Err(v));
                }
            }
            Op::MpmcPop => assert_eq!(q.try_pop(), mmodel.pop_front()),
            Op::MpmcPushSlice(items) => {
                let n = q.push_slice(&items);
                assert_eq!(n, items.len().min(cap - mmodel.len()));
                mmodel.extend(&items[..n]);
            }
            Op::MpmcPopSlice(max) => {
                let mut out = vec![0u16; max as usize];
                let n = q.pop_slice(&mut out);
                assert_eq!(n, out.len().min(mmodel.len()));
                let want: Vec<u16> = mmodel.drain(..n).collect();
                assert_eq!(&out[..n], &want[..]);
            }
        }
        assert_eq!(tx.len(), model.len());
        assert_eq!(rx.len(), model.len());
        assert_eq!(tx.is_full(), model.len() == cap);
        assert_eq!(q.len(), mmodel.len());
    }
});
