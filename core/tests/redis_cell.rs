//! Differential test against the real redis-cell 0.2.2 module: the 5-integer
//! `CL.THROTTLE` replies rendered from our decisions
//! ([`Decision::throttle_reply`]) must equal the module's, for random quotas
//! and random sequences of quantities and elapsed times.
//!
//! Runs only when `REDIS_CELL_MODULE` names the module (built by
//! `scripts/redis-cell`); starts its own `redis-server` (`REDIS_SERVER`, else
//! from `PATH`) on a free loopback port. Otherwise it prints why and passes.
//!
//! # Timing
//!
//! redis-cell reads the wall clock, which the test cannot stop. So:
//! - Each sequence uses a fresh key. After its first (allowed) call, `GET`
//!   returns the module's stored TAT, which gives the module's `now0`
//!   exactly (`tat - quantity * T`). Our bucket runs on its own timeline
//!   with the same origin.
//! - Time passing is simulated, not slept: to let `d` elapse, the test
//!   rewrites the stored TAT to `tat - d` (or deletes the key when that is in
//!   the past) and advances our clock by `d`. GCRA depends only on
//!   `tat - now`, so this is the same as waiting.
//! - Every quota has an emission interval `T` that is a multiple of
//!   `g = gcd(T, 1 s)` >= 200 ms, and every simulated step is a multiple of
//!   `g`. Then every quantity compared (allowed or not, whole tokens left,
//!   whole seconds of retry/reset) changes only at times `now0 + k*g`, while
//!   the real time that passes during a sequence (the module's `now` drifts
//!   from `now0` by `delta_i`, a few ms) stays far below `g`. Our calls use
//!   `now0 + i ns` for the i-th call, which orders the calls the same way
//!   with the same sub-`g` offsets, so the answers must agree exactly. A
//!   sequence during which the machine stalled for more than `g / 4` is
//!   discarded (counted; at most 10% may be).
//! - One short check sleeps for real (260 ms against a 200 ms interval) and
//!   compares the allowed/remaining answers, far from any boundary.

mod common;

use common::Rng;
use resilience::clock::{Nanos, MILLISECOND, SECOND};
use resilience::limit::{Quota, TokenBucket};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

struct Redis {
    child: Child,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    fn start(module: &str) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let server = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--loadmodule", module])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {server}: {e} (apt-get install redis-server)"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("redis-server did not listen on {port}: {e}"),
            }
        };
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut r =
            Redis { child, reader: BufReader::new(stream.try_clone().expect("clone")), writer: stream };
        assert_eq!(r.cmd(&["PING"]), Resp::Simple("PONG".into()));
        r
    }

    fn cmd(&mut self, args: &[&str]) -> Resp {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.writer.write_all(&out).expect("write");
        self.read()
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("read");
        assert!(l.ends_with("\r\n"), "bad RESP line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    fn read(&mut self) -> Resp {
        let l = self.line();
        let (kind, rest) = l.split_at(1);
        match kind {
            "+" => Resp::Simple(rest.into()),
            "-" => Resp::Error(rest.into()),
            ":" => Resp::Int(rest.parse().expect("integer")),
            "$" => {
                let n: i64 = rest.parse().expect("length");
                if n < 0 {
                    return Resp::Bulk(None);
                }
                let mut buf = vec![0; n as usize + 2];
                self.reader.read_exact(&mut buf).expect("bulk");
                buf.truncate(n as usize);
                Resp::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().expect("length");
                Resp::Array((0..n.max(0)).map(|_| self.read()).collect())
            }
            _ => panic!("bad RESP reply {l:?}"),
        }
    }

    fn throttle(&mut self, key: &str, max_burst: u64, count: u64, period_s: u64, q: u64) -> [i64; 5] {
        let args =
            [key.to_string(), max_burst.to_string(), count.to_string(), period_s.to_string(), q.to_string()];
        let mut argv = vec!["CL.THROTTLE"];
        argv.extend(args.iter().map(String::as_str));
        match self.cmd(&argv) {
            Resp::Array(items) if items.len() == 5 => {
                let mut out = [0; 5];
                for (o, i) in out.iter_mut().zip(items) {
                    let Resp::Int(v) = i else { panic!("non-integer in CL.THROTTLE reply") };
                    *o = v;
                }
                out
            }
            other => panic!("CL.THROTTLE {argv:?}: {other:?}"),
        }
    }

    fn get_i64(&mut self, key: &str) -> Option<i64> {
        match self.cmd(&["GET", key]) {
            Resp::Bulk(Some(b)) => Some(String::from_utf8(b).expect("utf8").parse().expect("TAT")),
            Resp::Bulk(None) => None,
            other => panic!("GET {key}: {other:?}"),
        }
    }
}

fn module() -> Option<String> {
    match std::env::var("REDIS_CELL_MODULE") {
        Ok(m) if !m.is_empty() => Some(m),
        _ => {
            println!(
                "SKIPPED: REDIS_CELL_MODULE is not set (REDIS_CELL_MODULE=$(./scripts/redis-cell) to run)"
            );
            None
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[test]
fn cl_throttle_replies_match_redis_cell() {
    let Some(module) = module() else { return };
    let mut redis = Redis::start(&module);
    let mut rng = Rng::new(std::env::var("PROP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(42));
    let cases = common::cases(300);
    let (mut compared, mut discarded) = (0u64, 0u64);
    for case in 0..cases {
        // Emission interval T (ms) with g = gcd(T, 1000) >= 200 ms; count a
        // multiple of 1000 / g so that the period is whole seconds.
        let t_ms = [200u64, 250, 400, 500, 600, 750, 1000, 1500, 2000, 3000][rng.below(10) as usize];
        let g_ms = gcd(t_ms, 1000);
        let count = (1000 / gcd(t_ms, 1000)) * rng.range(1, 4);
        let period_s = count * t_ms / 1000;
        let max_burst = rng.below(16);
        let quota = Quota::throttle(max_burst as i64, count as i64, period_s as i64).expect("valid quota");
        assert_eq!(quota.emission_interval(), t_ms * MILLISECOND);
        let (t, g) = (quota.emission_interval(), g_ms * MILLISECOND);
        let limit = quota.limit();
        let key = format!("rsl-diff-{case}");
        let bucket = TokenBucket::with_clock(quota, resilience::clock::ManualClock::default());
        let origin: Nanos = 1_000 * SECOND;
        let started = Instant::now();
        let mut log = Vec::new();

        // First call: allowed on a fresh key; its stored TAT gives now0.
        let q0 = rng.range(1, limit);
        let theirs = redis.throttle(&key, max_burst, count, period_s, q0);
        let ours = bucket.acquire_at(q0, origin).throttle_reply();
        assert_eq!(ours, theirs, "case {case}: first call q {q0}, quota {quota:?}");
        let now0 = redis.get_i64(&key).expect("stored TAT") - (q0 * t) as i64;
        let mut elapsed: Nanos = 0; // simulated, multiples of g
        let mut calls: Nanos = 1;
        for step in 0..rng.range(10, 40) {
            if rng.chance(0.3) {
                // Let d pass: shift the stored TAT back by d.
                let d = g * rng.range(1, quota.burst_window() / g + 2);
                elapsed += d;
                if let Some(tat) = redis.get_i64(&key) {
                    let shifted = tat - d as i64;
                    if shifted - now0 < (g / 2) as i64 {
                        redis.cmd(&["DEL", &key]);
                    } else {
                        let px = ((shifted - now0) as u64 / MILLISECOND + 60_000).to_string();
                        let v = shifted.to_string();
                        assert_eq!(redis.cmd(&["SET", &key, &v, "PX", &px]), Resp::Simple("OK".into()));
                    }
                }
                log.push(format!("+{} ms", d / MILLISECOND));
                continue;
            }
            let q = match rng.below(8) {
                0 => 0,
                1 => limit,
                2 => limit + rng.range(1, 2),
                _ => rng.range(1, limit.min(3)),
            };
            let theirs = redis.throttle(&key, max_burst, count, period_s, q);
            let ours = bucket.acquire_at(q, origin + elapsed + calls).throttle_reply();
            calls += 1;
            log.push(format!("q {q} -> {theirs:?}"));
            if started.elapsed() > Duration::from_nanos(g / 4) {
                break;
            }
            assert_eq!(
                ours, theirs,
                "case {case} step {step}: quota {quota:?} (T {t_ms} ms, g {g_ms} ms); history {log:?}"
            );
            compared += 1;
        }
        if started.elapsed() > Duration::from_nanos(g / 4) {
            discarded += 1;
        }
    }
    println!(
        "redis-cell: {compared} replies compared over {cases} sequences, {discarded} discarded (stalls)"
    );
    assert!(discarded * 10 <= cases, "{discarded} of {cases} sequences stalled");
    assert!(compared >= cases * 5, "only {compared} replies compared");
}

#[test]
fn real_time_refill_matches_redis_cell() {
    let Some(module) = module() else { return };
    let mut redis = Redis::start(&module);
    // 5 per second (T = 200 ms), holding 1.
    let quota = Quota::throttle(0, 5, 1).expect("valid");
    let bucket = TokenBucket::with_clock(quota, resilience::clock::ManualClock::default());
    let start = Instant::now();
    let origin = 1_000 * SECOND;
    let at = |start: Instant| origin + resilience::clock::nanos(start.elapsed());
    for round in 0..2 {
        let theirs = redis.throttle("rsl-sleep", 0, 5, 1, 1);
        assert_eq!(bucket.acquire_at(1, at(start)).throttle_reply(), theirs, "round {round}: take");
        assert_eq!(theirs[0], 0, "allowed");
        let theirs = redis.throttle("rsl-sleep", 0, 5, 1, 1);
        assert_eq!(bucket.acquire_at(1, at(start)).throttle_reply(), theirs, "round {round}: empty");
        assert_eq!(theirs[0], 1, "limited");
        std::thread::sleep(Duration::from_millis(260));
        let peek = redis.throttle("rsl-sleep", 0, 5, 1, 0);
        let ours = bucket.acquire_at(0, at(start));
        assert_eq!((ours.allowed, ours.remaining as i64), (peek[0] == 0, peek[2]), "round {round}: refilled");
        assert_eq!(peek[2], 1, "one token back after 260 ms");
    }
}
