//! Loom models of `queue::spsc::Ring`: every interleaving (up to
//! `LOOM_MAX_PREEMPTIONS` preemptions) of a producer and a consumer thread.
#![cfg(resilience_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use resilience::queue::spsc::Ring;

/// Pops one item, yielding to the producer until it arrives.
fn pop_wait<T>(rx: &mut resilience::queue::spsc::Consumer<T>) -> T {
    loop {
        if let Some(v) = rx.pop() {
            return v;
        }
        thread::yield_now();
    }
}

#[test]
fn push_pop_race_keeps_order() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u32>::new(2);
        let producer = thread::spawn(move || {
            assert_eq!(tx.push(1), Ok(()));
            assert_eq!(tx.push(2), Ok(()));
        });
        assert_eq!(pop_wait(&mut rx), 1);
        assert_eq!(pop_wait(&mut rx), 2);
        assert_eq!(rx.pop(), None);
        producer.join().unwrap();
    });
}

#[test]
fn wrap_around_with_capacity_two() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u32>::new(2);
        let producer = thread::spawn(move || {
            for i in 0..3 {
                let mut item = i;
                while let Err(back) = tx.push(item) {
                    item = back;
                    thread::yield_now();
                }
            }
        });
        for i in 0..3 {
            assert_eq!(pop_wait(&mut rx), i);
        }
        producer.join().unwrap();
    });
}

#[test]
fn batches_cross_the_wrap() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u32>::new(2);
        // Start one position in, so a full batch wraps around the buffer end.
        assert_eq!(tx.push(0), Ok(()));
        assert_eq!(rx.pop(), Some(0));
        let producer = thread::spawn(move || {
            let mut sent = 0;
            let items = [1, 2, 3];
            while sent < items.len() {
                sent += tx.push_slice(&items[sent..]);
                if sent < items.len() {
                    thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            if rx.pop_into(&mut got, 2) == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(got, [1, 2, 3]);
        producer.join().unwrap();
    });
}

/// Counts drops in a loom atomic, so the model sees the count as shared state.
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
        let (mut tx, mut rx) = Ring::new(2);
        let d = drops.clone();
        let producer = thread::spawn(move || {
            assert!(tx.push(Counted(d.clone())).is_ok());
            assert!(tx.push(Counted(d)).is_ok());
            // The producer drops here, possibly before or after the consumer.
        });
        // Commit at most one (drops it), leave the other for the ring's drop.
        rx.read_chunk(1).commit_all();
        drop(rx);
        producer.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn abandoned_producer_leaves_every_item_visible() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u32>::new(2);
        let producer = thread::spawn(move || {
            assert_eq!(tx.push(1), Ok(()));
            assert_eq!(tx.push(2), Ok(()));
        });
        let mut got = Vec::new();
        loop {
            if let Some(v) = rx.pop() {
                got.push(v);
            } else if rx.is_abandoned() {
                // Seen abandoned: everything pushed before the drop is here.
                while let Some(v) = rx.pop() {
                    got.push(v);
                }
                break;
            } else {
                thread::yield_now();
            }
        }
        assert_eq!(got, [1, 2]);
        producer.join().unwrap();
    });
}

#[test]
fn abandoned_consumer_is_seen_by_the_producer() {
    loom::model(|| {
        let (mut tx, rx) = Ring::<u32>::new(1);
        let consumer = thread::spawn(move || drop(rx));
        while !tx.is_abandoned() {
            // Pushing into an abandoned ring is allowed; it simply fills up.
            let _ = tx.push(7);
            thread::yield_now();
        }
        consumer.join().unwrap();
        assert!(tx.is_abandoned());
    });
}
