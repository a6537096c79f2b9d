//! Every command of `resilienced`, through a real Redis client.

mod common;

use std::time::Duration;

use redis::{cmd, Value};

fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut c = cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

fn ok(con: &mut redis::Connection, args: &[&str]) {
    let v: String = q(con, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(v, "OK", "{args:?}");
}

fn err(con: &mut redis::Connection, args: &[&str]) -> String {
    match q::<Value>(con, args) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} succeeded: {v:?}"),
    }
}

#[test]
fn connection_and_server_commands() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    assert_eq!(q::<String>(&mut con, &["PING"]).unwrap(), "PONG");
    assert_eq!(q::<String>(&mut con, &["PING", "hi"]).unwrap(), "hi");
    assert_eq!(q::<Vec<u8>>(&mut con, &["ECHO", "a\r\nb"]).unwrap(), b"a\r\nb");
    ok(&mut con, &["SELECT", "0"]);
    assert!(err(&mut con, &["SELECT", "16"]).contains("out of range"));
    let hello: Vec<Value> = q(&mut con, &["HELLO", "2"]).unwrap();
    assert_eq!(hello.len(), 14);
    assert!(err(&mut con, &["HELLO", "4"]).contains("NOPROTO"));
    let count: i64 = q(&mut con, &["COMMAND", "COUNT"]).unwrap();
    let all: Vec<Value> = q(&mut con, &["COMMAND"]).unwrap();
    assert_eq!(all.len() as i64, count);
    let info_all: Vec<Value> = q(&mut con, &["COMMAND", "INFO"]).unwrap();
    assert_eq!(info_all.len() as i64, count, "COMMAND INFO with no names lists every command");
    let info: Vec<Value> = q(&mut con, &["COMMAND", "INFO", "get", "nosuch"]).unwrap();
    assert!(matches!(info[0], Value::Array(_)) && info[1] == Value::Nil, "{info:?}");
    let cfg: Vec<String> = q(&mut con, &["CONFIG", "GET", "save"]).unwrap();
    assert_eq!(cfg, vec!["save".to_string(), String::new()]);
    let cfg: Vec<String> = q(&mut con, &["CONFIG", "GET", "max*"]).unwrap();
    assert!(cfg.contains(&"maxclients".to_string()) && cfg.contains(&"maxmemory".to_string()));
    ok(&mut con, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]).unwrap(), 3);
    let info: String = q(&mut con, &["INFO"]).unwrap();
    assert!(info.contains("# Server") && info.contains("# Shard 0") && info.contains("# Shard 1"), "{info}");
    assert!(info.contains("connected_clients:1"), "{info}");
    // Every field name once (shard fields are prefixed), so a client that
    // reads INFO into one map gets the totals; no blank line at the end.
    let names: Vec<&str> = info.lines().filter_map(|l| l.split_once(':').map(|(k, _)| k)).collect();
    let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), unique.len(), "{info}");
    assert!(info.contains("\r\nshard1_used_memory:") && !info.ends_with("\r\n\r\n"), "{info}");
    // Totals over the shards, and the sections asked for only.
    assert!(info.contains("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"), "{info}");
    assert!(info.contains("# Stats\r\n") && info.contains("role:master"), "{info}");
    let mem: String = q(&mut con, &["INFO", "memory"]).unwrap();
    assert!(mem.starts_with("# Memory\r\nused_memory:") && !mem.contains("# Server"), "{mem}");
    let two: String = q(&mut con, &["INFO", "KEYSPACE", "clients"]).unwrap();
    assert!(two.contains("# Keyspace") && two.contains("# Clients") && !two.contains("# Shard"), "{two}");
    assert_eq!(q::<String>(&mut con, &["INFO", "nosuchsection"]).unwrap(), "");
    let shards: String = q(&mut con, &["INFO", "shards"]).unwrap();
    assert!(shards.starts_with("# Shard 0") && shards.contains("# Shard 1"), "{shards}");
    let hits = |s: &str| -> u64 {
        s.lines().find_map(|l| l.strip_prefix("keyspace_hits:")).and_then(|v| v.trim().parse().ok()).unwrap()
    };
    let before = hits(&q::<String>(&mut con, &["INFO", "stats"]).unwrap());
    let _: Vec<Option<String>> = q(&mut con, &["MGET", "a", "b", "c"]).unwrap();
    assert_eq!(hits(&q::<String>(&mut con, &["INFO", "stats"]).unwrap()), before + 3);
    ok(&mut con, &["FLUSHALL"]);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]).unwrap(), 0);
    assert!(
        err(&mut con, &["NOSUCH", "x"]).contains("unknown command 'NOSUCH', with args beginning with: 'x'")
    );
    assert!(err(&mut con, &["GET"]).contains("wrong number of arguments for 'get' command"));
    assert!(err(&mut con, &["MSET", "a", "1", "b"]).contains("wrong number of arguments"));
}

/// What client libraries send on connect: CLIENT SETNAME / GETNAME / ID /
/// SETINFO / INFO, and HELLO with SETNAME (kept only when HELLO succeeds).
#[test]
fn client_command() {
    let Some(engine) = common::start(1, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    assert_eq!(q::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]).unwrap(), None);
    ok(&mut con, &["CLIENT", "SETNAME", "worker-1"]);
    assert_eq!(q::<String>(&mut con, &["client", "getname"]).unwrap(), "worker-1");
    assert!(err(&mut con, &["CLIENT", "SETNAME", "has space"]).contains("cannot contain spaces"));
    assert_eq!(
        q::<String>(&mut con, &["CLIENT", "GETNAME"]).unwrap(),
        "worker-1",
        "a refused name changes nothing"
    );
    let id: i64 = q(&mut con, &["CLIENT", "ID"]).unwrap();
    assert!(id > 0);
    ok(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]);
    ok(&mut con, &["CLIENT", "SETINFO", "lib-ver", "0.27"]);
    assert!(err(&mut con, &["CLIENT", "SETINFO", "colour", "x"]).contains("Unrecognized option"));
    let info: String = q(&mut con, &["CLIENT", "INFO"]).unwrap();
    assert!(info.starts_with(&format!("id={id} addr=127.0.0.1:")), "{info}");
    assert!(info.contains(" name=worker-1 ") && info.contains(" multi=-1 watch=0 cmd=client "), "{info}");
    assert!(info.contains("lib-name=redis-rs lib-ver=0.27"), "{info}");
    let help: Vec<String> = q(&mut con, &["CLIENT", "HELP"]).unwrap();
    assert!(help.len() > 3);
    assert!(err(&mut con, &["CLIENT", "KILL", "x"]).contains("No such client"));
    // Redis 7's wording: an unknown subcommand as sent, a known one with
    // the wrong number of arguments by its full name.
    assert!(err(&mut con, &["CLIENT", "Nope"]).contains("unknown subcommand 'Nope'. Try CLIENT HELP."));
    assert!(err(&mut con, &["CLIENT", "ID", "extra"])
        .contains("wrong number of arguments for 'client|id' command"));
    assert!(err(&mut con, &["COMMAND", "COUNT", "x"])
        .contains("wrong number of arguments for 'command|count' command"));
    assert!(err(&mut con, &["CONFIG", "nope"]).contains("unknown subcommand 'nope'. Try CONFIG HELP."));
    assert!(err(&mut con, &["CONFIG", "SET", "a", "b"]).contains("only CONFIG GET"));
    ok(&mut con, &["CLIENT", "NO-EVICT", "on"]);
    assert!(err(&mut con, &["CLIENT"]).contains("wrong number of arguments"));
    // HELLO: a bad option changes neither the protocol nor the name.
    assert!(err(&mut con, &["HELLO", "3", "SETNAME", "other", "BOGUS"]).contains("Syntax error"));
    assert_eq!(q::<String>(&mut con, &["CLIENT", "GETNAME"]).unwrap(), "worker-1");
    let hello: Vec<Value> =
        q(&mut con, &["HELLO", "2", "AUTH", "default", "pw", "SETNAME", "other"]).unwrap();
    assert_eq!(hello.len(), 14, "still RESP2");
    assert_eq!(q::<String>(&mut con, &["CLIENT", "GETNAME"]).unwrap(), "other");
}

#[test]
fn cache_commands() {
    let Some(engine) = common::start(3, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    assert_eq!(q::<Option<String>>(&mut con, &["GET", "k"]).unwrap(), None);
    ok(&mut con, &["SET", "k", "v"]);
    assert_eq!(q::<String>(&mut con, &["GET", "k"]).unwrap(), "v");
    // NX / XX / GET / KEEPTTL.
    assert_eq!(q::<Option<String>>(&mut con, &["SET", "k", "w", "NX"]).unwrap(), None);
    assert_eq!(q::<Option<String>>(&mut con, &["SET", "new", "w", "XX"]).unwrap(), None);
    assert_eq!(q::<Option<String>>(&mut con, &["SET", "k", "w", "GET"]).unwrap(), Some("v".into()));
    ok(&mut con, &["SET", "k", "x", "EX", "100"]);
    assert!((99..=100).contains(&q::<i64>(&mut con, &["TTL", "k"]).unwrap()));
    ok(&mut con, &["SET", "k", "y", "KEEPTTL"]);
    assert!(q::<i64>(&mut con, &["PTTL", "k"]).unwrap() > 98_000);
    ok(&mut con, &["SET", "k", "z"]);
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]).unwrap(), -1);
    assert_eq!(q::<i64>(&mut con, &["TTL", "missing"]).unwrap(), -2);
    assert!(err(&mut con, &["SET", "k", "v", "EX", "0"]).contains("invalid expire time"));
    assert!(err(&mut con, &["SET", "k", "v", "NX", "XX"]).contains("syntax error"));
    assert!(err(&mut con, &["SET", "k", "v", "EX", "abc"]).contains("not an integer"));
    // EXPIRE / PEXPIRE.
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "50"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "missing", "50"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["EXPIRE", "k", "10", "GT"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["PEXPIRE", "k", "60000", "GT"]).unwrap(), 1);
    assert!(q::<i64>(&mut con, &["PTTL", "k"]).unwrap() > 59_000);
    assert_eq!(q::<i64>(&mut con, &["PEXPIRE", "k", "-1"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "k"]).unwrap(), 0);
    // Counters.
    assert_eq!(q::<i64>(&mut con, &["INCR", "n"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["INCRBY", "n", "41"]).unwrap(), 42);
    assert_eq!(q::<i64>(&mut con, &["DECR", "n"]).unwrap(), 41);
    assert_eq!(q::<i64>(&mut con, &["DECRBY", "n", "50"]).unwrap(), -9);
    ok(&mut con, &["SET", "s", "abc"]);
    assert!(err(&mut con, &["INCR", "s"]).contains("not an integer"));
    ok(&mut con, &["SET", "big", &i64::MAX.to_string()]);
    assert!(err(&mut con, &["INCR", "big"]).contains("overflow"));
    // Multi-key commands spread over three shards answer in key order.
    let keys: Vec<String> = (0..50).map(|i| format!("key:{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for (i, k) in keys.iter().enumerate() {
        mset.push(k.clone());
        mset.push(format!("value-{i}"));
    }
    ok(&mut con, &mset.iter().map(String::as_str).collect::<Vec<_>>());
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.push("absent");
    let got: Vec<Option<String>> = q(&mut con, &mget).unwrap();
    assert_eq!(got.len(), 51);
    for (i, v) in got[..50].iter().enumerate() {
        assert_eq!(v.as_deref(), Some(format!("value-{i}").as_str()));
    }
    assert_eq!(got[50], None);
    let mut exists = vec!["EXISTS"];
    exists.extend(keys.iter().map(String::as_str));
    exists.push("key:0");
    assert_eq!(q::<i64>(&mut con, &exists).unwrap(), 51);
    let mut del = vec!["DEL"];
    del.extend(keys[..30].iter().map(String::as_str));
    del.push("absent");
    assert_eq!(q::<i64>(&mut con, &del).unwrap(), 30);
    assert_eq!(q::<i64>(&mut con, &exists).unwrap(), 20);
    let mut unlink = vec!["UNLINK"];
    unlink.extend(keys[25..35].iter().map(String::as_str));
    assert_eq!(q::<i64>(&mut con, &unlink).unwrap(), 5, "keys 30..35 were left");
    // The older forms client libraries send.
    ok(&mut con, &["SETEX", "sx", "100", "v1"]);
    assert!((99..=100).contains(&q::<i64>(&mut con, &["TTL", "sx"]).unwrap()));
    ok(&mut con, &["PSETEX", "psx", "100000", "v2"]);
    assert!((99_000..=100_000).contains(&q::<i64>(&mut con, &["PTTL", "psx"]).unwrap()));
    assert!(err(&mut con, &["SETEX", "sx", "0", "v"]).contains("invalid expire time in 'setex'"));
    assert!(err(&mut con, &["PSETEX", "sx", "x", "v"]).contains("not an integer"));
    assert_eq!(q::<i64>(&mut con, &["PERSIST", "sx"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["TTL", "sx"]).unwrap(), -1);
    assert_eq!(q::<i64>(&mut con, &["PERSIST", "sx"]).unwrap(), 0, "no deadline left");
    assert_eq!(q::<i64>(&mut con, &["PERSIST", "absent"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["SETNX", "nx", "first"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["SETNX", "nx", "second"]).unwrap(), 0);
    assert_eq!(q::<String>(&mut con, &["GETDEL", "nx"]).unwrap(), "first");
    assert_eq!(q::<Option<String>>(&mut con, &["GETDEL", "nx"]).unwrap(), None);
    assert_eq!(q::<String>(&mut con, &["TYPE", "psx"]).unwrap(), "string");
    assert_eq!(q::<String>(&mut con, &["TYPE", "nx"]).unwrap(), "none");
    // Large values (passed between shards by reference) and small ones mixed.
    let vals: Vec<Vec<u8>> =
        (0..40).map(|i| vec![b'a' + (i % 26) as u8; if i % 3 == 0 { 5000 + i } else { i }]).collect();
    let mut pipe = redis::pipe();
    for (i, v) in vals.iter().enumerate() {
        pipe.cmd("SET").arg(format!("big{i}")).arg(&v[..]).ignore();
    }
    let mut mget = redis::cmd("MGET");
    for i in 0..40 {
        mget.arg(format!("big{i}"));
        pipe.cmd("GET").arg(format!("big{i}"));
        pipe.cmd("SET").arg(format!("big{i}")).arg("x").arg("GET");
    }
    let got: Vec<Vec<u8>> = pipe.query(&mut con).unwrap();
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(&got[2 * i], v, "GET big{i}");
        assert_eq!(&got[2 * i + 1], v, "SET GET big{i}");
    }
    for (i, v) in vals.iter().enumerate() {
        ok(&mut con, &["SET", &format!("big{i}"), std::str::from_utf8(v).unwrap()]);
    }
    let all: Vec<Vec<u8>> = mget.query(&mut con).unwrap();
    assert_eq!(all, vals);
}

#[test]
fn ttl_expiry_is_lazy_and_active() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    ok(&mut con, &["SET", "short", "v", "PX", "60"]);
    for i in 0..20 {
        ok(&mut con, &["SET", &format!("sweep{i}"), "v", "PX", "60"]);
    }
    ok(&mut con, &["SET", "long", "v", "EX", "100"]);
    assert_eq!(q::<String>(&mut con, &["GET", "short"]).unwrap(), "v");
    std::thread::sleep(Duration::from_millis(120));
    // Lazily: a read of an expired key misses.
    assert_eq!(q::<Option<String>>(&mut con, &["GET", "short"]).unwrap(), None);
    assert_eq!(q::<i64>(&mut con, &["TTL", "short"]).unwrap(), -2);
    // Actively: the shards' sweeps remove the others without any read.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]).unwrap(), 1);
    // Counted by the shards, and in the total.
    let mut expired = |section: &str| -> u64 {
        let info: String = q(&mut con, &["INFO", section]).unwrap();
        // Shard fields read `shardN_expired_keys:`.
        info.lines()
            .map(|l| l.strip_prefix("shard").and_then(|r| Some(r.split_once('_')?.1)).unwrap_or(l))
            .filter_map(|l| l.strip_prefix("expired_keys:"))
            .map(|v| v.trim().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(expired("shards"), 21);
    assert_eq!(expired("stats"), 21);
}

/// redis-cell 0.2.2's answers for `CL.THROTTLE user 15 30 60`: a bucket of
/// 16 that refills one token every 2 s.
#[test]
fn throttle_follows_redis_cell() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    let first: Vec<i64> = q(&mut con, &["CL.THROTTLE", "user", "15", "30", "60"]).unwrap();
    assert_eq!(first, vec![0, 16, 15, -1, 2]);
    for left in (0..15).rev() {
        let r: Vec<i64> = q(&mut con, &["CL.THROTTLE", "user", "15", "30", "60"]).unwrap();
        assert_eq!(&r[..4], &[0, 16, left, -1]);
        // Call c leaves the bucket full again in 2c seconds (truncated).
        let c = 16 - left;
        assert!((2 * c - 1..=2 * c).contains(&r[4]), "{r:?}");
    }
    let denied: Vec<i64> = q(&mut con, &["CL.THROTTLE", "user", "15", "30", "60"]).unwrap();
    assert_eq!(&denied[..3], &[1, 16, 0]);
    assert!((1..=2).contains(&denied[3]), "{denied:?}");
    // A quantity above the bucket can never pass: retry_after is -1.
    let huge: Vec<i64> = q(&mut con, &["CL.THROTTLE", "other", "15", "30", "60", "17"]).unwrap();
    assert_eq!(huge, vec![1, 16, 16, -1, 0]);
    // Quantity 0 peeks.
    let peek: Vec<i64> = q(&mut con, &["CL.THROTTLE", "fresh", "4", "1", "1", "0"]).unwrap();
    assert_eq!(peek, vec![0, 5, 5, -1, 0]);
    assert!(err(&mut con, &["CL.THROTTLE", "k", "x", "30", "60"]).contains("Couldn't parse as integer: x"));
    assert!(err(&mut con, &["CL.THROTTLE", "k", "1", "2"]).contains("Usage: cl.throttle"));
}

#[test]
fn breakers_open_on_failures_and_reject_stale_permits() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    ok(
        &mut con,
        &[
            "BREAKER.CONFIG",
            "db",
            "failure_rate",
            "50",
            "minimum_calls",
            "4",
            "window",
            "4",
            "open_ms",
            "100",
        ],
    );
    ok(
        &mut con,
        &[
            "BREAKER.CONFIG",
            "db",
            "minimum_calls",
            "4",
            "window",
            "4",
            "open_ms",
            "100",
            "half_open_calls",
            "1",
        ],
    );
    let mut gen = 0;
    for outcome in ["success", "failure", "failure", "failure"] {
        let a: (i64, String, i64, i64) = q(&mut con, &["BREAKER.ACQUIRE", "db"]).unwrap();
        assert_eq!((a.0, a.1.as_str()), (1, "closed"));
        gen = a.2;
        let r: (String, String) = q(&mut con, &["BREAKER.RECORD", "db", &gen.to_string(), outcome]).unwrap();
        assert_eq!(r.0, "counted");
    }
    let a: (i64, String, i64, i64) = q(&mut con, &["BREAKER.ACQUIRE", "db"]).unwrap();
    assert_eq!((a.0, a.1.as_str()), (0, "open"));
    assert!(a.3 > 0 && a.3 <= 100, "{a:?}");
    // A result from the closed generation is not counted any more.
    let r: (String, String) = q(&mut con, &["BREAKER.RECORD", "db", &gen.to_string(), "success"]).unwrap();
    assert_eq!(r, ("stale".to_string(), "open".to_string()));
    std::thread::sleep(Duration::from_millis(120));
    let probe: (i64, String, i64, i64) = q(&mut con, &["BREAKER.ACQUIRE", "db"]).unwrap();
    assert_eq!((probe.0, probe.1.as_str()), (1, "half_open"));
    let r: (String, String) =
        q(&mut con, &["BREAKER.RECORD", "db", &probe.2.to_string(), "success", "3"]).unwrap();
    assert_eq!(r, ("counted".to_string(), "closed".to_string()));
    let state: Vec<Value> = q(&mut con, &["BREAKER.STATE", "db"]).unwrap();
    assert_eq!(state.len(), 16);
    assert!(err(&mut con, &["BREAKER.RECORD", "db", "0", "maybe"]).contains("success, failure or ignore"));
    // Errors name the command's options and their ranges.
    for (args, want) in [
        (&["failure_rate", "150"][..], "'failure_rate' must be a percentage in (0, 100]"),
        (&["window", "1.5"], "'window' must be from 1 to 65536 calls"),
        (&["window", "65537"], "'window' must be from 1 to 65536 calls"),
        (&["window_seconds", "0"], "'window_seconds' must be from 1 to 3600 seconds"),
        (&["window", "10", "window_seconds", "10"], "either window or window_seconds, not both"),
        (&["slow_call_ms", "1.5"], "'slow_call_ms' must be a whole number of milliseconds, at least 1"),
        (&["open_ms", "0"], "'open_ms' must be a whole number of milliseconds, at least 1"),
        (&["half_open_calls", "1024"], "'half_open_calls' must be from 1 to 1023 calls"),
        (&["minimum_calls", "-1"], "'minimum_calls' must be a whole number of calls, at least 1"),
        (&["colour", "1"], "unknown breaker setting 'colour'"),
        (&["window"], "syntax error"),
    ] {
        let mut cmd = vec!["BREAKER.CONFIG", "db"];
        cmd.extend_from_slice(args);
        let e = err(&mut con, &cmd);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    ok(
        &mut con,
        &["BREAKER.CONFIG", "db", "half_open_max_ms", "0", "window_seconds", "60", "window_seconds", "30"],
    );
}

#[test]
fn idempotency_begin_complete_abandon() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    let started: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-1", "fp-a", "10000"]).unwrap();
    assert_eq!((started.0.as_str(), started.2), ("started", 0));
    let token = started.1;
    let busy: (String, i64) = q(&mut con, &["IDEM.BEGIN", "order-1", "fp-a", "10000"]).unwrap();
    assert_eq!(busy.0, "in_progress");
    assert!(busy.1 > 9000);
    let mismatch: Vec<String> = q(&mut con, &["IDEM.BEGIN", "order-1", "fp-b", "10000"]).unwrap();
    assert_eq!(mismatch, vec!["mismatch"]);
    // Leases are at most the retention (24 h): in-progress records are
    // never evicted, so a longer lease would pin memory.
    for lease in ["0", "-1", "86400001", "18446744073709551615", "x"] {
        let e = err(&mut con, &["IDEM.BEGIN", "order-9", "fp", lease]);
        assert!(e.contains("lease must be from 1 to 86400000 milliseconds"), "{lease}: {e}");
    }
    let day: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-9", "fp", "86400000"]).unwrap();
    assert_eq!(day.0, "started");
    assert!(err(&mut con, &["IDEM.COMPLETE", "order-1", "12345", "resp"]).contains("does not own"));
    ok(&mut con, &["IDEM.COMPLETE", "order-1", &token, "201 Created"]);
    let done: (String, String) = q(&mut con, &["IDEM.BEGIN", "order-1", "fp-a", "10000"]).unwrap();
    assert_eq!(done, ("completed".to_string(), "201 Created".to_string()));
    assert!(err(&mut con, &["IDEM.COMPLETE", "order-1", &token, "again"]).contains("already completed"));
    // Abandon frees the key for a retry.
    let s: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-2", "", "10000"]).unwrap();
    ok(&mut con, &["IDEM.ABANDON", "order-2", &s.1]);
    let again: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-2", "", "10000"]).unwrap();
    assert_eq!(again.0, "started");
    assert!(err(&mut con, &["IDEM.ABANDON", "nope", "1"]).contains("no live idempotency record"));
    // An expired lease is taken over, and the stale owner is refused.
    let first: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-3", "fp", "30"]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let second: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-3", "fp", "10000"]).unwrap();
    assert_eq!((second.0.as_str(), second.2), ("started", 1));
    assert!(err(&mut con, &["IDEM.COMPLETE", "order-3", &first.1, "late"]).contains("does not own"));
    // Several background sweeps (one per 100 ms) after the leases ran out,
    // a late owner may still complete, and a retry still takes over.
    let late: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-4", "fp", "30"]).unwrap();
    let gone: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-5", "fp", "30"]).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    ok(&mut con, &["IDEM.COMPLETE", "order-4", &late.1, "done late"]);
    let replay: (String, String) = q(&mut con, &["IDEM.BEGIN", "order-4", "fp", "10000"]).unwrap();
    assert_eq!(replay, ("completed".to_string(), "done late".to_string()));
    let retry: (String, String, i64) = q(&mut con, &["IDEM.BEGIN", "order-5", "fp", "10000"]).unwrap();
    assert_eq!((retry.0.as_str(), retry.2), ("started", 1));
    assert!(err(&mut con, &["IDEM.ABANDON", "order-5", &gone.1]).contains("does not own"));
    assert!(err(&mut con, &["IDEM.BEGIN", "", "fp", "100"]).contains("empty"));
    assert!(err(&mut con, &["IDEM.BEGIN", "k", "fp", "0"]).contains("lease"));
}

/// Details found by sending the same commands to redis-server 7 and to
/// resilienced and comparing the replies.
#[test]
fn replies_match_redis_on_edge_cases() {
    let Some(engine) = common::start(2, |c| c.maxmemory = 1 << 20) else { return };
    let mut con = common::client(engine.local_addr());

    // Integers parse as Redis's string2ll: no leading zeros, no "-0".
    for v in ["010", "-0", "+1", " 1", "1e3", ""] {
        ok(&mut con, &["SET", "n", v]);
        assert!(err(&mut con, &["INCR", "n"]).contains("not an integer"), "{v:?}");
    }
    assert!(err(&mut con, &["SELECT", "00"]).contains("not an integer"));
    ok(&mut con, &["SET", "n", "1"]);
    assert!(err(&mut con, &["DECRBY", "n", "-9223372036854775808"]).contains("decrement would overflow"));
    assert!(err(&mut con, &["INCRBY", "n", "9223372036854775807"]).contains("would overflow"));
    assert_eq!(q::<String>(&mut con, &["GET", "n"]).unwrap(), "1", "a refused INCRBY changes nothing");

    // SET: an option may repeat, the last expiry wins; EXAT / PXAT; the
    // syntax is checked before the number.
    ok(&mut con, &["SET", "k", "v", "EX", "1000", "EX", "20"]);
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]).unwrap(), 20);
    assert!(err(&mut con, &["SET", "k", "v", "EX", "10", "PX", "100"]).contains("syntax error"));
    assert!(err(&mut con, &["SET", "k", "v", "KEEPTTL", "EX", "10"]).contains("syntax error"));
    assert!(err(&mut con, &["SET", "k", "v", "EX", "abc", "BLAH"]).contains("syntax error"));
    assert!(err(&mut con, &["SET", "k", "v", "EXAT", "0"]).contains("invalid expire time in 'set'"));
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    ok(&mut con, &["SET", "k", "v", "EXAT", &(unix + 100).to_string()]);
    let ttl: i64 = q(&mut con, &["TTL", "k"]).unwrap();
    assert!((98..=101).contains(&ttl), "EXAT 100 s ahead: TTL {ttl}");
    ok(&mut con, &["SET", "k", "v", "PXAT", &((unix + 50) * 1000).to_string()]);
    let pttl: i64 = q(&mut con, &["PTTL", "k"]).unwrap();
    assert!((48_000..=50_000).contains(&pttl), "PXAT 50 s ahead: PTTL {pttl}");
    // A Unix time already past: OK, and the key is gone.
    ok(&mut con, &["SET", "k", "v", "PXAT", "1"]);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "k"]).unwrap(), 0);

    // EXPIRE: options before the number, Redis's messages, overflow refused.
    ok(&mut con, &["SET", "k", "v"]);
    assert!(err(&mut con, &["EXPIRE", "k", "abc", "foo"]).contains("Unsupported option foo"));
    assert!(err(&mut con, &["EXPIRE", "k", "10", "GT", "LT"]).contains("GT and LT options"));
    assert!(err(&mut con, &["EXPIRE", "k", "10", "NX", "GT"]).contains("NX and XX, GT or LT"));
    for (c, n) in [
        ("EXPIRE", "9223372036854775807"),
        ("EXPIRE", "92233720368547758"),
        ("PEXPIRE", "9223372036854775807"),
    ] {
        let e = err(&mut con, &[c, "k", n]);
        assert!(e.contains(&format!("invalid expire time in '{}'", c.to_lowercase())), "{c} {n}: {e}");
    }
    assert_eq!(q::<i64>(&mut con, &["TTL", "k"]).unwrap(), -1, "a refused EXPIRE changes nothing");

    // STRLEN, APPEND (keeps the TTL), GETSET (clears it), TIME.
    ok(&mut con, &["SET", "s", "hello", "EX", "100"]);
    assert_eq!(q::<i64>(&mut con, &["APPEND", "s", " world"]).unwrap(), 11);
    assert_eq!(q::<String>(&mut con, &["GET", "s"]).unwrap(), "hello world");
    assert!(q::<i64>(&mut con, &["TTL", "s"]).unwrap() > 90);
    assert_eq!(q::<i64>(&mut con, &["STRLEN", "s"]).unwrap(), 11);
    assert_eq!(q::<i64>(&mut con, &["STRLEN", "nosuch"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["APPEND", "fresh", "abc"]).unwrap(), 3);
    assert_eq!(q::<String>(&mut con, &["GETSET", "s", "new"]).unwrap(), "hello world");
    assert_eq!(q::<i64>(&mut con, &["TTL", "s"]).unwrap(), -1);
    assert_eq!(q::<Option<String>>(&mut con, &["GETSET", "nosuch2", "x"]).unwrap(), None);
    let t: Vec<String> = q(&mut con, &["TIME"]).unwrap();
    let secs: u64 = t[0].parse().unwrap();
    assert!(secs.abs_diff(unix) <= 5 && t[1].parse::<u32>().unwrap() < 1_000_000);

    // A value heavier than the memory budget: OOM, and the old value stays.
    ok(&mut con, &["SET", "big", "small"]);
    let huge = "x".repeat(2 << 20);
    assert!(err(&mut con, &["SET", "big", &huge]).contains("OOM"));
    assert!(err(&mut con, &["SET", "big", &huge, "GET"]).contains("OOM"));
    assert!(err(&mut con, &["APPEND", "big", &huge]).contains("OOM"));
    assert_eq!(q::<String>(&mut con, &["GET", "big"]).unwrap(), "small");

    // AUTH as in a Redis with no password configured.
    assert!(err(&mut con, &["AUTH", "pw"]).contains("without any password configured"));
    ok(&mut con, &["AUTH", "default", "anything"]);
    assert!(err(&mut con, &["AUTH", "alice", "pw"]).contains("WRONGPASS"));
    assert!(err(&mut con, &["HELLO", "3", "AUTH", "alice", "pw"]).contains("WRONGPASS"));
    let hello: Vec<Value> = q(&mut con, &["HELLO", "2", "AUTH", "default", "pw"]).unwrap();
    assert_eq!(hello.len(), 14, "still RESP2 after the refused HELLO 3");

    // FLUSHALL takes ASYNC or SYNC only.
    assert!(err(&mut con, &["FLUSHALL", "BAD"]).contains("syntax error"));
    assert!(err(&mut con, &["FLUSHALL", "SYNC", "x"]).contains("syntax error"));
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "big"]).unwrap(), 1, "a refused FLUSHALL flushes nothing");
    ok(&mut con, &["FLUSHALL", "async"]);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]).unwrap(), 0);
}

#[test]
fn keys_and_scan_cover_every_shard() {
    let Some(engine) = common::start(3, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    for i in 0..300 {
        ok(&mut con, &["SET", &format!("user:{i}"), "x"]);
    }
    ok(&mut con, &["SET", "other", "y"]);
    ok(&mut con, &["SET", "gone", "z", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(5));

    let mut k: Vec<String> = q(&mut con, &["KEYS", "user:1?"]).unwrap();
    k.sort();
    assert_eq!(k, (10..20).map(|i| format!("user:{i}")).collect::<Vec<_>>());
    assert_eq!(q::<Vec<String>>(&mut con, &["KEYS", "*"]).unwrap().len(), 301, "expired keys are not listed");
    assert_eq!(q::<Vec<String>>(&mut con, &["KEYS", "user:[0-4]"]).unwrap().len(), 5);

    // A full SCAN, at several COUNTs, returns every key exactly once.
    for count in ["1", "7", "1000"] {
        let (mut cursor, mut seen, mut calls) = ("0".to_string(), Vec::new(), 0);
        loop {
            let (next, batch): (String, Vec<String>) =
                q(&mut con, &["SCAN", &cursor, "MATCH", "user:*", "COUNT", count]).unwrap();
            seen.extend(batch);
            calls += 1;
            if next == "0" {
                break;
            }
            cursor = next;
            assert!(calls < 10_000, "SCAN does not end");
        }
        seen.sort();
        let mut want: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();
        want.sort();
        assert_eq!(seen, want, "COUNT {count}");
    }
    let (_, none): (String, Vec<String>) =
        q(&mut con, &["SCAN", "0", "TYPE", "hash", "COUNT", "1000"]).unwrap();
    assert!(none.is_empty());
    assert!(err(&mut con, &["SCAN", "abc"]).contains("invalid cursor"));
    assert!(err(&mut con, &["SCAN", "0", "COUNT", "0"]).contains("syntax error"));
    assert!(err(&mut con, &["SCAN", "0", "MATCH"]).contains("syntax error"));
}

#[test]
fn getex_and_expiretime() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    ok(&mut con, &["SET", "g", "v"]);
    assert_eq!(q::<String>(&mut con, &["GETEX", "g"]).unwrap(), "v");
    assert_eq!(q::<i64>(&mut con, &["EXPIRETIME", "g"]).unwrap(), -1);
    assert_eq!(q::<String>(&mut con, &["GETEX", "g", "EX", "100"]).unwrap(), "v");
    assert_eq!(q::<i64>(&mut con, &["TTL", "g"]).unwrap(), 100);
    let at: i64 = q(&mut con, &["EXPIRETIME", "g"]).unwrap();
    assert!((at - (unix as i64 + 100)).abs() <= 2, "EXPIRETIME {at}");
    assert_eq!(q::<String>(&mut con, &["GETEX", "g", "PERSIST"]).unwrap(), "v");
    assert_eq!(q::<i64>(&mut con, &["TTL", "g"]).unwrap(), -1);
    // An absolute deadline comes back exactly.
    let exat = (unix + 1000).to_string();
    assert_eq!(q::<String>(&mut con, &["GETEX", "g", "EXAT", &exat]).unwrap(), "v");
    assert_eq!(q::<i64>(&mut con, &["EXPIRETIME", "g"]).unwrap(), unix as i64 + 1000);
    assert_eq!(q::<i64>(&mut con, &["PEXPIRETIME", "g"]).unwrap(), (unix as i64 + 1000) * 1000);
    // A deadline already past: the value, then the key is gone.
    assert_eq!(q::<String>(&mut con, &["GETEX", "g", "PXAT", "1"]).unwrap(), "v");
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "g"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["EXPIRETIME", "g"]).unwrap(), -2);
    // Syntax first, then a missing key is nil, then the number is checked.
    assert!(err(&mut con, &["GETEX", "g", "EX"]).contains("syntax error"));
    assert!(err(&mut con, &["GETEX", "g", "EX", "1", "PX", "1"]).contains("syntax error"));
    assert!(err(&mut con, &["GETEX", "g", "PERSIST", "x"]).contains("syntax error"));
    assert_eq!(q::<Option<String>>(&mut con, &["GETEX", "g", "EX", "0"]).unwrap(), None);
    ok(&mut con, &["SET", "g", "v"]);
    assert!(err(&mut con, &["GETEX", "g", "EX", "0"]).contains("invalid expire time in 'getex'"));
    assert!(err(&mut con, &["GETEX", "g", "EX", "abc"]).contains("not an integer"));
    assert_eq!(q::<i64>(&mut con, &["TTL", "g"]).unwrap(), -1, "a refused GETEX changes nothing");
    // An option may repeat, as in Redis: the last expiry wins; PERSIST and
    // an expiry still exclude each other.
    assert_eq!(q::<String>(&mut con, &["GETEX", "g", "EX", "10", "EX", "200"]).unwrap(), "v");
    assert_eq!(q::<i64>(&mut con, &["TTL", "g"]).unwrap(), 200);
    assert_eq!(q::<String>(&mut con, &["GETEX", "g", "PERSIST", "PERSIST"]).unwrap(), "v");
    assert_eq!(q::<i64>(&mut con, &["TTL", "g"]).unwrap(), -1);
    assert!(err(&mut con, &["GETEX", "g", "EX", "10", "PERSIST"]).contains("syntax error"));
    assert!(err(&mut con, &["GETEX", "g", "EX", "10", "EX"]).contains("syntax error"));
}

#[test]
fn expireat_and_pexpireat() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(q::<i64>(&mut con, &["EXPIREAT", "x", &(unix + 100).to_string()]).unwrap(), 0, "no key");
    ok(&mut con, &["SET", "x", "v"]);
    assert_eq!(q::<i64>(&mut con, &["EXPIREAT", "x", &(unix + 100).to_string()]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["EXPIRETIME", "x"]).unwrap(), unix + 100);
    let pat = ((unix + 200) * 1000 + 123).to_string();
    assert_eq!(q::<i64>(&mut con, &["PEXPIREAT", "x", &pat]).unwrap(), 1);
    assert_eq!(q::<String>(&mut con, &["PEXPIRETIME", "x"]).unwrap(), pat);
    // The options compare with the current deadline.
    assert_eq!(q::<i64>(&mut con, &["EXPIREAT", "x", &(unix + 50).to_string(), "GT"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["EXPIREAT", "x", &(unix + 50).to_string(), "LT"]).unwrap(), 1);
    // The same time again is neither greater nor less (whole milliseconds,
    // as Redis keeps them); a millisecond later is greater.
    let same = ((unix + 50) * 1000).to_string();
    assert_eq!(q::<i64>(&mut con, &["PEXPIREAT", "x", &same, "GT"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["PEXPIREAT", "x", &same, "LT"]).unwrap(), 0);
    let later = ((unix + 50) * 1000 + 1).to_string();
    assert_eq!(q::<i64>(&mut con, &["PEXPIREAT", "x", &later, "GT"]).unwrap(), 1);
    assert_eq!(q::<String>(&mut con, &["PEXPIRETIME", "x"]).unwrap(), later);
    assert!(
        err(&mut con, &["EXPIREAT", "x", "99999999999999999"]).contains("invalid expire time in 'expireat'")
    );
    // A time already past removes the key.
    assert_eq!(q::<i64>(&mut con, &["PEXPIREAT", "x", "1"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "x"]).unwrap(), 0);
}

/// `CLIENT LIST` line of the client named `name`, as `field -> value`.
fn listed(list: &str, name: &str) -> Option<std::collections::HashMap<String, String>> {
    list.lines()
        .map(|l| {
            l.split(' ')
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        })
        .find(|f| f.get("name").map(String::as_str) == Some(name))
}

#[test]
fn client_list_and_kill_span_shards() {
    let Some(engine) = common::start(3, |_| {}) else { return };
    let addr = engine.local_addr();
    let mut cons: Vec<redis::Connection> = (0..6).map(|_| common::client(addr)).collect();
    for (i, c) in cons.iter_mut().enumerate() {
        ok(c, &["CLIENT", "SETNAME", &format!("c{i}")]);
    }
    let list: String = q(&mut cons[0], &["CLIENT", "LIST"]).unwrap();
    assert_eq!(list.lines().count(), 6, "{list}");
    let c3 = listed(&list, "c3").expect("c3 listed");
    assert_eq!(c3["cmd"], "client");
    assert_eq!(c3["laddr"], addr.to_string());
    let only: String = q(&mut cons[0], &["CLIENT", "LIST", "ID", &c3["id"], "999999"]).unwrap();
    assert_eq!(only.lines().count(), 1);
    assert!(listed(&only, "c3").is_some());
    assert_eq!(q::<String>(&mut cons[0], &["CLIENT", "LIST", "TYPE", "pubsub"]).unwrap(), "");
    assert!(err(&mut cons[0], &["CLIENT", "LIST", "TYPE", "x"]).contains("Unknown client type"));
    assert!(err(&mut cons[0], &["CLIENT", "KILL", "ID", "0"]).contains("greater than 0"));

    // A transaction in progress shows in the list.
    ok(&mut cons[5], &["MULTI"]);
    assert_eq!(q::<String>(&mut cons[5], &["SET", "a", "1"]).unwrap(), "QUEUED");
    let list: String = q(&mut cons[0], &["CLIENT", "LIST"]).unwrap();
    let c5 = listed(&list, "c5").unwrap();
    assert_eq!((c5["flags"].as_str(), c5["multi"].as_str()), ("x", "1"), "{list}");

    // By id (new form, counted), by address (old form, +OK).
    let n: i64 = q(&mut cons[0], &["CLIENT", "KILL", "ID", &c3["id"]]).unwrap();
    assert_eq!(n, 1);
    assert!(q::<String>(&mut cons[3], &["PING"]).is_err(), "c3 was closed");
    let c4 = listed(&list, "c4").unwrap();
    ok(&mut cons[0], &["CLIENT", "KILL", &c4["addr"]]);
    assert!(q::<String>(&mut cons[4], &["PING"]).is_err(), "c4 was closed");
    assert!(err(&mut cons[0], &["CLIENT", "KILL", "127.0.0.1:1"]).contains("No such client"));
    // SKIPME yes (the default) spares the caller; SKIPME no does not, and
    // the caller still gets its reply.
    let me = listed(&list, "c0").unwrap();
    assert_eq!(q::<i64>(&mut cons[0], &["CLIENT", "KILL", "ID", &me["id"]]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut cons[0], &["CLIENT", "KILL", "ID", &me["id"], "SKIPME", "no"]).unwrap(), 1);
    assert!(q::<String>(&mut cons[0], &["PING"]).is_err(), "c0 was closed");
    let list: String = q(&mut cons[1], &["CLIENT", "LIST"]).unwrap();
    let names: Vec<String> =
        list.lines().filter_map(|l| l.split(" name=").nth(1)?.split(' ').next().map(String::from)).collect();
    assert_eq!(names.len(), 3, "{list}");
    for n in ["c1", "c2", "c5"] {
        assert!(names.iter().any(|x| x == n), "{list}");
    }
    // Killing by filter: everyone but the caller.
    let n: i64 = q(&mut cons[1], &["CLIENT", "KILL", "USER", "default"]).unwrap();
    assert_eq!(n, 2);
    assert!(q::<String>(&mut cons[2], &["PING"]).is_err());
    assert_eq!(q::<String>(&mut cons[1], &["PING"]).unwrap(), "PONG");
}

#[test]
fn flushdb_and_touch() {
    let Some(engine) = common::start(3, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    for i in 0..20 {
        ok(&mut con, &["SET", &format!("f{i}"), "v"]);
    }
    assert_eq!(q::<i64>(&mut con, &["TOUCH", "f1", "f2", "nope", "f1"]).unwrap(), 3);
    assert_eq!(q::<i64>(&mut con, &["TOUCH", "nope"]).unwrap(), 0);
    assert!(err(&mut con, &["FLUSHDB", "LATER"]).contains("syntax error"));
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]).unwrap(), 20, "a refused FLUSHDB keeps everything");
    ok(&mut con, &["FLUSHDB", "ASYNC"]);
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]).unwrap(), 0);
}

#[test]
fn getrange_and_setrange() {
    // 32 MiB per shard, so that a far offset is heavier than the budget.
    let Some(engine) = common::start(2, |c| c.maxmemory = 64 << 20) else { return };
    let mut con = common::client(engine.local_addr());
    ok(&mut con, &["SET", "s", "This is a string"]);
    let range = |con: &mut redis::Connection, a: &str, b: &str| -> String {
        q(con, &["GETRANGE", "s", a, b]).unwrap()
    };
    assert_eq!(range(&mut con, "0", "3"), "This");
    assert_eq!(range(&mut con, "-3", "-1"), "ing");
    assert_eq!(range(&mut con, "0", "-1"), "This is a string");
    assert_eq!(range(&mut con, "10", "100"), "string");
    assert_eq!(range(&mut con, "5", "2"), "");
    assert_eq!(range(&mut con, "-100", "2"), "Thi");
    assert_eq!(q::<String>(&mut con, &["GETRANGE", "missing", "0", "5"]).unwrap(), "");
    assert!(err(&mut con, &["GETRANGE", "s", "x", "1"]).contains("not an integer"));
    // SETRANGE pads with zero bytes, keeps the TTL, and refuses what Redis does.
    ok(&mut con, &["SET", "k", "Hello World", "EX", "100"]);
    assert_eq!(q::<i64>(&mut con, &["SETRANGE", "k", "6", "Redis"]).unwrap(), 11);
    assert_eq!(q::<String>(&mut con, &["GET", "k"]).unwrap(), "Hello Redis");
    assert!(q::<i64>(&mut con, &["TTL", "k"]).unwrap() > 0);
    assert_eq!(q::<i64>(&mut con, &["SETRANGE", "z", "3", "ab"]).unwrap(), 5);
    assert_eq!(q::<Vec<u8>>(&mut con, &["GET", "z"]).unwrap(), b"\0\0\0ab");
    assert_eq!(q::<i64>(&mut con, &["SETRANGE", "none", "3", ""]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "none"]).unwrap(), 0, "an empty patch makes no key");
    assert!(err(&mut con, &["SETRANGE", "k", "-1", "a"]).contains("offset is out of range"));
    assert!(err(&mut con, &["SETRANGE", "k", "536870912", "a"]).contains("exceeds maximum allowed size"));
    assert!(err(&mut con, &["SETRANGE", "k", "40000000", "a"]).contains("OOM"), "heavier than the budget");
    assert_eq!(
        q::<String>(&mut con, &["GET", "k"]).unwrap(),
        "Hello Redis",
        "a refused SETRANGE changes nothing"
    );
}

#[test]
fn incrbyfloat_prints_as_redis() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    let by =
        |con: &mut redis::Connection, k: &str, n: &str| -> String { q(con, &["INCRBYFLOAT", k, n]).unwrap() };
    // Redis's examples, and the sums a binary double would print longer.
    ok(&mut con, &["SET", "f", "10.50"]);
    assert_eq!(by(&mut con, "f", "0.1"), "10.6");
    assert_eq!(by(&mut con, "f", "-5"), "5.6");
    ok(&mut con, &["SET", "f", "5.0e3"]);
    assert_eq!(by(&mut con, "f", "2.0e2"), "5200");
    ok(&mut con, &["SET", "f", "0.1"]);
    assert_eq!(by(&mut con, "f", "0.2"), "0.3");
    assert_eq!(by(&mut con, "new", "1.5"), "1.5");
    assert_eq!(by(&mut con, "new", "-1.5"), "0");
    ok(&mut con, &["SET", "big", "9223372036854775807"]);
    assert_eq!(by(&mut con, "big", "1"), "9223372036854775808");
    // The TTL is kept.
    ok(&mut con, &["SET", "t", "1", "EX", "100"]);
    assert_eq!(by(&mut con, "t", "1"), "2");
    assert!(q::<i64>(&mut con, &["TTL", "t"]).unwrap() > 0);
    // Errors leave the value as it was.
    ok(&mut con, &["SET", "w", "abc"]);
    assert!(err(&mut con, &["INCRBYFLOAT", "w", "1"]).contains("value is not a valid float"));
    for bad in ["nan", " 1", "1 ", "", "1e5000", "x"] {
        assert!(err(&mut con, &["INCRBYFLOAT", "f", bad]).contains("value is not a valid float"), "{bad:?}");
    }
    assert!(err(&mut con, &["INCRBYFLOAT", "f", "inf"]).contains("would produce NaN or Infinity"));
    assert_eq!(q::<String>(&mut con, &["GET", "f"]).unwrap(), "0.3");
    assert_eq!(q::<String>(&mut con, &["GET", "w"]).unwrap(), "abc");
}

#[test]
fn select_keeps_databases_apart() {
    let Some(engine) = common::start(3, |_| {}) else { return };
    let addr = engine.local_addr();
    let mut a = common::client(addr);
    let mut b = common::client(addr);
    let dbs: Vec<String> = q(&mut a, &["CONFIG", "GET", "databases"]).unwrap();
    assert_eq!(dbs, ["databases", "16"]);
    ok(&mut b, &["SELECT", "5"]);
    for i in 0..30 {
        ok(&mut a, &["SET", &format!("k{i}"), "zero"]);
    }
    for i in 0..10 {
        ok(&mut b, &["SET", &format!("k{i}"), "five", "EX", "100"]);
    }
    // A database-0 key that looks like how database 1 stores "k0".
    ok(&mut a, &["SET", "\u{ff}\u{1}k0", "tricky"]);
    assert_eq!(q::<String>(&mut a, &["GET", "k3"]).unwrap(), "zero");
    assert_eq!(q::<String>(&mut b, &["GET", "k3"]).unwrap(), "five");
    assert_eq!(q::<Option<String>>(&mut b, &["GET", "k20"]).unwrap(), None);
    assert_eq!(q::<i64>(&mut a, &["DBSIZE"]).unwrap(), 31);
    assert_eq!(q::<i64>(&mut b, &["DBSIZE"]).unwrap(), 10);
    let mut keys: Vec<String> = q(&mut b, &["KEYS", "*"]).unwrap();
    keys.sort();
    assert_eq!(keys.len(), 10);
    assert!(keys.iter().all(|k| k.starts_with('k') && k.len() == 2), "{keys:?}");
    let (mut cursor, mut scanned) = (0u64, 0);
    loop {
        let (next, keys): (u64, Vec<String>) = cmd("SCAN").arg(cursor).query(&mut b).unwrap();
        scanned += keys.len();
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(scanned, 10, "SCAN walks database 5 only");
    ok(&mut a, &["SELECT", "1"]);
    assert_eq!(q::<Option<String>>(&mut a, &["GET", "k0"]).unwrap(), None, "database 1 is empty");
    ok(&mut a, &["SELECT", "0"]);
    assert_eq!(q::<String>(&mut a, &["GET", "\u{ff}\u{1}k0"]).unwrap(), "tricky");
    // INFO keyspace and CLIENT LIST show the databases.
    let info: String = q(&mut a, &["INFO", "keyspace"]).unwrap();
    assert!(info.contains("db0:keys=31,expires=0"), "{info}");
    assert!(info.contains("db5:keys=10,expires=10"), "{info}");
    let list: String = q(&mut a, &["CLIENT", "LIST"]).unwrap();
    assert!(list.contains(" db=5 ") && list.contains(" db=0 "), "{list}");
    // FLUSHDB empties the selected database only; FLUSHALL every one.
    ok(&mut b, &["FLUSHDB"]);
    assert_eq!(q::<i64>(&mut b, &["DBSIZE"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut a, &["DBSIZE"]).unwrap(), 31);
    ok(&mut b, &["SET", "x", "1"]);
    ok(&mut a, &["FLUSHALL"]);
    assert_eq!(q::<i64>(&mut b, &["DBSIZE"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut a, &["DBSIZE"]).unwrap(), 0);
    assert!(err(&mut a, &["SELECT", "16"]).contains("out of range"));
    assert!(err(&mut a, &["SELECT", "-1"]).contains("out of range"));

    // SELECT inside MULTI takes effect when EXEC runs it, and a watch
    // remembers its database. (One shard: with several, SELECT is refused
    // in a transaction while keys of another shard are watched.)
    let Some(engine) = common::start(1, |_| {}) else { return };
    let mut a = common::client(engine.local_addr());
    let mut b = common::client(engine.local_addr());
    ok(&mut b, &["SELECT", "5"]);
    ok(&mut a, &["SET", "w", "0"]);
    let _: () = cmd("WATCH").arg("w").query(&mut a).unwrap();
    ok(&mut b, &["SET", "w", "5"]);
    let r: Option<(String, String)> =
        redis::pipe().atomic().cmd("SELECT").arg(5).cmd("GET").arg("w").query(&mut a).unwrap();
    assert_eq!(r, Some(("OK".into(), "5".into())), "a write in another database does not touch the watch");
    assert_eq!(q::<String>(&mut a, &["GET", "w"]).unwrap(), "5", "still in database 5 after EXEC");
}

#[test]
fn rename_moves_value_and_ttl() {
    let Some(engine) = common::start(3, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    ok(&mut con, &["SET", "{u}a", "1", "EX", "100"]);
    ok(&mut con, &["SET", "{u}b", "2"]);
    ok(&mut con, &["RENAME", "{u}a", "{u}b"]);
    assert_eq!(q::<Option<String>>(&mut con, &["GET", "{u}a"]).unwrap(), None);
    assert_eq!(q::<String>(&mut con, &["GET", "{u}b"]).unwrap(), "1");
    assert!(q::<i64>(&mut con, &["TTL", "{u}b"]).unwrap() > 90, "the TTL moves with the value");
    assert!(err(&mut con, &["RENAME", "{u}a", "{u}b"]).contains("no such key"));
    assert!(err(&mut con, &["RENAME", "{u}a", "{u}a"]).contains("no such key"));
    ok(&mut con, &["RENAME", "{u}b", "{u}b"]);
    ok(&mut con, &["SET", "{u}c", "3"]);
    assert_eq!(q::<i64>(&mut con, &["RENAMENX", "{u}b", "{u}c"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["RENAMENX", "{u}b", "{u}d"]).unwrap(), 1);
    assert_eq!(q::<String>(&mut con, &["GET", "{u}d"]).unwrap(), "1");
    // Keys of two shards are refused, as Redis Cluster refuses two slots.
    let (x, y) = (0..100)
        .map(|i| (format!("x{i}"), format!("y{i}")))
        .find(|(x, y)| {
            ok(&mut con, &["SET", x, "v"]);
            q::<redis::Value>(&mut con, &["RENAME", x, y]).is_err()
        })
        .expect("some pair of keys spans shards");
    let e = err(&mut con, &["RENAME", &x, &y]);
    assert!(e.contains("CrossSlot"), "{e}");
    assert_eq!(q::<String>(&mut con, &["GET", &x]).unwrap(), "v", "a refused RENAME moves nothing");

    // One shard: any two keys, and a rename touches the watches of both.
    let Some(engine) = common::start(1, |_| {}) else { return };
    let mut a = common::client(engine.local_addr());
    let mut b = common::client(engine.local_addr());
    ok(&mut a, &["SET", "src", "s"]);
    let _: () = cmd("WATCH").arg("dst").query(&mut a).unwrap();
    ok(&mut b, &["RENAME", "src", "dst"]);
    let r: Option<(String,)> = redis::pipe().atomic().set("dst", "mine").query(&mut a).unwrap();
    assert_eq!(r, None, "the rename wrote the watched destination");
    assert_eq!(q::<String>(&mut a, &["GET", "dst"]).unwrap(), "s");
}

#[test]
fn copy_move_msetnx_substr() {
    let Some(engine) = common::start(3, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    // COPY keeps the source; DB picks another database; REPLACE overwrites.
    ok(&mut con, &["SET", "{c}a", "1", "EX", "100"]);
    assert_eq!(q::<i64>(&mut con, &["COPY", "{c}a", "{c}b"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["COPY", "{c}a", "{c}b"]).unwrap(), 0, "exists");
    ok(&mut con, &["SET", "{c}a", "2"]);
    assert_eq!(q::<i64>(&mut con, &["COPY", "{c}a", "{c}b", "REPLACE"]).unwrap(), 1);
    assert_eq!(q::<String>(&mut con, &["GET", "{c}b"]).unwrap(), "2");
    assert_eq!(q::<i64>(&mut con, &["COPY", "{c}a", "{c}a", "DB", "3"]).unwrap(), 1);
    assert!(err(&mut con, &["COPY", "{c}a", "{c}a"]).contains("same"));
    assert!(err(&mut con, &["COPY", "{c}a", "{c}x", "DB", "16"]).contains("out of range"));
    assert!(err(&mut con, &["COPY", "{c}a", "{c}x", "BAD"]).contains("syntax error"));
    assert_eq!(q::<i64>(&mut con, &["COPY", "{c}none", "{c}x"]).unwrap(), 0);
    // MOVE takes the key (and its TTL) to another database.
    ok(&mut con, &["SET", "m", "v", "EX", "100"]);
    assert_eq!(q::<i64>(&mut con, &["MOVE", "m", "3"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "m"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["MOVE", "m", "3"]).unwrap(), 0, "gone here");
    assert!(err(&mut con, &["MOVE", "m", "0"]).contains("same"));
    ok(&mut con, &["SELECT", "3"]);
    assert_eq!(q::<String>(&mut con, &["GET", "m"]).unwrap(), "v");
    assert!(q::<i64>(&mut con, &["TTL", "m"]).unwrap() > 90);
    assert_eq!(q::<String>(&mut con, &["GET", "{c}a"]).unwrap(), "2", "COPY ... DB 3 landed here");
    ok(&mut con, &["SET", "m2", "x"]);
    ok(&mut con, &["SELECT", "0"]);
    ok(&mut con, &["SET", "m2", "y"]);
    assert_eq!(q::<i64>(&mut con, &["MOVE", "m2", "3"]).unwrap(), 0, "present there");
    // MSETNX: all or nothing, on one shard.
    assert_eq!(q::<i64>(&mut con, &["MSETNX", "{n}1", "a", "{n}2", "b"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut con, &["MSETNX", "{n}2", "c", "{n}3", "d"]).unwrap(), 0);
    assert_eq!(q::<i64>(&mut con, &["EXISTS", "{n}3"]).unwrap(), 0, "nothing set");
    assert!(err(&mut con, &["MSETNX", "{n}4", "a", "{n}5"]).contains("wrong number of arguments"));
    // SUBSTR is GETRANGE's old name.
    assert_eq!(q::<String>(&mut con, &["SUBSTR", "{n}1", "0", "-1"]).unwrap(), "a");
}

#[test]
fn an_array_reply_larger_than_max_reply_is_refused_not_built() {
    for shards in [1, 2] {
        let Some(engine) = common::start(shards, |c| c.max_reply = 1 << 20) else { return };
        let mut con = common::client(engine.local_addr());
        let big = "x".repeat(300 * 1024);
        // Keys on every shard, so that with two shards the reply is merged
        // from parts (with one, it is built straight into the output).
        let keys: Vec<String> = (0..8).map(|i| format!("big{i}")).collect();
        for k in &keys {
            ok(&mut con, &["SET", k, &big]);
        }
        let mut three = vec!["MGET"];
        three.extend(keys[..3].iter().map(|k| k.as_str()));
        let got: Vec<String> = q(&mut con, &three).unwrap();
        assert_eq!(got.len(), 3, "900 KiB of values fit in 1 MiB");
        let mut many = vec!["MGET"];
        many.extend(keys.iter().map(|k| k.as_str()));
        many.extend(keys.iter().map(|k| k.as_str()));
        let e = err(&mut con, &many);
        assert!(e.contains("reply too large"), "{shards} shard(s): {e}");
        // The connection goes on.
        assert_eq!(q::<String>(&mut con, &["PING"]).unwrap(), "PONG");
    }
}
