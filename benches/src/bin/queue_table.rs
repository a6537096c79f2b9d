//! Prints the README's per-core queue table: `spsc::Ring` beside rtrb and
//! crossbeam's `ArrayQueue`, `mpmc::Ring` beside `ArrayQueue`.
//!
//! Every queue is measured in every run, interleaved, so a busy machine slows
//! all of them alike; the table shows medians over the runs, ratios taken
//! within each run (then their median), and the load average of each run.
//!
//! `cargo run --release -p resilience-benches --bin queue-table`
//! (`QUEUE_TABLE_RUNS`, default 7, and `QUEUE_TABLE_ITEMS`, default 10M, adjust it).

use std::time::{Duration, Instant};

use resilience_benches::{load_average, median};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(dead_code)] // `register` is for the criterion binary
#[path = "../queue.rs"]
mod queue;

use queue::{one_to_one, one_to_one_batch, pairs, CrossbeamArray, Mpmc, Rtrb, Spsc, BATCH, CAPACITY};

/// One table row: its label and a workload.
struct Row {
    label: &'static str,
    run: fn(u64) -> Duration,
}

/// A ratio printed in the table: `num` over `den`, each a row index, with the
/// sense (`higher is better` for throughput ratios).
struct Ratio {
    label: &'static str,
    faster: usize,
    slower: usize,
    target: &'static str,
}

/// No new run starts after this long, so the table comes out in about two
/// minutes even on a loaded machine.
const BUDGET: Duration = Duration::from_secs(90);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let runs = env("QUEUE_TABLE_RUNS", 7).max(1) as usize;
    let items = env("QUEUE_TABLE_ITEMS", 10_000_000).max(1);
    let rows = [
        Row { label: "spsc 1:1, resilience spsc::Ring", run: one_to_one::<Spsc> },
        Row { label: "spsc 1:1, rtrb", run: one_to_one::<Rtrb> },
        Row { label: "spsc 1:1, crossbeam ArrayQueue", run: one_to_one::<CrossbeamArray> },
        Row { label: "spsc 1:1 batch-of-32, resilience spsc::Ring", run: one_to_one_batch::<Spsc> },
        Row { label: "spsc 1:1 batch-of-32, rtrb (chunks)", run: one_to_one_batch::<Rtrb> },
        Row { label: "mpmc 1:1, resilience mpmc::Ring", run: one_to_one::<Mpmc> },
        Row { label: "mpmc 1:1, crossbeam ArrayQueue", run: one_to_one::<CrossbeamArray> },
        Row { label: "1 thread push+pop, resilience spsc::Ring", run: pairs::<Spsc> },
        Row { label: "1 thread push+pop, rtrb", run: pairs::<Rtrb> },
        Row { label: "1 thread push+pop, resilience mpmc::Ring", run: pairs::<Mpmc> },
        Row { label: "1 thread push+pop, crossbeam ArrayQueue", run: pairs::<CrossbeamArray> },
    ];
    let ratios = [
        Ratio { label: "spsc 1:1 vs rtrb", faster: 0, slower: 1, target: ">= 1.0" },
        Ratio { label: "spsc 1:1 vs ArrayQueue", faster: 0, slower: 2, target: ">= 4.0" },
        Ratio { label: "spsc batch-of-32 vs rtrb single", faster: 3, slower: 1, target: ">= 3.0" },
        Ratio { label: "spsc batch-of-32 vs rtrb batch", faster: 3, slower: 4, target: "" },
        Ratio { label: "mpmc 1:1 vs ArrayQueue", faster: 5, slower: 6, target: ">= 1.0" },
        Ratio { label: "spsc push+pop vs rtrb", faster: 7, slower: 8, target: "" },
        Ratio { label: "mpmc push+pop vs ArrayQueue", faster: 9, slower: 10, target: ">= 1.0" },
    ];

    println!(
        "queue-table: {runs} runs x {items} u64 per row, capacity {CAPACITY}, batch {BATCH}, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let started = Instant::now();
    // `QUEUE_TABLE_ONLY=<text>`: time only the rows whose label contains it.
    let only = std::env::var("QUEUE_TABLE_ONLY").unwrap_or_default();
    let skip: Vec<bool> = rows.iter().map(|r| !r.label.contains(only.as_str())).collect();
    // Warm-up (untimed): threads, pages and clocks settle before run 1.
    for (row, &skip) in rows.iter().zip(&skip) {
        if !skip {
            (row.run)((items / 20).max(1));
        }
    }
    // ns per item: per row, per run.
    let mut ns = vec![Vec::with_capacity(runs); rows.len()];
    let mut loads = Vec::with_capacity(runs);
    for run in 0..runs {
        if run > 0 && started.elapsed() > BUDGET {
            println!("stopping after {run} runs: the {BUDGET:?} budget is spent (machine busy?)");
            break;
        }
        let before = load_average();
        // Rotate the order so no row always runs first (or right after a
        // particular neighbour).
        let mut figures = vec![0.0; rows.len()];
        for k in 0..rows.len() {
            let i = (k + run) % rows.len();
            figures[i] =
                if skip[i] { f64::NAN } else { (rows[i].run)(items).as_nanos() as f64 / items as f64 };
        }
        for (out, x) in ns.iter_mut().zip(&figures) {
            out.push(*x);
        }
        let after = load_average();
        let load = match (before, after) {
            (Some(a), Some(b)) => format!("{:.2}", a.max(b)),
            _ => "n/a".to_string(),
        };
        let figures: Vec<String> = figures.iter().map(|x| format!("{x:.2}")).collect();
        println!("run {}: load average {load}; ns/item {}", run + 1, figures.join(" "));
        loads.push(load);
    }

    let runs = loads.len();
    println!();
    println!("| workload | median ns/item | M items/s per core pair | runs (ns/item) |");
    println!("|---|---:|---:|---|");
    for (row, xs) in rows.iter().zip(&ns) {
        let m = median(&mut xs.clone());
        let all: Vec<String> = xs.iter().map(|x| format!("{x:.2}")).collect();
        println!("| {} | {m:.2} | {:.0} | {} |", row.label, 1e3 / m, all.join(", "));
    }
    println!();
    println!("| ratio (throughput, same run) | median | per run | target | met |");
    println!("|---|---:|---|---|---|");
    for r in &ratios {
        let mut per_run: Vec<f64> = (0..runs).map(|i| ns[r.slower][i] / ns[r.faster][i]).collect();
        let all: Vec<String> = per_run.iter().map(|x| format!("{x:.2}")).collect();
        let m = median(&mut per_run);
        let met = match r.target.strip_prefix(">= ").and_then(|t| t.parse::<f64>().ok()) {
            Some(t) if m >= t => "yes",
            Some(_) => "no",
            None => "",
        };
        println!("| {} | {m:.2}x | {} | {} | {met} |", r.label, all.join(", "), r.target);
    }
    println!();
    println!(
        "load average (1 min) per run: {}; {:.0} s in all",
        loads.join(", "),
        started.elapsed().as_secs_f64()
    );
}
