//! Integration tests of the idempotency store: racing threads, crash and
//! lease-expiry takeover, retention, the byte budget, answer priority and bad
//! input.
#![cfg(not(resilience_loom))]

use resilience::clock::{Clock, ManualClock, Nanos, SECOND};
use resilience::idempotency::{record_cost, Begin, Config, Error, Store, Table};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

const LEASE: Nanos = 30 * SECOND;

fn rounds(n: usize) -> usize {
    if cfg!(miri) {
        3
    } else {
        n
    }
}

fn manual_store(config: Config) -> (Arc<ManualClock>, Store<Arc<ManualClock>>) {
    let clock = Arc::new(ManualClock::default());
    let store = Store::with_clock(config, clock.clone()).unwrap();
    (clock, store)
}

fn started(b: Result<Begin, Error>) -> u64 {
    match b {
        Ok(Begin::Started { token, .. }) => token,
        other => panic!("expected Started, got {other:?}"),
    }
}

/// Runs `f(thread_index)` on `n` threads released together; returns answers.
fn race<T: Send + 'static>(n: usize, f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, f) = (barrier.clone(), f.clone());
            thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn racing_begins_on_one_key_start_exactly_one() {
    let store = Arc::new(Store::new(Config { shards: 4, ..Config::default() }).unwrap());
    for round in 0..rounds(200) {
        let key = format!("race-{round}").into_bytes();
        let answers = {
            let (store, key) = (store.clone(), key.clone());
            race(8, move |_| store.begin(&key, b"fp", LEASE).unwrap())
        };
        let owners: Vec<u64> = answers.iter().filter_map(Begin::token).collect();
        assert_eq!(owners.len(), 1, "round {round}: {answers:?}");
        for a in &answers {
            match a {
                Begin::Started { takeover, .. } => assert!(!takeover),
                Begin::InProgress { retry_after } => assert!(*retry_after > 0 && *retry_after <= LEASE),
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        store.complete(&key, owners[0], format!("done {round}").as_bytes()).unwrap();
        // Once completed, every racing retry replays the same bytes.
        let replays = {
            let (store, key) = (store.clone(), key.clone());
            race(8, move |_| store.begin(&key, b"fp", LEASE).unwrap())
        };
        for r in replays {
            assert_eq!(r.response(), Some(format!("done {round}").as_bytes()));
        }
    }
    let s = store.stats();
    assert_eq!(s.started, rounds(200) as u64);
    assert_eq!(s.in_progress, 7 * rounds(200) as u64);
    assert_eq!(s.replays, 8 * rounds(200) as u64);
}

#[test]
fn racing_owners_of_one_key_never_overlap() {
    // Mutual exclusion: between Started and complete/abandon, no other caller
    // may hold the key (leases are long, so no takeover is legitimate).
    let store = Arc::new(Store::new(Config { shards: 2, retention: 1, ..Config::default() }).unwrap());
    let inside: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let per_thread = rounds(3_000);
    let totals = {
        let (store, inside) = (store.clone(), inside.clone());
        race(4, move |t| {
            let mut owned = 0u64;
            for i in 0..per_thread {
                let k = (i * 7 + t) % 3;
                let key = [b'k', k as u8];
                if let Ok(Begin::Started { token, .. }) = store.begin(&key, b"", LEASE) {
                    owned += 1;
                    assert_eq!(inside[k].fetch_add(1, Ordering::SeqCst), 0, "two owners of key {k}");
                    thread::yield_now();
                    inside[k].fetch_sub(1, Ordering::SeqCst);
                    // Complete with a 1 ns retention (expires at once) or
                    // abandon: either frees the key for the next round.
                    if i % 2 == 0 {
                        store.complete(&key, token, b"r").unwrap();
                    } else {
                        store.abandon(&key, token).unwrap();
                    }
                }
            }
            owned
        })
    };
    let s = store.stats();
    assert_eq!(totals.iter().sum::<u64>(), s.started);
    assert!(s.started > 0);
    assert_eq!(s.takeovers, 0);
    assert_eq!(s.in_progress_records, 0);
}

#[test]
fn crashed_owner_is_taken_over_exactly_once() {
    let (clock, store) = manual_store(Config::default());
    let store = Arc::new(store);
    for round in 0..rounds(100) {
        let key = format!("crash-{round}").into_bytes();
        // The owner starts and then "crashes": it never completes in time.
        let stale = started(store.begin(&key, b"fp", LEASE));
        clock.advance(LEASE - 1);
        assert_eq!(store.begin(&key, b"fp", LEASE), Ok(Begin::InProgress { retry_after: 1 }));
        clock.advance(1);
        let answers = {
            let (store, key) = (store.clone(), key.clone());
            race(8, move |_| store.begin(&key, b"fp", LEASE).unwrap())
        };
        let winners: Vec<_> = answers.iter().filter(|a| matches!(a, Begin::Started { .. })).collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        let Begin::Started { token, takeover } = *winners[0] else { unreachable!() };
        assert!(takeover);
        assert_ne!(token, stale);
        for a in &answers {
            assert!(a == winners[0] || *a == Begin::InProgress { retry_after: LEASE }, "{a:?}");
        }
        // The stale owner wakes up: refused, and the new owner is unaffected.
        assert_eq!(store.complete(&key, stale, b"stale"), Err(Error::NotOwner));
        assert_eq!(store.abandon(&key, stale), Err(Error::NotOwner));
        store.complete(&key, token, b"fresh").unwrap();
        assert_eq!(store.complete(&key, stale, b"stale"), Err(Error::AlreadyCompleted));
        assert_eq!(store.begin(&key, b"fp", LEASE).unwrap().response(), Some(&b"fresh"[..]));
    }
    assert_eq!(store.stats().takeovers, rounds(100) as u64);
}

#[test]
fn late_owner_may_complete_until_someone_takes_over() {
    let (clock, store) = manual_store(Config::default());
    let t = started(store.begin(b"k", b"fp", LEASE));
    clock.advance(2 * LEASE);
    // Nobody took over: the work is done, storing it prevents a duplicate.
    store.complete(b"k", t, b"late but done").unwrap();
    assert_eq!(store.begin(b"k", b"fp", LEASE).unwrap().response(), Some(&b"late but done"[..]));
    assert_eq!(store.stats().takeovers, 0);
}

#[test]
fn completed_records_expire_after_their_retention() {
    let (clock, store) = manual_store(Config::default());
    let t = started(store.begin(b"k", b"fp", LEASE));
    store.complete_at(b"k", t, b"resp", 10 * SECOND, clock.now()).unwrap();
    clock.advance(10 * SECOND - 1);
    assert_eq!(store.begin(b"k", b"fp", LEASE).unwrap().response(), Some(&b"resp"[..]));
    clock.advance(1);
    // Expired: as if it never existed (a different fingerprint may start).
    assert_eq!(store.complete(b"k", t, b"again"), Err(Error::NotFound));
    assert!(matches!(store.begin(b"k", b"other", LEASE), Ok(Begin::Started { takeover: false, .. })));
    let s = store.stats();
    assert_eq!((s.expired, s.records), (1, 1));
}

#[test]
fn default_retention_is_a_day() {
    let (clock, store) = manual_store(Config::default());
    let t = started(store.begin(b"k", b"", LEASE));
    store.complete(b"k", t, b"r").unwrap();
    clock.advance(24 * 3600 * SECOND - 1);
    assert!(matches!(store.begin(b"k", b"", LEASE), Ok(Begin::Completed { .. })));
    clock.advance(1);
    assert!(matches!(store.begin(b"k", b"", LEASE), Ok(Begin::Started { .. })));
}

#[test]
fn mismatch_wins_over_in_progress_and_completed() {
    let (_, store) = manual_store(Config::default());
    let t = started(store.begin(b"k", b"request-A", LEASE));
    assert_eq!(store.begin(b"k", b"request-B", LEASE), Ok(Begin::Mismatch));
    store.complete(b"k", t, b"A done").unwrap();
    assert_eq!(store.begin(b"k", b"request-B", LEASE), Ok(Begin::Mismatch));
    assert_eq!(store.begin(b"k", b"request-A", LEASE).unwrap().response(), Some(&b"A done"[..]));
    // Fingerprints are compared exactly, length included.
    assert_eq!(store.begin(b"k", b"request-A\0", LEASE), Ok(Begin::Mismatch));
    assert_eq!(store.stats().mismatches, 3);
}

#[test]
fn only_the_owner_completes_or_abandons() {
    let (_, store) = manual_store(Config::default());
    assert_eq!(store.complete(b"k", 1, b""), Err(Error::NotFound));
    assert_eq!(store.abandon(b"k", 1), Err(Error::NotFound));
    let t = started(store.begin(b"k", b"fp", LEASE));
    assert_eq!(store.complete(b"k", t ^ 1, b""), Err(Error::NotOwner));
    assert_eq!(store.abandon(b"k", t.wrapping_add(1)), Err(Error::NotOwner));
    // Abandon frees the key; the next begin starts afresh (no takeover).
    store.abandon(b"k", t).unwrap();
    assert_eq!(store.complete(b"k", t, b""), Err(Error::NotFound));
    let t2 = started(store.begin(b"k", b"fp", LEASE));
    assert_ne!(t2, t);
    store.complete(b"k", t2, b"").unwrap();
    assert_eq!(store.complete(b"k", t2, b""), Err(Error::AlreadyCompleted));
    assert_eq!(store.abandon(b"k", t2), Err(Error::AlreadyCompleted));
    // An empty response is a response.
    assert_eq!(store.begin(b"k", b"fp", LEASE).unwrap().response(), Some(&b""[..]));
}

/// A one-shard store whose budget holds exactly `n` in-progress records of
/// 8-byte keys and 2-byte fingerprints.
fn tight(n: usize) -> (Arc<ManualClock>, Store<Arc<ManualClock>>) {
    one_shard(n * record_cost(8, 2, 0), 2, 0)
}

/// A one-shard store of `max_bytes` for 8-byte keys, with the given
/// fingerprint and response limits.
fn one_shard(
    max_bytes: usize,
    max_fp: usize,
    max_resp: usize,
) -> (Arc<ManualClock>, Store<Arc<ManualClock>>) {
    manual_store(Config {
        shards: 1,
        max_bytes,
        max_key_len: 8,
        max_fingerprint_len: max_fp,
        max_response_len: max_resp,
        ..Config::default()
    })
}

fn key(i: usize) -> [u8; 8] {
    (i as u64).to_le_bytes()
}

#[test]
fn full_of_in_progress_records_refuses_and_evicts_none() {
    let (clock, store) = tight(10);
    let tokens: Vec<u64> = (0..10).map(|i| started(store.begin(&key(i), b"fp", LEASE))).collect();
    for _ in 0..3 {
        assert_eq!(store.begin(&key(10), b"fp", LEASE), Err(Error::Full));
    }
    let s = store.stats();
    assert_eq!((s.full, s.evicted, s.in_progress_records), (3, 0, 10));
    // Every in-progress record is still there and still owned.
    clock.advance(LEASE - 1);
    for i in 0..10 {
        assert_eq!(store.begin(&key(i), b"fp", LEASE), Ok(Begin::InProgress { retry_after: 1 }));
    }
    assert_eq!(store.begin(&key(10), b"fp", LEASE), Err(Error::Full));
    // Completing one makes it evictable: the next begin gets in.
    store.complete(&key(3), tokens[3], b"").unwrap();
    assert!(matches!(store.begin(&key(10), b"fp", LEASE), Ok(Begin::Started { .. })));
    assert_eq!(store.stats().evicted, 1);
    assert!(matches!(store.begin(&key(3), b"fp", LEASE), Err(Error::Full)), "key 3's record was evicted");
    // Once leases run out, the stale records are reclaimable too.
    clock.advance(1);
    assert!(matches!(store.begin(&key(11), b"fp", LEASE), Ok(Begin::Started { takeover: false, .. })));
    assert_eq!(store.stats().bytes_used as usize, 10 * record_cost(8, 2, 0));
}

#[test]
fn a_full_begin_leaves_the_keys_own_stale_record_alone() {
    let (clock, store) = one_shard(10 * record_cost(8, 0, 0), 64, 0);
    let stale = started(store.begin_at(&key(0), b"", 10, 0));
    for i in 1..10 {
        started(store.begin_at(&key(i), b"", LEASE, 0));
    }
    // Key 0's lease ran out, but a retry with a larger fingerprint does not
    // fit even without that record: Full, and nothing is removed.
    clock.set(20);
    assert_eq!(store.begin_at(&key(0), &[7; 64], LEASE, 20), Err(Error::Full));
    let s = store.stats();
    assert_eq!((s.records, s.takeovers, s.expired, s.evicted, s.full), (10, 0, 0, 0, 1));
    // So the late owner may still complete, as nobody took over.
    assert_eq!(store.complete_at(&key(0), stale, b"", SECOND, 21), Ok(()));
}

#[test]
fn records_reclaimed_past_their_deadline_count_as_expired() {
    let (_clock, store) = tight(4);
    for i in 0..4 {
        let t = started(store.begin_at(&key(i), b"fp", LEASE, 0));
        store.complete_at(&key(i), t, b"", 100, 0).unwrap();
    }
    // Before the deadline, room is made by eviction; after it, by expiry.
    started(store.begin_at(&key(10), b"fp", LEASE, 50));
    started(store.begin_at(&key(11), b"fp", LEASE, 200));
    let s = store.stats();
    assert_eq!((s.evicted, s.expired, s.records), (1, 1, 4));
}

/// Whether `key` has a live completed record, probed without side effects
/// (abandon with a token nobody holds).
fn holds_completed<C: Clock>(store: &Store<C>, key: &[u8]) -> bool {
    match store.abandon(key, 0) {
        Err(Error::AlreadyCompleted) => true,
        Err(Error::NotFound) => false,
        other => panic!("{other:?}"),
    }
}

#[test]
fn completed_records_go_earliest_expiry_first() {
    let (clock, store) = one_shard(4 * record_cost(8, 0, 4), 0, 4);
    // Completed in order 0..4 with retentions that do not follow that order.
    for (i, retention) in [(0, 40), (1, 10), (2, 30), (3, 20)] {
        let t = started(store.begin(&key(i), b"", LEASE));
        store.complete_at(&key(i), t, b"resp", retention * SECOND, clock.now()).unwrap();
    }
    // New in-progress records (4 bytes smaller each) push the completed ones
    // out earliest expiry first: 1, 3, 2, 0 — not in completion order.
    let order = [1usize, 3, 2, 0];
    for n in 0..4 {
        assert!(matches!(store.begin(&key(100 + n), b"", LEASE), Ok(Begin::Started { .. })));
        for (rank, k) in order.iter().enumerate() {
            assert_eq!(holds_completed(&store, &key(*k)), rank > n, "after {} begins, key {k}", n + 1);
        }
    }
    assert_eq!(store.stats().evicted, 4);
}

#[test]
fn a_response_that_does_not_fit_leaves_the_record_in_progress() {
    let per = record_cost(8, 0, 0);
    let config = Config {
        shards: 1,
        max_bytes: 2 * per + 100,
        max_key_len: 8,
        max_response_len: 200,
        ..Config::default()
    };
    let (_, store) = manual_store(config);
    let a = started(store.begin(&key(1), b"", LEASE));
    let b = started(store.begin(&key(2), b"", LEASE));
    assert_eq!(store.complete(&key(1), a, &[1; 100]), Ok(()));
    assert_eq!(store.stats().evicted, 0);
    // Key 2's response fits only by evicting key 1's completed record.
    assert_eq!(store.complete(&key(2), b, &[2; 100]), Ok(()));
    assert_eq!(store.stats().evicted, 1);
    assert!(!holds_completed(&store, &key(1)));
    // Key 3 fits beside key 2; key 4 evicts key 2. Then only in-progress
    // records remain: 100 bytes are free, a 101-byte response does not fit.
    let c = started(store.begin(&key(3), b"", LEASE));
    assert_eq!(store.stats().evicted, 1);
    let _d = started(store.begin(&key(4), b"", LEASE));
    assert_eq!(store.stats().evicted, 2);
    assert_eq!(store.complete(&key(3), c, &[3; 101]), Err(Error::Full));
    assert_eq!(store.stats().complete_full, 1);
    assert_eq!(store.begin(&key(3), b"", LEASE), Ok(Begin::InProgress { retry_after: LEASE }));
    // The owner may retry with less, or abandon.
    assert_eq!(store.complete(&key(3), c, &[3; 100]), Ok(()));
    assert_eq!(store.stats().bytes_used as usize, 2 * per + 100);
}

#[test]
fn sweep_is_bounded_and_removes_only_the_expired() {
    let (clock, store) = manual_store(Config { shards: 4, ..Config::default() });
    let retention = Config::default().retention;
    let mut tokens = Vec::new();
    for i in 0..20 {
        let t = started(store.begin(&key(i), b"", if i < 5 { SECOND } else { LEASE }));
        if i >= 5 {
            store
                .complete_at(&key(i), t, b"r", if i < 15 { SECOND } else { 100 * SECOND }, clock.now())
                .unwrap();
        }
        tokens.push(t);
    }
    clock.advance(SECOND);
    // 10 completed records are past their retention. The 5 stale in-progress
    // records stay for one retention period after their lease ran out.
    assert_eq!(store.sweep_expired(0), 0);
    assert_eq!(store.sweep_expired(4), 4);
    assert_eq!(store.sweep_expired(4), 4);
    assert_eq!(store.sweep_expired(100), 2);
    assert_eq!(store.sweep_expired(100), 0);
    let s = store.stats();
    assert_eq!((s.records, s.in_progress_records, s.expired), (10, 5, 10));
    // So however often a sweep runs, a late owner may still complete and a
    // retry still reports that it took over.
    assert_eq!(store.complete_at(&key(0), tokens[0], b"late", SECOND, clock.now()), Ok(()));
    assert!(matches!(store.begin(&key(1), b"", LEASE), Ok(Begin::Started { takeover: true, .. })));
    for i in 15..20 {
        assert!(matches!(store.begin(&key(i), b"", LEASE), Ok(Begin::Completed { .. })));
    }
    // Just before the stale records' time: key 0's and keys 15-19's
    // completed records go, key 1's new lease (ended, but recent) stays.
    clock.advance(retention - 1);
    assert_eq!(store.sweep_expired(100), 6);
    assert_eq!(store.stats().in_progress_records, 4);
    // One retention period after their lease: keys 2-4.
    clock.advance(1);
    assert_eq!(store.sweep_expired(100), 3);
    let s = store.stats();
    assert_eq!((s.records, s.in_progress_records, s.expired, s.takeovers), (1, 1, 19, 1));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let store = Store::new(Config::default()).unwrap();
    let long_key = vec![0u8; 256];
    let long_fp = vec![0u8; 65];
    let long_resp = vec![0u8; (1 << 20) + 1];
    assert_eq!(store.begin(b"", b"", LEASE), Err(Error::EmptyKey));
    assert_eq!(store.begin(&long_key, b"", LEASE), Err(Error::KeyTooLong { len: 256, max: 255 }));
    assert_eq!(store.begin(b"k", &long_fp, LEASE), Err(Error::FingerprintTooLong { len: 65, max: 64 }));
    assert_eq!(store.begin(b"k", b"", 0), Err(Error::ZeroLease));
    let t = started(store.begin(b"k", b"", u64::MAX));
    assert_eq!(
        store.complete(b"k", t, &long_resp),
        Err(Error::ResponseTooLong { len: (1 << 20) + 1, max: 1 << 20 })
    );
    assert_eq!(store.complete_at(b"k", t, b"", 0, 5), Err(Error::ZeroRetention));
    assert_eq!(store.abandon(b"", t), Err(Error::EmptyKey));
    // Extreme times saturate instead of wrapping.
    store.complete_at(b"k", t, b"r", u64::MAX, u64::MAX - 1).unwrap();
    assert!(matches!(store.begin_at(b"k", b"", 1, u64::MAX - 1), Ok(Begin::Completed { .. })));
    assert_eq!(store.stats().records, 1);
}

#[test]
fn a_table_works_on_its_own() {
    let mut t = Table::new(&Config::default()).unwrap();
    let tok = match t.begin_at(b"k", b"fp", 10, 100).unwrap() {
        Begin::Started { token, .. } => token,
        other => panic!("{other:?}"),
    };
    assert_eq!(t.begin_at(b"k", b"fp", 10, 105), Ok(Begin::InProgress { retry_after: 5 }));
    t.complete_at(b"k", tok, b"ok", 50, 106).unwrap();
    let b = t.begin_at(b"k", b"fp", 10, 155).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(b.write_response(&mut buf), Err(2));
    assert_eq!(t.sweep_expired_at(156, 10), 1);
    assert!(t.is_empty());
}
