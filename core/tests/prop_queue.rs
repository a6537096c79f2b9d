//! Property tests: random operation sequences on both rings, compared step
//! by step with `VecDeque` (bounded by the rounded-up capacity).
#![cfg(not(resilience_loom))]

mod common;

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use common::{check, Rng};
use resilience::queue::{mpmc, spsc};

fn capacity(rng: &mut Rng) -> (usize, usize) {
    let requested = rng.range(1, 64) as usize;
    (requested, requested.next_power_of_two())
}

#[test]
fn spsc_matches_vecdeque() {
    check(500, |rng| {
        let (requested, cap) = capacity(rng);
        let (mut tx, mut rx) = spsc::Ring::<u64>::new(requested);
        assert_eq!((tx.capacity(), rx.capacity()), (cap, cap));
        let mut model = VecDeque::new();
        let mut next = 0u64;
        for _ in 0..rng.range(1, 300) {
            match rng.below(8) {
                0 => {
                    let r = tx.push(next);
                    if model.len() < cap {
                        assert_eq!(r, Ok(()));
                        model.push_back(next);
                    } else {
                        assert_eq!(r, Err(next));
                    }
                    next += 1;
                }
                1 => {
                    let items: Vec<u64> = (next..next + rng.below(2 * cap as u64 + 1)).collect();
                    let n = tx.push_slice(&items);
                    assert_eq!(n, items.len().min(cap - model.len()));
                    model.extend(&items[..n]);
                    next += n as u64;
                }
                2 => {
                    let mut it = next..next + rng.below(2 * cap as u64 + 1);
                    let want = (it.end - it.start) as usize;
                    let n = tx.push_iter(&mut it);
                    assert_eq!(n, want.min(cap - model.len()));
                    // Not advanced past what fit.
                    assert_eq!((it.end - it.start) as usize, want - n);
                    model.extend(next..next + n as u64);
                    next += n as u64;
                }
                3 => assert_eq!(rx.pop(), model.pop_front()),
                4 => {
                    let max = rng.below(cap as u64 + 2) as usize;
                    let mut out = vec![u64::MAX];
                    let n = rx.pop_into(&mut out, max);
                    assert_eq!(n, max.min(model.len()));
                    let expect: Vec<u64> = std::iter::once(u64::MAX).chain(model.drain(..n)).collect();
                    assert_eq!(out, expect);
                }
                5 => {
                    let max = rng.below(cap as u64 + 2) as usize;
                    let chunk = rx.read_chunk(max);
                    let len = max.min(model.len());
                    assert_eq!(chunk.len(), len);
                    assert_eq!(chunk.is_empty(), len == 0);
                    let (a, b) = chunk.as_slices();
                    let seen: Vec<u64> = a.iter().chain(b).copied().collect();
                    assert_eq!(seen, model.iter().take(len).copied().collect::<Vec<_>>());
                    match rng.below(3) {
                        0 => {} // the chunk goes away unconsumed
                        1 => {
                            chunk.commit_all();
                            model.drain(..len);
                        }
                        _ => {
                            let n = rng.below(len as u64 + 3) as usize;
                            chunk.commit(n);
                            model.drain(..n.min(len));
                        }
                    }
                }
                6 => assert_eq!(rx.peek(), model.front()),
                _ => {}
            }
            assert_eq!(tx.len(), model.len());
            assert_eq!(rx.len(), model.len());
            assert_eq!(tx.slots(), cap - model.len());
            assert_eq!(tx.is_full(), model.len() == cap);
            assert_eq!(rx.is_empty(), model.is_empty());
        }
    });
}

#[test]
fn mpmc_matches_vecdeque() {
    check(500, |rng| {
        let (requested, cap) = capacity(rng);
        let q = mpmc::Ring::<u64>::new(requested);
        assert_eq!(q.capacity(), cap);
        let mut model = VecDeque::new();
        let mut next = 0u64;
        for _ in 0..rng.range(1, 300) {
            // Bias towards pushes or pops in phases so the ring fills and drains.
            match rng.below(6) {
                0..=1 => {
                    let r = q.try_push(next);
                    if model.len() < cap {
                        assert_eq!(r, Ok(()));
                        model.push_back(next);
                    } else {
                        assert_eq!(r, Err(next));
                    }
                    next += 1;
                }
                2..=3 => assert_eq!(q.try_pop(), model.pop_front()),
                // Batches: a prefix that fits goes in, in order.
                4 => {
                    let batch: Vec<u64> = (next..next + rng.below(2 * cap as u64 + 2)).collect();
                    let pushed = q.push_slice(&batch);
                    assert_eq!(pushed, batch.len().min(cap - model.len()));
                    model.extend(&batch[..pushed]);
                    next += batch.len() as u64;
                }
                _ => {
                    let mut out = vec![u64::MAX; rng.below(2 * cap as u64 + 2) as usize];
                    let popped = q.pop_slice(&mut out);
                    assert_eq!(popped, out.len().min(model.len()));
                    let want: Vec<u64> = model.drain(..popped).collect();
                    assert_eq!(&out[..popped], &want[..]);
                    assert!(out[popped..].iter().all(|&v| v == u64::MAX), "wrote past the count");
                }
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(q.is_empty(), model.is_empty());
            assert_eq!(q.is_full(), model.len() == cap);
        }
    });
}

/// An item that counts its drops, so a double drop or a leak shows.
struct Counted(Rc<Cell<u64>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn every_item_is_dropped_exactly_once() {
    check(300, |rng| {
        let drops = Rc::new(Cell::new(0));
        let (_, cap) = capacity(rng);
        let (mut tx, mut rx) = spsc::Ring::new(cap);
        let q = mpmc::Ring::new(cap);
        let mut made = 0u64;
        for _ in 0..rng.range(1, 200) {
            match rng.below(7) {
                0 => {
                    made += 1;
                    drop(tx.push(Counted(drops.clone())));
                }
                1 => {
                    let n = rng.below(8) as usize;
                    made += n as u64;
                    let items: Vec<Counted> = (0..n).map(|_| Counted(drops.clone())).collect();
                    let mut items = items.into_iter();
                    tx.push_iter(&mut items);
                    // Whatever did not fit is dropped with the iterator.
                }
                2 => drop(rx.pop()),
                3 => drop(rx.read_chunk(rng.below(8) as usize)), // consumes nothing
                4 => rx.read_chunk(rng.below(8) as usize).commit(rng.below(8) as usize),
                5 => {
                    made += 1;
                    drop(q.try_push(Counted(drops.clone())));
                }
                _ => drop(q.try_pop()),
            }
        }
        if rng.chance(0.5) {
            drop(tx);
            drop(rx);
        } else {
            drop(rx);
            drop(tx);
        }
        drop(q);
        assert_eq!(drops.get(), made);
    });
}
