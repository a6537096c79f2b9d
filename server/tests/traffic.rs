//! Pipelining, many connections, malformed input, backpressure, limits,
//! shutdown: the server under traffic, through real clients and raw sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;

#[test]
fn deep_pipelines_answer_in_order_across_shards() {
    let Some(engine) = common::start(4, |c| c.max_pipeline = 64) else { return };
    let mut con = common::client(engine.local_addr());
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        p.cmd("INCR").arg(format!("p{i}"));
        p.cmd("GET").arg(format!("p{i}"));
        p.cmd("PING");
    }
    let got: Vec<Value> = p.query(&mut con).unwrap();
    assert_eq!(got.len(), 6000);
    for (i, chunk) in got.chunks(3).enumerate() {
        assert_eq!(chunk[0], Value::Int(i as i64 + 1));
        assert_eq!(chunk[1], Value::BulkString((i + 1).to_string().into_bytes()));
        assert_eq!(chunk[2], Value::SimpleString("PONG".into()));
    }
}

#[test]
fn many_connections_at_once() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let addr = engine.local_addr();
    let threads: Vec<_> = (0..40)
        .map(|t| {
            std::thread::spawn(move || {
                let mut con = common::client(addr);
                for i in 0..100 {
                    let k = format!("c{t}:{i}");
                    let _: () = redis::cmd("SET").arg(&k).arg(i).query(&mut con).unwrap();
                    let v: i64 = redis::cmd("GET").arg(&k).query(&mut con).unwrap();
                    assert_eq!(v, i);
                }
                let n: i64 = redis::cmd("INCR").arg("shared").query(&mut con).unwrap();
                n
            })
        })
        .collect();
    let mut seen: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    let mut con = common::client(addr);
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 40 * 100 + 1);
}

#[test]
fn malformed_input_gets_an_error_and_a_close_and_nobody_else_notices() {
    let Some(engine) = common::start(2, |c| c.limits.max_bulk = 1 << 20) else { return };
    let addr = engine.local_addr();
    let mut bystander = common::client(addr);
    let _: () = redis::cmd("SET").arg("safe").arg("yes").query(&mut bystander).unwrap();
    let cases: &[(&[u8], &str)] = &[
        (b"*2\r\n$3\r\nGET\r\n$99999999999\r\n", "invalid bulk length"),
        (b"*1\r\n$2000000\r\n", "invalid bulk length"),
        (b"*1\r\n:12\r\n", "expected '$'"),
        (b"*1\r\n$3\r\nabcde\r\n", "not terminated"),
        (b"SET a \"unterminated\r\n", "unbalanced quotes"),
        (b"*1\r\n$4\r\nPING\r\n*x\r\n", "invalid multibulk length"),
        (&[0xff; 100_000], "too big inline request"),
    ];
    for (input, want) in cases {
        let (got, closed) = common::raw(addr, input, 1 << 20);
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains(want), "{want}: got {text:?}");
        assert!(closed, "{want}: connection left open");
    }
    // A negative count is skipped, as Redis does.
    let (got, _) = common::raw(addr, b"*-5\r\n*1\r\n$4\r\nPING\r\n", 7);
    assert_eq!(got, b"+PONG\r\n");
    // Replies to the requests before the bad one came first.
    let (got, _) = common::raw(addr, b"*1\r\n$4\r\nPING\r\n*x\r\n", 1 << 20);
    assert!(got.starts_with(b"+PONG\r\n-ERR Protocol error"), "{:?}", String::from_utf8_lossy(&got));
    let v: String = redis::cmd("GET").arg("safe").query(&mut bystander).unwrap();
    assert_eq!(v, "yes");
}

#[test]
fn inline_commands_and_resp3_work_over_raw_sockets() {
    let Some(engine) = common::start(1, |_| {}) else { return };
    let addr = engine.local_addr();
    let (got, _) = common::raw(addr, b"SET k \"a b\"\r\nGET k\r\nPING\r\n", 21);
    assert_eq!(got, b"+OK\r\n$3\r\na b\r\n+PONG\r\n");
    let (got, _) = common::raw(addr, b"HELLO 3\r\nGET missing\r\nMGET missing\r\nQUIT\r\n", usize::MAX);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("%7\r\n"), "{text}");
    assert!(text.ends_with("_\r\n*1\r\n_\r\n+OK\r\n"), "{text}");
}

#[test]
fn maxclients_refuses_with_a_clear_error() {
    let Some(engine) = common::start(1, |c| c.maxclients = 2) else { return };
    let addr = engine.local_addr();
    let mut a = common::client(addr);
    let mut b = common::client(addr);
    let _: String = redis::cmd("PING").query(&mut a).unwrap();
    let _: String = redis::cmd("PING").query(&mut b).unwrap();
    let (got, closed) = common::raw(addr, b"PING\r\n", 1 << 16);
    assert!(String::from_utf8_lossy(&got).contains("max number of clients reached"));
    assert!(closed);
    drop(a);
    std::thread::sleep(Duration::from_millis(50));
    let mut c = common::client(addr);
    let _: String = redis::cmd("PING").query(&mut c).unwrap();
}

#[test]
fn maxmemory_evicts_and_stays_under_budget() {
    let Some(engine) = common::start(2, |c| c.maxmemory = 1 << 20) else { return };
    let mut con = common::client(engine.local_addr());
    let value = vec![b'v'; 1000];
    for chunk in 0..10 {
        let mut p = redis::pipe();
        for i in 0..500 {
            p.cmd("SET").arg(format!("k{}", chunk * 500 + i)).arg(&value[..]).ignore();
        }
        let () = p.query(&mut con).unwrap();
    }
    let info: String = redis::cmd("INFO").arg("shards").query(&mut con).unwrap();
    let field = |name: &str| -> Vec<u64> {
        // Shard fields read `shardN_name:value`.
        info.lines()
            .filter_map(|l| l.strip_prefix("shard")?.split_once('_')?.1.strip_prefix(name))
            .map(|v| v.trim().parse().unwrap())
            .collect()
    };
    let (used, max, evicted) = (field("used_memory:"), field("maxmemory:"), field("evictions:"));
    assert_eq!((used.len(), max.len()), (2, 2), "{info}");
    for (u, m) in used.iter().zip(&max) {
        assert!(u <= m, "shard uses {u} of {m}");
    }
    assert!(evicted.iter().sum::<u64>() > 3000, "{info}");
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert!(n > 500 && n < 1100, "{n} keys of about 1 KiB in 1 MiB");
    // The keys written last are (mostly) still there: the policy keeps recent entries.
    let recent: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg((4900..5000).map(|i| format!("k{i}")).collect::<Vec<_>>())
        .query(&mut con)
        .unwrap();
    assert!(recent.iter().filter(|v| v.is_some()).count() > 50);
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
}

struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the real `resilienced` binary on a free port.
fn daemon(extra: &[&str]) -> Option<Daemon> {
    if let Err(e) = resilience::runtime::probe() {
        eprintln!("skipped: {e}");
        return None;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_resilienced"))
        .args(["--port", "0", "--shards", "2", "--no-pin"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    let out = child.stdout.as_mut().unwrap();
    while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let port = line.split("127.0.0.1:").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    Some(Daemon { child, port })
}

#[test]
fn a_client_that_never_reads_is_stopped_not_buffered() {
    let Some(d) = daemon(&[]) else { return };
    let addr = format!("127.0.0.1:{}", d.port);
    let mut setter = redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection().unwrap();
    let big = vec![b'x'; 256 * 1024];
    let _: () = redis::cmd("SET").arg("big").arg(&big[..]).query(&mut setter).unwrap();
    let before = rss_kib(d.child.id());
    // Ask for the 256 KiB value 300,000 times (75 GB of replies; 10 MB of
    // requests, more than the socket buffers hold) and never read.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
    let req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(300_000);
    let mut sent = 0;
    let start = Instant::now();
    while sent < req.len() && start.elapsed() < Duration::from_secs(5) {
        match s.write(&req[sent..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(d.child.id());
    eprintln!(
        "slow reader: server RSS {before} KiB -> {after} KiB, {sent} of {} request bytes taken",
        req.len()
    );
    // The server stopped reading long before all requests were taken, and
    // holds at most about one pipeline of replies for this client.
    assert!(sent < req.len(), "the server read every request of a client that never reads");
    assert!(after < before + 32 * 1024, "RSS grew from {before} KiB to {after} KiB");
    // Everyone else is served meanwhile.
    let v: Vec<u8> = redis::cmd("GET").arg("big").query(&mut setter).unwrap();
    assert_eq!(v.len(), big.len());
}

#[test]
fn announced_sizes_that_never_arrive_cost_little_memory() {
    let Some(d) = daemon(&[]) else { return };
    let addr = format!("127.0.0.1:{}", d.port);
    let before = rss_kib(d.child.id());
    // 300 connections each announce a 16 MiB value (the bulk limit) and
    // send none of it. Reserving the announced size would take 4.8 GB.
    let mut conns = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16777216\r\nabc").unwrap();
        conns.push(s);
    }
    // Every connection's header is read once PING on a new one is answered
    // after them (the server reads in arrival order per shard; wait a bit
    // more for the other shard).
    let mut con = redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection().unwrap();
    let _: String = redis::cmd("PING").query(&mut con).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(d.child.id());
    eprintln!("300 announced 16 MiB values: server RSS {before} KiB -> {after} KiB");
    assert!(after < before + 100 * 1024, "RSS grew from {before} KiB to {after} KiB");
    // A value that does arrive, in pieces, is stored whole.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut req = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", big.len()).into_bytes();
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n");
    for chunk in req.chunks(100_003) {
        s.write_all(chunk).unwrap();
    }
    let mut ok = [0u8; 5];
    s.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let v: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert!(v == big, "the value arrived in pieces and came back whole");
    drop(conns);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let Some(mut d) = daemon(&[]) else { return };
    let mut con =
        redis::Client::open(format!("redis://127.0.0.1:{}/", d.port)).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    // SAFETY: sends a signal to our own child process.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn redis_cli_talks_to_it() {
    let Ok(out) = Command::new("redis-cli").arg("--version").output() else {
        eprintln!("skipped: redis-cli not installed (apt-get install redis-tools)");
        return;
    };
    assert!(out.status.success());
    let Some(d) = daemon(&[]) else { return };
    let cli = |args: &[&str]| {
        let o = Command::new("redis-cli").args(["-p", &d.port.to_string()]).args(args).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(
        cli(&["CL.THROTTLE", "u", "1", "1", "60"]).lines().collect::<Vec<_>>(),
        ["0", "2", "1", "-1", "60"]
    );
    assert!(cli(&["INFO"]).contains("multiplexing_api:io_uring"));
    assert_eq!(cli(&["--no-raw", "GET", "missing"]), "(nil)");
}

#[test]
fn a_second_server_on_the_same_port_is_refused() {
    let Some(first) = common::start(2, |_| {}) else { return };
    let port = first.local_addr().port();
    let cfg =
        resilience_server::Config { port, shards: 2, pin: false, ..resilience_server::Config::default() };
    match resilience_server::Engine::start(cfg) {
        Err(e) => assert!(e.to_string().contains("cannot listen on 127.0.0.1:"), "{e}"),
        Ok(_) => panic!("two servers share port {port}"),
    }
}
