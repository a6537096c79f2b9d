//! Loom models of the sharded cache: its hand-written shard spin lock (loom
//! checks through `UnsafeCell` that no two threads ever reach the table at
//! once, and that each holder sees the previous holder's writes) and the
//! one-loader-per-key rendezvous of `get_or_insert_with`.
#![cfg(resilience_loom)]

use resilience::cache::Cache;
use resilience::sync::{thread, Arc, AtomicUsize, Ordering};

fn one_shard(cap: usize) -> Cache<u64, u64> {
    Cache::builder().max_entries(cap).shards(1).build().expect("valid cache")
}

#[test]
fn concurrent_inserts_and_gets_on_one_shard() {
    loom::model(|| {
        let cache = Arc::new(one_shard(1));
        let c2 = cache.clone();
        let t = thread::spawn(move || {
            c2.insert(1, 10);
            c2.get(&2)
        });
        cache.insert(2, 20);
        let mine = cache.get(&1);
        let theirs = t.join().unwrap();
        assert!(mine.is_none() || mine == Some(10));
        assert!(theirs.is_none() || theirs == Some(20));
        assert!(cache.len() <= 1, "capacity 1 holds at most one entry");
        let s = cache.stats();
        assert_eq!(s.inserts, 2);
        assert_eq!(s.evictions, 1);
        assert_eq!(s.hits + s.misses, 2);
    });
}

#[test]
fn remove_races_insert() {
    loom::model(|| {
        let cache = Arc::new(one_shard(4));
        cache.insert(1, 1);
        let c2 = cache.clone();
        let t = thread::spawn(move || c2.remove(&1));
        cache.insert(1, 2);
        let removed = t.join().unwrap();
        match (removed, cache.get(&1)) {
            (Some(1), Some(2)) | (Some(2), None) => {}
            other => panic!("impossible outcome {other:?}"),
        }
    });
}

#[test]
fn get_or_insert_with_runs_one_loader() {
    loom::model(|| {
        let cache = Arc::new(one_shard(4));
        let calls = Arc::new(AtomicUsize::new(0));
        let (c2, calls2) = (cache.clone(), calls.clone());
        let t = thread::spawn(move || {
            c2.get_or_insert_with(5, || {
                calls2.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(50)
            })
        });
        let mine = cache.get_or_insert_with(5, || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(50)
        });
        assert_eq!(mine, Ok(50));
        assert_eq!(t.join().unwrap(), Ok(50));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the second caller waited or hit");
        assert_eq!(cache.get(&5), Some(50));
    });
}
