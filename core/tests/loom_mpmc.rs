//! Loom models of `queue::mpmc::Ring`: producers and consumers racing on
//! the per-slot sequence numbers.
#![cfg(resilience_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use resilience::queue::mpmc::Ring;

fn push_wait<T>(q: &Ring<T>, mut item: T) {
    while let Err(back) = q.try_push(item) {
        item = back;
        thread::yield_now();
    }
}

fn pop_wait<T>(q: &Ring<T>) -> T {
    loop {
        if let Some(v) = q.try_pop() {
            return v;
        }
        thread::yield_now();
    }
}

#[test]
fn two_producers_one_consumer() {
    loom::model(|| {
        let q = Arc::new(Ring::<u32>::new(2));
        let producers: Vec<_> = [10, 20]
            .into_iter()
            .map(|v| {
                let q = q.clone();
                thread::spawn(move || push_wait(&q, v))
            })
            .collect();
        let mut got = [pop_wait(&q), pop_wait(&q)];
        got.sort();
        assert_eq!(got, [10, 20]);
        assert_eq!(q.try_pop(), None);
        for p in producers {
            p.join().unwrap();
        }
    });
}

#[test]
fn one_producer_two_consumers() {
    loom::model(|| {
        let q = Arc::new(Ring::<u32>::new(2));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || {
                    // Each consumer takes what it finds, in the order it finds it.
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        if let Some(v) = q.try_pop() {
                            got.push(v);
                        }
                    }
                    got
                })
            })
            .collect();
        q.try_push(1).unwrap();
        q.try_push(2).unwrap();
        let mut all = Vec::new();
        for c in consumers {
            let got = c.join().unwrap();
            // One producer: each consumer sees its items in push order.
            assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
            all.extend(got);
        }
        while let Some(v) = q.try_pop() {
            all.push(v);
        }
        all.sort();
        assert_eq!(all, [1, 2]);
    });
}

#[test]
fn wrap_around_with_capacity_one() {
    loom::model(|| {
        let q = Arc::new(Ring::<u32>::new(1));
        let q2 = q.clone();
        let producer = thread::spawn(move || {
            for i in 0..3 {
                push_wait(&q2, i);
            }
        });
        for i in 0..3 {
            assert_eq!(pop_wait(&q), i);
        }
        producer.join().unwrap();
    });
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn drop_with_items_inside_drops_each_once() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(Ring::new(2));
        q.try_push(Counted(drops.clone())).ok().unwrap();
        let q2 = q.clone();
        let d = drops.clone();
        let t = thread::spawn(move || {
            let _ = q2.try_push(Counted(d));
            drop(q2.try_pop());
        });
        drop(q.try_pop());
        t.join().unwrap();
        drop(q);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn two_producers_wrap_and_keep_their_order() {
    // No spinning here (two spinning threads make the model explode): each
    // producer tries its pushes once and reports which ones went in; the
    // consumer pops a bounded number of times, then the rest is drained.
    loom::model(|| {
        let q = Arc::new(Ring::<u32>::new(2));
        let producers: Vec<_> = [10, 20]
            .into_iter()
            .map(|base| {
                let q = q.clone();
                thread::spawn(move || {
                    (base..base + 2).filter(|&v| q.try_push(v).is_ok()).collect::<Vec<u32>>()
                })
            })
            .collect();
        let mut got: Vec<u32> = (0..3).filter_map(|_| q.try_pop()).collect();
        let mut pushed: Vec<Vec<u32>> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        while let Some(v) = q.try_pop() {
            got.push(v);
        }
        for (base, mine) in [10, 20].into_iter().zip(&mut pushed) {
            let seen: Vec<u32> = got.iter().copied().filter(|v| v / 10 * 10 == base).collect();
            assert_eq!(&seen, mine, "{got:?}");
        }
        // Four pushes into two slots with a consumer racing: at least two land.
        assert!(got.len() >= 2, "{got:?}");
    });
}

/// Batch calls race: two producers each push a run of two with
/// `push_slice` into a ring of four while a consumer takes runs with
/// `pop_slice`. Every item comes out exactly once, each producer's items in
/// order, and nothing is read before it was written (loom checks the
/// Acquire/Release pairs on every slot of a claimed run).
#[test]
fn batch_runs_race_and_keep_order() {
    loom::model(|| {
        let q = Arc::new(Ring::<u32>::new(4));
        let producers: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|base| {
                let q = q.clone();
                thread::spawn(move || q.push_slice(&[base, base + 1]))
            })
            .collect();
        let mut got = Vec::new();
        let mut buf = [0u32; 3];
        let n = q.pop_slice(&mut buf);
        got.extend_from_slice(&buf[..n]);
        let pushed: Vec<usize> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        assert_eq!(pushed, [2, 2], "four slots hold both runs");
        loop {
            let n = q.pop_slice(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got.len(), 4, "{got:?}");
        for base in [10u32, 20] {
            let seen: Vec<u32> = got.iter().copied().filter(|v| v / 10 * 10 == base).collect();
            assert_eq!(seen, [base, base + 1], "{got:?}");
        }
    });
}

/// A run stops at a slot that is not free yet: with a ring of two holding
/// one item, a batch of three pushes exactly one while a consumer races.
#[test]
fn batch_push_stops_at_a_full_slot() {
    loom::model(|| {
        let q = Arc::new(Ring::<u32>::new(2));
        assert_eq!(q.push_slice(&[1]), 1);
        let consumer = {
            let q = q.clone();
            thread::spawn(move || q.try_pop())
        };
        let pushed = q.push_slice(&[2, 3, 4]);
        let popped = consumer.join().unwrap();
        assert_eq!(popped, Some(1));
        // Before the pop: one free slot; after it: two.
        assert!(pushed == 1 || pushed == 2, "pushed {pushed}");
        let mut rest = [0u32; 4];
        let n = q.pop_slice(&mut rest);
        assert_eq!(&rest[..n], &[2, 3][..pushed]);
    });
}

#[test]
fn watermark_says_resume_to_exactly_one_of_two_producers() {
    use resilience::queue::{Pressure, Watermark};
    loom::model(|| {
        let w = Arc::new(Watermark::new(1, 3).unwrap());
        assert_eq!(w.observe(3), Pressure::SlowDown);
        let w2 = w.clone();
        let other = thread::spawn(move || w2.observe(0));
        let mine = w.observe(1);
        let theirs = other.join().unwrap();
        let resumes = [mine, theirs].iter().filter(|&&p| p == Pressure::Resume).count();
        assert_eq!(resumes, 1, "{mine:?} {theirs:?}");
        assert!(!w.is_slowed());
    });
}
