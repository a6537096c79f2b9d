//! A thread beyond the cache's reader slots (64 threads at a time have one)
//! reads under the shard lock; its hits, `get_or_insert_with` hits included,
//! and a sweep with nothing to sweep must not revoke the read bias that the
//! other threads' lock-free reads rely on; and it gets a slot once a
//! holder exits. Alone in its test binary: it holds every reader slot of
//! the process while it runs.
#![cfg(not(resilience_loom))]

use std::sync::{mpsc, Arc};
use std::thread;

use resilience::cache::{self, Cache};

/// Reader slots per process (`bias::MAX_READERS`).
const SLOTS: usize = 64;

#[test]
fn a_thread_without_a_reader_slot_reads_without_revoking_the_bias() {
    let c: Arc<Cache<u64, u64>> = Arc::new(Cache::builder().max_entries(64).shards(1).build().unwrap());
    c.insert(1, 10);
    let mut reads = 0;
    while c.lock_free_shards() == 0 {
        assert_eq!(c.get(&1), Some(10));
        reads += 1;
        assert!(reads <= 64, "the bias should be on by now");
    }
    // Every slot taken by a thread that read lock-free and now waits (for
    // its sender to go: a failure anywhere releases it, nothing hangs).
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut releases = Vec::new();
    let holders: Vec<_> = (0..SLOTS)
        .map(|_| {
            let (c, ready) = (c.clone(), ready_tx.clone());
            let (release, wait) = mpsc::channel::<()>();
            releases.push(release);
            thread::spawn(move || {
                assert_eq!(c.get(&1), Some(10));
                ready.send(()).unwrap();
                let _ = wait.recv(); // Err once released
            })
        })
        .collect();
    drop(ready_tx);
    for _ in 0..SLOTS {
        ready_rx.recv().expect("a holder failed before taking its slot");
    }
    assert_eq!(c.lock_free_shards(), 1);
    let (checked_tx, checked_rx) = mpsc::channel();
    let (gone_tx, gone_rx) = mpsc::channel::<()>();
    let slotless = {
        let c = c.clone();
        thread::spawn(move || {
            assert!(!cache::thread_has_reader_slot(), "all {SLOTS} slots should be taken");
            assert_eq!(c.get(&1), Some(10));
            assert_eq!(c.get(&2), None);
            assert!(c.contains(&1));
            assert_eq!(c.get_or_insert_with(1, || Err::<u64, ()>(())), Ok(10));
            assert_eq!(c.lock_free_shards(), 1, "a locked hit revoked the bias");
            assert_eq!(c.sweep_expired(16), 0);
            assert_eq!(c.lock_free_shards(), 1, "an empty sweep revoked the bias");
            checked_tx.send(()).unwrap();
            // Once a slot's thread has exited, this thread gets its slot.
            gone_rx.recv().unwrap();
            assert!(cache::thread_has_reader_slot(), "a freed slot went to the thread without one");
            assert_eq!(c.get(&1), Some(10));
        })
    };
    let checked = checked_rx.recv();
    drop(releases);
    for h in holders {
        h.join().unwrap();
    }
    let _ = gone_tx.send(()); // fails only if the thread already panicked
    slotless.join().unwrap();
    checked.unwrap();
    let s = c.stats();
    assert_eq!(s.hits, reads as u64 + SLOTS as u64 + 3, "every hit counted once");
    assert_eq!(s.misses, 1);
    assert_eq!(c.get_or_insert_with(3, || Ok::<_, ()>(30)), Ok(30));
    assert_eq!(c.lock_free_shards(), 0, "a miss that loads still revokes");
}
