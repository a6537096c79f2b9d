"""resilienced through redis-py, as an application uses it: RESP2 and RESP3,
the default (MULTI/EXEC) and plain pipelines, transaction() with WATCH,
scan_iter, binary values, errors, and the resilience commands.

    python redis_py.py PORT
"""
import sys
import time

import redis

PORT = int(sys.argv[1])


def client(proto, decode=True):
    return redis.Redis(port=PORT, protocol=proto, decode_responses=decode, socket_timeout=10)


def strings_and_ttl(r):
    r.flushall()
    assert r.set("a", "1") is True and r.get("a") == "1"
    assert r.set("a", "2", nx=True) is None
    assert r.set("a", "3", xx=True, ex=100) is True and 0 < r.ttl("a") <= 100
    assert 0 < r.pttl("a") <= 100_000 and r.expiretime("a") > 0
    assert r.persist("a") is True and r.ttl("a") == -1
    assert r.set("a", "4", get=True) == "3"
    assert r.getset("a", "5") == "4" and r.getdel("a") == "5" and r.get("a") is None
    assert r.setex("e", 50, "v") is True and r.getex("e", persist=True) == "v" and r.ttl("e") == -1
    assert r.append("s", "ab") == 2 and r.append("s", "cd") == 4 and r.strlen("s") == 4
    assert r.getrange("s", 1, -2) == "bc" and r.setrange("s", 4, "ef") == 6 and r.get("s") == "abcdef"
    assert r.type("s") == "string" and r.type("nothing") == "none"
    assert r.incr("n") == 1 and r.incrby("n", 5) == 6 and r.decr("n") == 5 and r.decrby("n", 10) == -5
    assert r.mset({"m1": "1", "m2": "2"}) is True
    assert r.mget("m1", "missing", "m2") == ["1", None, "2"]
    assert r.exists("m1", "m2", "missing") == 2 and r.delete("m1", "missing") == 1 and r.unlink("m2") == 1
    assert r.expire("s", 100) is True and r.pexpire("s", 100_000, xx=True) is True
    at = int(time.time()) + 500
    assert r.expireat("s", at) is True and r.expiretime("s") == at
    assert r.pexpireat("s", at * 1000 + 7) is True and r.pexpiretime("s") == at * 1000 + 7
    assert r.dbsize() == 3  # e, s, n
    assert r.touch("e", "s", "missing") == 2
    try:
        r.incr("s")
        raise AssertionError("INCR of a string succeeded")
    except redis.ResponseError as e:
        assert "not an integer" in str(e)
    try:
        r.execute_command("NOPE", "x")
        raise AssertionError("an unknown command succeeded")
    except redis.ResponseError as e:
        assert "unknown command" in str(e)
    assert r.ping() is True and r.echo("hi") == "hi"


def binary_values(proto):
    r = client(proto, decode=False)
    v = bytes(range(256)) + b"\r\n$-1\r\n" * 3
    assert r.set(b"\x00bin\xff", v) is True and r.get(b"\x00bin\xff") == v
    big = b"x" * (3 << 20)
    assert r.set("big", big) is True and r.get("big") == big


def pipelines(r):
    r.flushdb()
    # redis-py's default pipeline is a MULTI/EXEC transaction.
    with r.pipeline() as p:
        p.set("p1", "a").incr("p2").get("p1").mget("p1", "p2", "nope")
        assert p.execute() == [True, 1, "a", ["a", "1", None]]
    with r.pipeline(transaction=False) as p:
        for i in range(300):
            p.set(f"k{i}", i)
        p.dbsize()
        got = p.execute()
        assert got[:300] == [True] * 300 and got[300] == 302
    # An error inside a transaction is one of its results.
    with r.pipeline() as p:
        p.set("t", "x").incr("t").get("t")
        got = p.execute(raise_on_error=False)
        assert got[0] is True and isinstance(got[1], redis.ResponseError) and got[2] == "x"


def watch(proto):
    r, other = client(proto), client(proto)
    r.set("{acct}:balance", 100)

    def withdraw(p):
        balance = int(p.get("{acct}:balance"))
        p.multi()
        p.set("{acct}:balance", balance - 30)
        p.incr("{acct}:withdrawals")

    assert r.transaction(withdraw, "{acct}:balance") == [True, 1]
    assert r.get("{acct}:balance") == "70"
    with r.pipeline() as p:
        p.watch("w")
        p.get("w")
        other.set("w", "theirs")
        p.multi()
        p.set("w", "mine")
        try:
            p.execute()
            raise AssertionError("EXEC ran after the watched key changed")
        except redis.WatchError:
            pass
    assert r.get("w") == "theirs"


def scans(r):
    keys = {k for k in r.scan_iter(match="k1*", count=7)}
    assert keys == {f"k{i}" for i in range(300) if str(i).startswith("1")}, keys
    assert sorted(r.keys("k29?")) == [f"k29{i}" for i in range(10)]


def server_commands(r):
    info = r.info()
    assert info["redis_version"] and "used_memory" in r.info("memory")
    assert "maxmemory" in r.config_get("maxmemory")
    assert r.client_setname("app-1") is True and r.client_getname() == "app-1"
    assert isinstance(r.client_id(), int)
    victim = redis.Redis(port=PORT, socket_timeout=10)
    victim.client_setname("victim")
    listed = {c["name"]: c for c in r.client_list()}
    assert "app-1" in listed and "victim" in listed, listed
    assert r.client_kill_filter(_id=listed["victim"]["id"]) == 1
    assert "victim" not in {c["name"] for c in r.client_list()}
    secs, micros = r.time()
    assert secs > 1_700_000_000 and 0 <= micros < 1_000_000


def resilience_commands(r):
    r.flushall()
    allowed, limit, remaining, retry, reset = r.execute_command("CL.THROTTLE", "u", 1, 10, 60)
    assert (allowed, limit, remaining, retry) == (0, 2, 1, -1) and reset > 0
    assert r.execute_command("BREAKER.ACQUIRE", "svc")[:2] == [1, "closed"]
    started = r.execute_command("IDEM.BEGIN", "order-1", "fp", 1000)
    assert started[0] == "started"
    assert r.execute_command("IDEM.BEGIN", "order-1", "fp", 1000)[0] == "in_progress"
    assert r.execute_command("IDEM.COMPLETE", "order-1", started[1], "done") == "OK"
    assert r.execute_command("IDEM.BEGIN", "order-1", "fp", 1000) == ["completed", "done"]


def databases(proto):
    """A URL with a database number, as Laravel's cache (db 1) or redis-py's
    own suite (db 9) use: redis-py sends SELECT on every connection."""
    r0 = client(proto)
    r9 = redis.Redis.from_url(f"redis://127.0.0.1:{PORT}/9", protocol=proto, decode_responses=True)
    r0.flushall()
    r0.set("shared-name", "zero")
    r9.set("shared-name", "nine")
    r9.mset({"a": 1, "b": 2})
    assert r0.get("shared-name") == "zero" and r9.get("shared-name") == "nine"
    assert r0.dbsize() == 1 and r9.dbsize() == 3
    assert sorted(r9.keys("*")) == ["a", "b", "shared-name"]
    with r9.pipeline(transaction=True) as p:
        p.incr("a").get("shared-name")
        assert p.execute() == [2, "nine"]
    r9.flushdb()
    assert r9.dbsize() == 0 and r0.get("shared-name") == "zero"
    assert "db9" not in r0.info("keyspace") and r0.info("keyspace")["db0"]["keys"] == 1


for proto in (2, 3):
    r = client(proto)
    for test in (strings_and_ttl, pipelines, scans, server_commands, resilience_commands):
        test(r)
        print(f"ok  RESP{proto} {test.__name__}")
    for test in (binary_values, watch, databases):
        test(proto)
        print(f"ok  RESP{proto} {test.__name__}")
print(f"redis-py {redis.__version__}: all passed")
