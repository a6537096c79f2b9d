//! `MULTI` / `EXEC` / `DISCARD` / `WATCH` / `UNWATCH`, through a real Redis
//! client: replies in order across shards, queue-time errors, and the
//! optimistic-locking loop that `WATCH` exists for.

mod common;

use std::time::Duration;

use redis::{cmd, Value};

fn raw_reply(addr: std::net::SocketAddr, input: &[u8], want: &[u8]) -> Vec<u8> {
    let (got, _) = common::raw(addr, input, want.len());
    got
}

#[test]
fn exec_answers_in_order_across_shards() {
    let Some(engine) = common::start(4, |_| {}) else { return };
    let mut con = common::client(engine.local_addr());
    let mut p = redis::pipe();
    p.atomic();
    for i in 0..40 {
        p.cmd("SET").arg(format!("k{i}")).arg(i);
        p.cmd("INCR").arg(format!("k{i}"));
    }
    p.cmd("MGET").arg("k0").arg("k7").arg("k39").arg("missing");
    p.cmd("DBSIZE");
    p.cmd("PING");
    let got: Vec<Value> = p.query(&mut con).unwrap();
    assert_eq!(got.len(), 83);
    for i in 0..40 {
        assert_eq!(got[2 * i], Value::Okay);
        assert_eq!(got[2 * i + 1], Value::Int(i as i64 + 1));
    }
    let mget: Vec<Option<i64>> = redis::from_redis_value(got[80].clone()).unwrap();
    assert_eq!(mget, vec![Some(1), Some(8), Some(40), None]);
    assert_eq!(got[81], Value::Int(40));
    assert_eq!(got[82], Value::SimpleString("PONG".into()));

    // An error while running is one element of the array; the rest run.
    let addr = engine.local_addr();
    let want = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n:5\r\n";
    let got = raw_reply(addr, b"MULTI\r\nSET s abc\r\nINCR s\r\nINCRBY n 5\r\nEXEC\r\n", want);
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    // An empty transaction, and RESP3's null for nothing here.
    let got = raw_reply(addr, b"MULTI\r\nEXEC\r\n", b"+OK\r\n*0\r\n");
    assert_eq!(got, b"+OK\r\n*0\r\n");
}

#[test]
fn queue_errors_discard_the_transaction() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let addr = engine.local_addr();
    let mut con = common::client(addr);
    let e = cmd("EXEC").query::<Value>(&mut con).unwrap_err().to_string();
    assert!(e.contains("EXEC without MULTI"), "{e}");
    let e = cmd("DISCARD").query::<Value>(&mut con).unwrap_err().to_string();
    assert!(e.contains("DISCARD without MULTI"), "{e}");

    // Unknown command and wrong arity while queueing: EXECABORT, nothing runs.
    let want = "+OK\r\n+QUEUED\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n\
                -ERR wrong number of arguments for 'get' command\r\n+QUEUED\r\n\
                -EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n";
    let got =
        raw_reply(addr, b"MULTI\r\nSET a 1\r\nNOPE\r\nGET\r\nSET b 2\r\nEXEC\r\nGET a\r\n", want.as_bytes());
    assert_eq!(String::from_utf8_lossy(&got), want);

    // Nested MULTI and WATCH inside MULTI are refused without discarding;
    // connection commands run at EXEC, as on Redis.
    let want = "+OK\r\n-ERR MULTI calls can not be nested\r\n-ERR WATCH inside MULTI is not allowed\r\n\
                +QUEUED\r\n*1\r\n+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$3\r\nnew\r\n";
    let got = raw_reply(
        addr,
        b"MULTI\r\nMULTI\r\nWATCH a\r\nSET c 3\r\nEXEC\r\nMULTI\r\nCLIENT SETNAME new\r\nCLIENT GETNAME\r\nEXEC\r\n",
        want.as_bytes(),
    );
    assert_eq!(String::from_utf8_lossy(&got), want);

    // DISCARD drops what was queued.
    let got =
        raw_reply(addr, b"MULTI\r\nSET d 4\r\nDISCARD\r\nEXISTS d c\r\n", b"+OK\r\n+QUEUED\r\n+OK\r\n:1\r\n");
    assert_eq!(got, b"+OK\r\n+QUEUED\r\n+OK\r\n:1\r\n");

    // QUIT inside MULTI closes at once.
    let (got, closed) = common::raw(addr, b"MULTI\r\nSET e 5\r\nQUIT\r\n", 64);
    assert_eq!(got, b"+OK\r\n+QUEUED\r\n+OK\r\n");
    assert!(closed);
    assert_eq!(cmd("EXISTS").arg("e").query::<i64>(&mut con).unwrap(), 0);
}

/// Runs `WATCH key / GET / MULTI / SET / EXEC` through two connections,
/// `meddle` running on the second between `WATCH` and `EXEC`; returns
/// whether the transaction ran.
fn watched_set(shards: usize, key: &str, meddle: &[&[&str]]) -> bool {
    let Some(engine) = common::start(shards, |_| {}) else { return true };
    let mut a = common::client(engine.local_addr());
    let mut b = common::client(engine.local_addr());
    let _: () = cmd("SET").arg(key).arg("before").query(&mut a).unwrap();
    let _: () = cmd("WATCH").arg(key).query(&mut a).unwrap();
    for args in meddle {
        let mut c = cmd(args[0]);
        for x in &args[1..] {
            c.arg(*x);
        }
        // Some meddling fails (INCR of a word): its error is the point.
        let _: redis::RedisResult<Value> = c.query(&mut b);
    }
    let r: Option<(String,)> = redis::pipe().atomic().set(key, "mine").query(&mut a).unwrap();
    let v: Option<String> = cmd("GET").arg(key).query(&mut a).unwrap();
    match r {
        Some(_) => {
            assert_eq!(v.as_deref(), Some("mine"));
            true
        }
        None => {
            assert_ne!(v.as_deref(), Some("mine"));
            false
        }
    }
}

#[test]
fn exec_with_arguments_aborts_the_transaction_as_redis() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut a = common::client(engine.local_addr());
    let abort = "Transaction discarded because of: wrong number of arguments for 'exec' command";
    // Inside MULTI: the transaction ends, so the next EXEC has none.
    let () = cmd("MULTI").query(&mut a).unwrap();
    let () = cmd("SET").arg("k").arg("1").query(&mut a).unwrap();
    let e = cmd("EXEC").arg("x").query::<()>(&mut a).unwrap_err();
    assert!(e.to_string().contains(abort), "{e}");
    let e = cmd("EXEC").query::<()>(&mut a).unwrap_err();
    assert!(e.to_string().contains("EXEC without MULTI"), "{e}");
    assert_eq!(cmd("EXISTS").arg("k").query::<i64>(&mut a).unwrap(), 0, "nothing ran");
    // Outside MULTI too, and the watches are gone: a later transaction runs
    // although the once-watched key changed.
    let () = cmd("WATCH").arg("w").query(&mut a).unwrap();
    let e = cmd("EXEC").arg("x").query::<()>(&mut a).unwrap_err();
    assert!(e.to_string().contains(abort), "{e}");
    let mut b = common::client(engine.local_addr());
    let () = cmd("SET").arg("w").arg("changed").query(&mut b).unwrap();
    let () = cmd("MULTI").query(&mut a).unwrap();
    let () = cmd("INCR").arg("n").query(&mut a).unwrap();
    let got: Vec<i64> = cmd("EXEC").query(&mut a).unwrap();
    assert_eq!(got, vec![1]);
}

#[test]
fn watch_aborts_exec_after_a_change() {
    for shards in [1, 3] {
        assert!(watched_set(shards, "w", &[]), "nothing changed");
        assert!(watched_set(shards, "w", &[&["GET", "w"], &["SET", "other", "x"]]), "reads do not count");
        assert!(!watched_set(shards, "w", &[&["SET", "w", "theirs"]]), "a write aborts");
        assert!(!watched_set(shards, "w", &[&["SET", "w", "before"]]), "even of the same value");
        assert!(!watched_set(shards, "w", &[&["DEL", "w"]]));
        assert!(!watched_set(shards, "w", &[&["EXPIRE", "w", "100"]]));
        assert!(!watched_set(shards, "w", &[&["FLUSHALL"]]));
        assert!(!watched_set(shards, "w", &[&["MSET", "a", "1", "w", "2"]]));
        // Writes that change nothing do not count, as on Redis (a refused
        // option, a failed INCR, no TTL to drop, a missing key to delete).
        let noops: &[&[&str]] = &[
            &["SET", "w", "x", "NX"],
            &["EXPIRE", "w", "100", "XX"],
            &["PERSIST", "w"],
            &["INCR", "w"],
            &["GETEX", "w"],
            &["SETRANGE", "w", "0", ""],
            &["DEL", "w-not"],
        ];
        assert!(watched_set(shards, "w", noops), "no-op writes");
    }
    let Some(engine) = common::start(2, |_| {}) else { return };
    let mut a = common::client(engine.local_addr());
    let mut b = common::client(engine.local_addr());
    // An expiry between WATCH and EXEC is a change.
    let _: () = cmd("SET").arg("t").arg("1").arg("PX").arg(30).query(&mut a).unwrap();
    let _: () = cmd("WATCH").arg("t").query(&mut a).unwrap();
    std::thread::sleep(Duration::from_millis(80));
    let r: Option<(String,)> = redis::pipe().atomic().set("t", "2").query(&mut a).unwrap();
    assert_eq!(r, None);
    // UNWATCH forgets; a missing key that stays missing is unchanged.
    let _: () = cmd("WATCH").arg("u").query(&mut a).unwrap();
    let _: () = cmd("UNWATCH").query(&mut a).unwrap();
    let _: () = cmd("SET").arg("u").arg("x").query(&mut b).unwrap();
    let r: Option<(String,)> = redis::pipe().atomic().set("u", "y").query(&mut a).unwrap();
    assert!(r.is_some());
    let _: () = cmd("WATCH").arg("absent").query(&mut a).unwrap();
    let r: Option<(String,)> = redis::pipe().atomic().set("absent", "y").query(&mut a).unwrap();
    assert!(r.is_some());
    // FLUSHALL and DEL leave a watched key that was missing unchanged.
    let _: () = cmd("WATCH").arg("gone").query(&mut a).unwrap();
    let _: () = cmd("FLUSHALL").query(&mut b).unwrap();
    let _: () = cmd("DEL").arg("gone").query(&mut b).unwrap();
    let r: Option<(String,)> = redis::pipe().atomic().set("gone", "y").query(&mut a).unwrap();
    assert!(r.is_some());
    // DISCARD forgets the watches too.
    let _: () = cmd("WATCH").arg("u").query(&mut a).unwrap();
    let _: () = cmd("MULTI").query(&mut a).unwrap();
    let _: () = cmd("DISCARD").query(&mut a).unwrap();
    let _: () = cmd("SET").arg("u").arg("z").query(&mut b).unwrap();
    let r: Option<(String,)> = redis::pipe().atomic().set("u", "w").query(&mut a).unwrap();
    assert!(r.is_some());
}

#[test]
fn watch_across_shards_needs_a_hash_tag() {
    let Some(engine) = common::start(4, |_| {}) else { return };
    let mut a = common::client(engine.local_addr());
    // Keys on different shards: WATCH refuses them, as Redis Cluster does
    // across slots.
    let keys: Vec<String> = (0..64).map(|i| format!("acct:{i}")).collect();
    let e = cmd("WATCH").arg(&keys).query::<Value>(&mut a).unwrap_err().to_string();
    assert!(e.to_uppercase().contains("CROSSSLOT"), "{e}");
    // Queueing a command on another shard than the watched key's is refused
    // and discards the transaction.
    let mut input = format!("WATCH {}\r\nMULTI\r\n", keys[0]);
    for k in &keys {
        input.push_str(&format!("INCR {k}\r\n"));
    }
    input.push_str("EXEC\r\n");
    let end = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
    let got = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(engine.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(input.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while !got.ends_with(end) {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "closed after {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&b[..n]);
        }
        String::from_utf8(got).unwrap()
    };
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), keys.len() + 3, "{got}");
    assert_eq!(lines[..3], ["+OK", "+OK", "+QUEUED"], "the watched key's own shard queues");
    assert!(lines[3..keys.len() + 2].iter().all(|l| *l == "+QUEUED" || l.starts_with("-CROSSSLOT")));
    assert!(lines.iter().any(|l| l.starts_with("-CROSSSLOT")));
    assert_eq!(cmd("EXISTS").arg(&keys).query::<i64>(&mut a).unwrap(), 0);
    let _: () = cmd("UNWATCH").query(&mut a).unwrap();
    // One hash tag puts them on one shard: the transaction runs.
    let tagged: Vec<String> = (0..64).map(|i| format!("{{acct}}:{i}")).collect();
    let _: () = cmd("WATCH").arg(&tagged).query(&mut a).unwrap();
    let mut p = redis::pipe();
    p.atomic();
    for k in &tagged {
        p.cmd("INCR").arg(k);
    }
    let got: Vec<i64> = p.query(&mut a).unwrap();
    assert_eq!(got, vec![1; 64]);
    // No watch left behind on any shard.
    let info: String = cmd("INFO").arg("all").query(&mut a).unwrap();
    let watched = shard_field(&info, "watched_keys");
    assert!(!watched.is_empty() && watched.iter().all(|&w| w == 0), "{info}");
}

#[test]
fn optimistic_increments_never_lose_an_update() {
    // Each thread adds 1 to one counter through redis-rs's WATCH/MULTI/EXEC
    // retry loop; every increment must land exactly once.
    const THREADS: usize = 4;
    const EACH: i64 = 150;
    for shards in [1, 2] {
        let Some(engine) = common::start(shards, |_| {}) else { return };
        let addr = engine.local_addr();
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut con = common::client(addr);
                    let mut retries = 0;
                    for _ in 0..EACH {
                        let _: () = redis::transaction(&mut con, &["counter"], |con, pipe| {
                            let n: Option<i64> = cmd("GET").arg("counter").query(con)?;
                            let r: Option<()> =
                                pipe.set("counter", n.unwrap_or(0) + 1).ignore().query(con)?;
                            if r.is_none() {
                                retries += 1;
                            }
                            Ok(r)
                        })
                        .unwrap();
                    }
                    retries
                })
            })
            .collect();
        let retries: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let mut con = common::client(addr);
        let n: i64 = cmd("GET").arg("counter").query(&mut con).unwrap();
        assert_eq!(n, THREADS as i64 * EACH, "shards {shards}, {retries} retries");
        // Disconnected clients leave no watch behind.
        std::thread::sleep(Duration::from_millis(100));
        let info: String = cmd("INFO").arg("all").query(&mut con).unwrap();
        let watched = shard_field(&info, "watched_keys");
        assert!(!watched.is_empty() && watched.iter().all(|&w| w == 0), "{info}");
    }
}

#[test]
fn a_transaction_is_bounded_by_max_query() {
    // Queued arguments count against `max_query` (here 64 KiB): past it the
    // command is refused, nothing more is kept, and EXEC discards the lot.
    let Some(engine) = common::start(2, |c| c.max_query = 64 << 10) else { return };
    let mut con = common::client(engine.local_addr());
    let value = "v".repeat(16 << 10);
    let _: () = cmd("MULTI").query(&mut con).unwrap();
    for i in 0..3 {
        let r: String = cmd("SET").arg(format!("big{i}")).arg(&value).query(&mut con).unwrap();
        assert_eq!(r, "QUEUED");
    }
    let e = cmd("SET").arg("big3").arg(&value).arg("XX").query::<Value>(&mut con).unwrap_err();
    assert!(e.to_string().contains("transaction too large"), "{e}");
    for i in 4..8 {
        let r: String = cmd("SET").arg(format!("big{i}")).arg(&value).query(&mut con).unwrap();
        assert_eq!(r, "QUEUED", "still answered, no longer kept");
    }
    let e = cmd("EXEC").query::<Value>(&mut con).unwrap_err();
    assert!(e.to_string().contains("Transaction discarded because of previous errors"), "{e}");
    assert_eq!(cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 0);
    // The connection is usable afterwards.
    let got: Vec<i64> = redis::pipe().atomic().incr("n", 1).incr("n", 1).query(&mut con).unwrap();
    assert_eq!(got, vec![1, 2]);
}

/// The values of a per-shard `INFO` field (`shardN_name:value` lines).
fn shard_field(info: &str, name: &str) -> Vec<u64> {
    info.lines()
        .filter_map(|l| l.strip_prefix("shard")?.split_once('_')?.1.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

#[test]
fn reset_discards_the_transaction_and_the_connection_state() {
    let Some(engine) = common::start(2, |_| {}) else { return };
    let addr = engine.local_addr();
    // Inside MULTI it runs at once: the queued SET is discarded, EXEC then
    // has no MULTI; the watch is gone, so a later transaction runs.
    let input = b"SELECT 1\r\nWATCH {t}w\r\nMULTI\r\nSET {t}a b\r\nRESET\r\nEXEC\r\nGET {t}a\r\n\
                  SET {t}w 1\r\nMULTI\r\nEXEC\r\nCLIENT SETNAME n\r\n";
    let want: &[u8] = b"+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n+RESET\r\n-ERR EXEC without MULTI\r\n$-1\r\n\
                        +OK\r\n+OK\r\n*0\r\n+OK\r\n";
    let got = raw_reply(addr, input, want);
    assert_eq!(got.escape_ascii().to_string(), want.escape_ascii().to_string());
    let mut con = common::client(addr);
    let _: () = cmd("SELECT").arg(1).query(&mut con).unwrap();
    let _: () = cmd("SET").arg("in1").arg("v").query(&mut con).unwrap();
    let _: () = cmd("CLIENT").arg("SETNAME").arg("named").query(&mut con).unwrap();
    let r: String = cmd("RESET").query(&mut con).unwrap();
    assert_eq!(r, "RESET");
    let name: Option<String> = cmd("CLIENT").arg("GETNAME").query(&mut con).unwrap();
    assert_eq!(name, None, "RESET clears the name");
    let v: Option<String> = cmd("GET").arg("in1").query(&mut con).unwrap();
    assert_eq!(v, None, "RESET goes back to database 0");
    let _: () = cmd("SELECT").arg(1).query(&mut con).unwrap();
    let v: Option<String> = cmd("GET").arg("in1").query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}

#[test]
fn a_bad_subcommand_is_refused_at_queue_time() {
    let Some(engine) = common::start(1, |_| {}) else { return };
    let want: &[u8] = b"+OK\r\n-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n+QUEUED\r\n\
                        -EXECABORT Transaction discarded because of previous errors.\r\n";
    let got = raw_reply(engine.local_addr(), b"MULTI\r\nCLIENT FOO\r\nPING\r\nEXEC\r\n", want);
    assert_eq!(got.escape_ascii().to_string(), want.escape_ascii().to_string());
}
