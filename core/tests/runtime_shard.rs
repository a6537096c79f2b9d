//! The runtime's executor, timers, cross-shard calls and shutdown.
#![cfg(all(target_os = "linux", not(resilience_loom)))]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use resilience::runtime::{self, Config, Runtime};

fn config(shards: usize) -> Config {
    Config { shards, pin: false, stop_grace: Duration::from_secs(2), ..Config::default() }
}

/// Starts a runtime or explains why the test is skipped.
fn start<S, I, M, F>(shards: usize, init: I, main: M) -> Option<Runtime>
where
    S: 'static,
    I: Fn(usize) -> S + Send + Sync + 'static,
    M: Fn(usize) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + 'static,
{
    if let Err(e) = runtime::probe() {
        eprintln!("skipped: {e}");
        return None;
    }
    Some(Runtime::start(config(shards), init, main).expect("runtime starts"))
}

#[test]
fn calls_run_on_the_owning_shard_and_answer_in_order() {
    let (tx, rx) = mpsc::channel();
    let Some(rt) = start(
        3,
        |shard| std::cell::Cell::new(shard as u64 * 1000),
        move |shard| {
            let tx = tx.clone();
            async move {
                if shard != 0 {
                    return;
                }
                let mut answers = Vec::new();
                for i in 0..300u64 {
                    let to = (i % 3) as usize;
                    // Each shard counts up its own state; the answer carries
                    // the shard id that ran the closure.
                    let got = runtime::call(to, move || {
                        let v = runtime::with_state(|c: &std::cell::Cell<u64>| {
                            c.set(c.get() + 1);
                            c.get()
                        });
                        (runtime::shard_id(), v)
                    })
                    .await;
                    answers.push((to, got));
                }
                tx.send(answers).unwrap();
            }
        },
    ) else {
        return;
    };
    let answers = rx.recv_timeout(Duration::from_secs(10)).expect("answers");
    for (i, (to, (ran_on, v))) in answers.iter().enumerate() {
        assert_eq!(to, ran_on);
        assert_eq!(*v, *to as u64 * 1000 + (i as u64 / 3) + 1);
    }
    rt.stop();
    rt.join();
}

#[test]
fn many_concurrent_calls_through_small_rings_all_complete() {
    // Rings of 2 slots force the backlog path; 2000 calls in flight at once.
    if let Err(e) = runtime::probe() {
        eprintln!("skipped: {e}");
        return;
    }
    let (tx, rx) = mpsc::channel();
    let cfg = Config { mesh_capacity: 2, ..config(2) };
    let rt = Runtime::start(
        cfg,
        |_| (),
        move |shard| {
            let tx = tx.clone();
            async move {
                let handles: Vec<_> = (0..1000u64)
                    .map(|i| runtime::spawn(async move { runtime::call(1 - shard, move || i * 2).await }))
                    .collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.await;
                }
                tx.send(sum).unwrap();
            }
        },
    )
    .expect("runtime starts");
    for _ in 0..2 {
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 999 * 1000);
    }
    rt.stop();
    rt.join();
}

#[test]
fn sleeps_wake_in_deadline_order_and_not_early() {
    let (tx, rx) = mpsc::channel();
    let Some(rt) = start(
        1,
        |_| (),
        move |_| {
            let tx = tx.clone();
            async move {
                let start = Instant::now();
                let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
                let mut hs = Vec::new();
                for ms in [30u64, 10, 20] {
                    let order = order.clone();
                    hs.push(runtime::spawn(async move {
                        runtime::sleep(Duration::from_millis(ms)).await;
                        order.borrow_mut().push((ms, start.elapsed()));
                    }));
                }
                for h in hs {
                    h.await;
                }
                tx.send(order.borrow().clone()).unwrap();
            }
        },
    ) else {
        return;
    };
    let order = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(order.iter().map(|o| o.0).collect::<Vec<_>>(), vec![10, 20, 30]);
    for (ms, at) in order {
        assert!(at >= Duration::from_millis(ms), "{ms} ms timer fired at {at:?}");
    }
    rt.stop();
    rt.join();
}

#[test]
fn stop_completes_stopped_futures_and_joins_quickly() {
    let (tx, rx) = mpsc::channel();
    let Some(rt) = start(
        2,
        |_| (),
        move |shard| {
            let tx = tx.clone();
            async move {
                runtime::stopped().await;
                assert!(runtime::stopping());
                tx.send(shard).unwrap();
            }
        },
    ) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    rt.stop();
    rt.join();
    assert!(t.elapsed() < Duration::from_secs(1), "stop took {:?}", t.elapsed());
    let mut seen: Vec<usize> = rx.try_iter().collect();
    seen.sort();
    assert_eq!(seen, vec![0, 1]);
}

#[test]
fn stats_count_turns_and_wakeups() {
    let Some(rt) = start(
        2,
        |_| (),
        |shard| async move {
            if shard == 0 {
                for _ in 0..50 {
                    runtime::call(1, || ()).await;
                    runtime::sleep(Duration::from_millis(1)).await;
                }
            }
        },
    ) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(300));
    let s = rt.stats();
    assert_eq!(s.shards.len(), 2);
    // Shard 1 sleeps between calls, so shard 0 had to wake it.
    assert!(s.shards[0][5] > 0, "{s:?}");
    assert!(s.shards[1][4] >= 50, "{s:?}");
    rt.stop();
    rt.join();
}

#[test]
fn unavailable_io_uring_is_explained_in_one_line() {
    let e = runtime::Error::Unavailable { reason: "io_uring_setup: Operation not permitted".into() };
    let text = e.to_string();
    assert!(!text.contains('\n'));
    assert!(text.starts_with("io_uring is unavailable (io_uring_setup: Operation not permitted)"));
    assert!(text.contains("kernel.io_uring_disabled=0") && text.contains("seccomp"));
}
