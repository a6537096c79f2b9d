//! Loom model of the runtime's sleep/wake handshake over an SPSC ring: a
//! shard that decides to sleep is always either holding every message or
//! about to be woken.
#![cfg(resilience_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use resilience::queue::spsc::{Producer, Ring};
use resilience::runtime::wake::Parker;

/// One sender, one shard that parks once.
#[test]
fn a_parked_shard_is_woken_or_sees_the_message() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u32>::new(2);
        let parker = Arc::new(Parker::new());
        let eventfd = Arc::new(AtomicUsize::new(0));
        let sender = {
            let parker = parker.clone();
            let eventfd = eventfd.clone();
            thread::spawn(move || {
                tx.push(7).unwrap();
                if parker.should_wake() {
                    eventfd.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // The shard: announce, re-check, and "sleep" if empty.
        let mut got = rx.pop();
        let mut slept = false;
        if got.is_none() {
            parker.prepare_park();
            got = rx.pop();
            if got.is_none() {
                slept = true;
            } else {
                parker.unpark();
            }
        }
        sender.join().unwrap();
        if slept {
            assert_eq!(eventfd.load(Ordering::Relaxed), 1, "slept through a message without a wake-up");
            assert_eq!(rx.pop(), Some(7));
        } else {
            assert_eq!(got, Some(7));
        }
    });
}

/// Two senders (two rings) and a shard that is already asleep: exactly one
/// wake-up, and both messages are there.
#[test]
fn two_senders_wake_once() {
    loom::model(|| {
        let (a_tx, mut a_rx) = Ring::<u32>::new(2);
        let (b_tx, mut b_rx) = Ring::<u32>::new(2);
        let parker = Arc::new(Parker::new());
        let eventfd = Arc::new(AtomicUsize::new(0));
        parker.prepare_park();
        let send = |mut tx: Producer<u32>, v: u32| {
            let parker = parker.clone();
            let eventfd = eventfd.clone();
            thread::spawn(move || {
                tx.push(v).unwrap();
                if parker.should_wake() {
                    eventfd.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let senders = [send(a_tx, 1), send(b_tx, 2)];
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(eventfd.load(Ordering::Relaxed), 1);
        assert_eq!(a_rx.pop(), Some(1));
        assert_eq!(b_rx.pop(), Some(2));
    });
}
