//! Loom models of the sharded cache: its hand-written shard spin lock (loom
//! checks through `UnsafeCell` that no two threads ever reach the table at
//! once, and that each holder sees the previous holder's writes), its
//! lock-free reads (under loom one locked read turns a shard's read bias on;
//! loom checks that no writer takes the table while a lock-free reader holds
//! it, and that the reader sees the last write), and the one-loader-per-key
//! rendezvous of `get_or_insert_with`.
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

/// One locked read turns the bias on (under loom); the model checks it did.
fn biased(cache: &Cache<u64, u64>, key: u64, value: u64) {
    cache.insert(key, value);
    assert_eq!(cache.get(&key), Some(value));
    assert_eq!(cache.lock_free_shards(), 1, "the read bias is on");
}

#[test]
fn lock_free_read_races_update() {
    loom::model(|| {
        let cache = Arc::new(one_shard(4));
        biased(&cache, 1, 10);
        let c2 = cache.clone();
        let t = thread::spawn(move || c2.get(&1));
        cache.insert(1, 11);
        let seen = t.join().unwrap();
        assert!(seen == Some(10) || seen == Some(11), "saw {seen:?}");
        assert_eq!(cache.get(&1), Some(11), "the update survives");
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (3, 0), "every read counted once");
    });
}

#[test]
fn lock_free_read_races_remove_and_reuse() {
    loom::model(|| {
        let cache = Arc::new(one_shard(1));
        biased(&cache, 1, 10);
        let c2 = cache.clone();
        let t = thread::spawn(move || (c2.get(&1), c2.get(&2)));
        assert_eq!(cache.remove(&1), Some(10));
        cache.insert(2, 20); // may reuse key 1's bucket
        let (one, two) = t.join().unwrap();
        assert!(one.is_none() || one == Some(10), "saw {one:?} for key 1");
        assert!(two.is_none() || two == Some(20), "saw {two:?} for key 2");
        let s = cache.stats();
        assert_eq!(s.hits + s.misses, 3, "every read counted once");
        assert_eq!(cache.get(&2), Some(20));
    });
}

#[test]
fn two_lock_free_readers_and_a_writer() {
    // Three threads and a writer that spins until both readers leave: one
    // preemption keeps the model to minutes.
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.preemption_bound = Some(1);
    model.check(|| {
        let cache = Arc::new(one_shard(4));
        biased(&cache, 1, 10);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let c = cache.clone();
                thread::spawn(move || c.get(&1))
            })
            .collect();
        cache.insert(1, 11);
        for r in readers {
            let seen = r.join().unwrap();
            assert!(seen == Some(10) || seen == Some(11), "saw {seen:?}");
        }
        assert_eq!(cache.stats().hits, 3);
    });
}

#[test]
fn get_or_insert_with_hits_race_a_writer_and_the_bias_coming_back() {
    // A writer revokes the bias; a locked `get_or_insert_with` hit may turn
    // it back on (one read is the streak under loom) while the other thread
    // reads lock-free or, under the lock, beside lock-free readers.
    loom::model(|| {
        let cache = Arc::new(one_shard(4));
        biased(&cache, 1, 10);
        let c2 = cache.clone();
        let t = thread::spawn(move || c2.get_or_insert_with(1, || Err::<u64, ()>(())));
        cache.insert(2, 20);
        assert_eq!(cache.get_or_insert_with(1, || Err::<u64, ()>(())), Ok(10));
        assert_eq!(cache.get_or_insert_with(2, || Err::<u64, ()>(())), Ok(20));
        assert_eq!(t.join().unwrap(), Ok(10), "a hit never loads");
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (4, 0), "every hit counted once");
    });
}

#[test]
fn a_locked_miss_revokes_and_loads_while_a_lock_free_read_runs() {
    // `get_or_insert_with` of an absent key with the bias on: the look
    // beside the lock-free readers misses, so it revokes (waiting for the
    // reader) before it registers its load with `&mut`.
    loom::model(|| {
        let cache = Arc::new(one_shard(4));
        biased(&cache, 1, 10);
        let c2 = cache.clone();
        let t = thread::spawn(move || c2.get(&1));
        assert_eq!(cache.get_or_insert_with(2, || Ok::<_, ()>(20)), Ok(20));
        assert_eq!(t.join().unwrap(), Some(10));
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (2, 1), "every read counted once");
        assert_eq!(cache.get(&2), Some(20));
    });
}
