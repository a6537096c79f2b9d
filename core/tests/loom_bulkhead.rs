//! Loom models of the bulkhead: never more than N permits in flight,
//! releases restore them, a waiter is always woken by a release (loom fails
//! a model that deadlocks), and unmatched releases never underflow.
#![cfg(resilience_loom)]

use resilience::limit::Bulkhead;
use resilience::sync::{thread, Arc};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(3600);

#[test]
fn never_more_than_max_in_flight() {
    loom::model(|| {
        let b = Arc::new(Bulkhead::new(2, 0));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let b = Arc::clone(&b);
                thread::spawn(move || match b.try_acquire() {
                    Some(p) => {
                        assert!(b.in_flight() <= 2);
                        drop(p);
                        true
                    }
                    None => false,
                })
            })
            .collect();
        let got = handles.into_iter().filter(|_| true).map(|h| h.join().unwrap()).filter(|&g| g).count();
        assert!(got >= 2, "at least two of three get a permit: {got}");
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.stats().rejected as usize, 3 - got);
    });
}

#[test]
fn a_release_wakes_the_waiter() {
    loom::model(|| {
        let b = Arc::new(Bulkhead::new(1, 1));
        assert!(b.try_acquire_raw());
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                let p = b.acquire_timeout(LONG).expect("woken with a permit");
                assert_eq!(b.in_flight(), 1);
                drop(p);
            })
        };
        assert!(b.release());
        waiter.join().unwrap();
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.stats().waiting, 0);
    });
}

#[test]
fn barging_and_waiting_keep_the_bound() {
    loom::model(|| {
        let b = Arc::new(Bulkhead::new(1, 2));
        assert!(b.try_acquire_raw());
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                let p = b.acquire_timeout(LONG).expect("a permit comes free");
                assert_eq!(b.in_flight(), 1);
                drop(p);
            })
        };
        let barger = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                if let Some(p) = b.try_acquire() {
                    assert_eq!(b.in_flight(), 1);
                    drop(p);
                }
            })
        };
        assert!(b.release());
        waiter.join().unwrap();
        barger.join().unwrap();
        assert_eq!(b.in_flight(), 0);
    });
}

#[test]
fn raw_releases_never_underflow() {
    loom::model(|| {
        let b = Arc::new(Bulkhead::new(1, 0));
        assert!(b.try_acquire_raw());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = Arc::clone(&b);
                thread::spawn(move || b.release())
            })
            .collect();
        let ok = handles.into_iter().map(|h| h.join().unwrap()).filter(|&r| r).count();
        assert_eq!(ok, 1, "exactly one release matched the one permit");
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.stats().invalid_releases, 1);
    });
}
