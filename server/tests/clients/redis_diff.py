"""Differential test: the same random command stream to redis-server and to
resilienced, reply by reply.

    python3 redis_diff.py REDIS_PORT RESILIENCED_PORT [OPS] [SEED] [--sharded] [--resp3]

Commands are drawn from the string, key-expiry and transaction commands both
servers implement, over a few keys (some sharing a `{hash tag}`) and values
chosen to hit the edges: integer limits, overflow, floats, empty and binary
strings. Arguments are sometimes wrong on purpose (arity, syntax, option
clashes), so error replies are compared too. Replies are compared as raw
RESP bytes, with allowances for time and order: TTL/PTTL/EXPIRETIME values
may differ by the time that passed between the two sends, and by more past
the year 2500 (resilienced keeps deadlines as u64 nanoseconds of its
monotonic clock, about 584 years, and holds later ones at that limit, as
README.md says); the elements of KEYS are compared as a set. Expiry times are long (minutes) or
already past, so no key expires while the stream runs.

`--resp3` switches the command connections to RESP3 (`HELLO 3`) first.
`--sharded` (resilienced runs several shards): transactions hold only keys
under one hash tag and no keyless all-shard command (DBSIZE, KEYS, FLUSH*),
which resilienced refuses with -CROSSSLOT while keys are watched, nor
SELECT, which it refuses while keys of another shard are watched (both as
README.md documents).

Exits 1 on the first mismatch, printing the commands that led to it.
"""

import os
import random
import socket
import sys
import time


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.buf = b""

    def send(self, args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self):
        """One reply as a tree: (type byte, payload or children)."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"$", b"="):
            n = int(rest)
            return (t, None if n < 0 else self._exact(n))
        if t in (b"*", b"~", b">"):
            n = int(rest)
            return (t, None if n < 0 else [self.reply() for _ in range(n)])
        if t == b"%":
            return (t, [(self.reply(), self.reply()) for _ in range(int(rest))])
        return (t, rest)


# "\xff\x01k" looks like how resilienced stores key "k" of database 1.
KEYS = [b"k1", b"k2", b"k3", b"{t}a", b"{t}b", b"{t}c", b"n", b"\xff\x01k1"]
VALUES = [
    b"0", b"1", b"-1", b"42", b"007", b"+5", b" 1", b"1 ", b"3.5", b"1e3", b"abc", b"",
    b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808",
    b"-9223372036854775809", b"\x00\xff\r\n", b"x" * 40, b"nan", b"inf",
]
INTS = [b"0", b"1", b"-1", b"2", b"-5", b"100", b"9223372036854775807",
        b"-9223372036854775808", b"9223372036854775808", b"x", b"1.5", b""]
FLOATS = [b"0.1", b"-0.1", b"1", b"1.5e3", b"-2.5", b"1e308", b"-1e308", b"inf", b"nan", b" 1",
          b"0x10", b"1e-20", b"3.0", b".5", b"abc", b"", b"1e5000", b"-0"]
TTLS = [b"300", b"1000", b"86400", b"0", b"-1", b"x", b"9223372036854775807", b"2.5"]
SET_OPTS = [[b"NX"], [b"XX"], [b"GET"], [b"KEEPTTL"], [b"EX", b"300"], [b"PX", b"300000"],
            [b"EX", b"0"], [b"PX", b"-1"], [b"EX", b"x"], [b"EXAT", b"FUTURE"],
            [b"PXAT", b"FUTUREMS"], [b"BOGUS"], [b"EX"]]
# (No SET ... EXAT in the past: redis-server 7.0 stores such a key and counts
# it in DBSIZE until its active expiry cycle removes it; resilienced never
# stores it. KEYS and GET agree either way.)
EXPIRE_FLAGS = [[], [], [b"NX"], [b"XX"], [b"GT"], [b"LT"], [b"NX", b"XX"], [b"GT", b"LT"], [b"BAD"]]
RANGES = [b"0", b"-1", b"2", b"-3", b"100", b"-100", b"x", b"9223372036854775807"]
OFFSETS = [b"0", b"1", b"5", b"-1", b"x", b"536870912"]


# Raw frames, each sent on a fresh connection and followed by QUIT; the
# bytes each server writes until it closes are compared. Counts parse as
# Redis's string2ll (i64::MIN is a count; leading zeros and -0 are not).
# Left out: a bulk string not followed by CRLF, which redis-server 7.0 reads
# past (it skips two bytes unchecked) and resilienced refuses.
RAW_FRAMES = [
    b"*1\r\n$4\r\nPING\r\n",
    b"*0\r\n", b"*-1\r\n", b"*-5\r\n", b"*-9223372036854775808\r\n",
    b"*-9223372036854775809\r\n", b"*-0\r\n", b"*00\r\n", b"*01\r\n$4\r\nPING\r\n",
    b"*+1\r\n", b"*\r\n", b"*x\r\n", b"* 1\r\n", b"*1 \r\n", b"*9223372036854775807\r\n",
    b"*99999999999999999999\r\n", b"*1\r\n$04\r\nPING\r\n", b"*1\r\n$-0\r\n", b"*1\r\n$-1\r\n",
    b"*1\r\n$\r\n", b"*1\r\n$x\r\n", b"*1\r\n:1\r\n",
    b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", b"\r\n", b"\n", b"   \r\n",
    b"PING\r\n", b"ECHO 'a b'\r\n", b'ECHO "a b"\r\n', b'ECHO "a\r\n', b"ECHO 'a'b\r\n",
    b"ECHO \t x\n", b"*1\r\n$4\r\nPING\r\n*-9223372036854775808\r\nPING\r\n",
    # Subcommand errors, in Redis 7's wording.
    b"CLIENT Bogus\r\n", b"CLIENT ID x\r\n", b"CLIENT SETNAME\r\n", b"CLIENT HELP x\r\n",
    b"COMMAND bogus\r\n", b"COMMAND COUNT x\r\n", b"CONFIG bogus\r\n", b"CLIENT NO-EVICT on\r\n",
    b"CLIENT NO-EVICT maybe\r\n", b"COMMAND INFO nosuch\r\n",
    b"MULTI\r\nCLIENT FOO\r\nEXEC\r\n", b"MULTI\r\nCONFIG GET\r\nEXEC\r\n", b"CLIENT KILL\r\n",
    b"MULTI\r\nCLIENT SETNAME\r\nPING\r\nEXEC\r\n", b"CONFIG SET a\r\n", b"CONFIG RESETSTAT x\r\n",
    # RESET: out of MULTI (it runs inside too), no watches, database 0, no name.
    b"RESET\r\n", b"RESET x\r\n", b"MULTI\r\nSET rs1 b\r\nRESET\r\nGET rs1\r\nEXEC\r\n",
    b"SELECT 2\r\nSET rs2 1\r\nRESET\r\nGET rs2\r\nSELECT 2\r\nDEL rs2\r\n",
    b"CLIENT SETNAME nm\r\nRESET\r\nCLIENT GETNAME\r\n", b"WATCH rs3\r\nRESET\r\nSET rs3 1\r\nMULTI\r\nEXEC\r\nDEL rs3\r\n",
]


def raw_frames(redis_port, ours_port):
    """Sends RAW_FRAMES to both servers; exits 1 on the first difference."""
    for frame in RAW_FRAMES:
        got = []
        for port in (redis_port, ours_port):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.settimeout(10)
            sock.sendall(frame + b"*1\r\n$4\r\nQUIT\r\n")
            out = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
            sock.close()
            got.append(out)
        if got[0] != got[1]:
            print(f"RAW FRAME MISMATCH: {frame!r}")
            print("  redis-server:", got[0])
            print("  resilienced: ", got[1])
            sys.exit(1)
    print(f"{len(RAW_FRAMES)} raw frames, identical replies")


# Set by main: resilienced runs several shards.
SHARDED = False


def pick_key(r):
    return r.choice(KEYS)


def gen(r):
    """One random command (a list of byte strings)."""
    k = pick_key(r)
    v = r.choice(VALUES)
    c = r.randrange(100)
    if c < 14:
        args = [b"SET", k, v]
        for _ in range(r.choice([0, 0, 1, 1, 2])):
            args += r.choice(SET_OPTS)
        return args
    if c < 24:
        return [b"GET", k]
    if c < 28:
        return [b"DEL"] + r.sample(KEYS, r.randint(1, 3))
    if c < 31:
        return [b"EXISTS"] + [pick_key(r) for _ in range(r.randint(1, 3))]
    if c < 40:
        op = r.choice([b"INCR", b"DECR", b"INCRBY", b"DECRBY", b"INCRBYFLOAT"])
        if op == b"INCRBYFLOAT":
            return [op, k, r.choice(FLOATS)]
        return [op, k] + ([r.choice(INTS)] if op.endswith(b"BY") else [])
    if c < 46:
        op = r.choice([b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"])
        t = r.choice(TTLS)
        if op.endswith(b"AT") and t.isdigit() and t != b"0" and len(t) < 8:
            now = int(time.time()) * (1000 if op == b"PEXPIREAT" else 1)
            t = str(now + int(t) * (1000 if op == b"PEXPIREAT" else 1)).encode()
        elif op == b"PEXPIRE" and t.isdigit() and len(t) < 8 and t != b"0":
            t = t + b"000"
        return [op, k, t] + r.choice(EXPIRE_FLAGS)
    if c < 50:
        return [r.choice([b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME"]), k]
    if c < 54:
        return [b"MGET"] + [pick_key(r) for _ in range(r.randint(1, 4))]
    if c < 57:
        args = [b"MSET"]
        for _ in range(r.randint(1, 3)):
            args += [pick_key(r), r.choice(VALUES)]
        if r.random() < 0.1:
            args.pop()
        return args
    if c < 60:
        return [b"APPEND", k, v]
    if c < 62:
        return [b"STRLEN", k]
    if c < 64:
        return [b"GETSET", k, v]
    if c < 66:
        return [b"GETDEL", k]
    if c < 69:
        opts = r.choice([[], [b"PERSIST"], [b"EX", b"500"], [b"PX", b"500000"], [b"EX", b"0"],
                         [b"EX", b"x"], [b"PERSIST", b"EX", b"5"], [b"BAD"],
                         [b"EX", b"5", b"EX", b"600"], [b"PERSIST", b"PERSIST"],
                         [b"PX", b"1", b"PX", b"x"], [b"EX", b"5", b"PERSIST"]])
        return [b"GETEX", k] + opts
    if c < 71:
        return [b"PERSIST", k]
    if c < 73:
        return [b"TYPE", k]
    if c < 75:
        return [b"SETNX", k, v]
    if c < 77:
        op, t = r.choice([b"SETEX", b"PSETEX"]), r.choice(TTLS)
        if op == b"PSETEX" and t.isdigit() and len(t) < 8 and t != b"0":
            t = t + b"000"  # seconds, as for PEXPIRE: nothing expires mid-run
        return [op, k, t, v]
    if c < 80:
        return [b"GETRANGE", k, r.choice(RANGES), r.choice(RANGES)]
    if c < 82:
        return [b"SETRANGE", k, r.choice(OFFSETS), v]
    if c < 84:
        return [b"UNLINK"] + r.sample(KEYS, r.randint(1, 2))
    if c < 85:
        return [b"TOUCH"] + r.sample(KEYS, r.randint(1, 2))
    if c < 87:
        return [b"DBSIZE"]
    if c < 88:
        return [b"KEYS", r.choice([b"*", b"k*", b"{t}?", b"[kn]*", b"*\\"])]
    if c < 89:
        return [b"ECHO", v]
    if c < 90:
        return [b"PING"] + ([v] if r.random() < 0.5 else [])
    if c < 91:
        if r.random() < 0.3:
            return [r.choice([b"FLUSHDB", b"FLUSHDB", b"FLUSHALL"])]
        return [b"DBSIZE"]
    if c < 95:
        # Both keys under {t}: with several shards, keys of two shards are
        # refused (-CROSSSLOT), as Redis Cluster does.
        pool = KEYS[3:6] if SHARDED else KEYS
        src, dst = r.choice(pool), r.choice(pool + [b"{t}new"])
        op = r.choice([b"RENAME", b"RENAMENX", b"COPY", b"COPY", b"MOVE", b"MSETNX", b"SUBSTR"])
        if op == b"COPY":
            opts = r.choice([[], [b"REPLACE"], [b"DB", r.choice([b"0", b"1", b"2", b"16", b"x"])], [b"DB"],
                             [b"DB", b"1", b"REPLACE"], [b"BAD"]])
            return [op, src, dst] + opts
        if op == b"MOVE":
            return [op, src, r.choice([b"0", b"1", b"2", b"16", b"-1", b"x", b"99999999999"])]
        if op == b"MSETNX":
            args = [op]
            for _ in range(r.randint(1, 3)):
                args += [r.choice(pool + [b"{t}new"]), r.choice(VALUES)]
            return args[:-1] if r.random() < 0.1 else args
        if op == b"SUBSTR":
            return [op, src, r.choice(RANGES), r.choice(RANGES)]
        return [op, src, dst]
    if c < 97:
        return [b"SELECT", r.choice([b"0", b"0", b"1", b"2", b"15", b"16", b"-1", b"x", b"99999999999"])]
    # wrong arity or unknown commands
    if r.random() < 0.2:
        # Quoted back in the error: long, binary and NUL-holding arguments.
        return [r.choice([b"NOSUCH", b"x" * 140, b"NO\x00SUCH"])] + [r.choice(VALUES + [b"y" * 100, b"a\x00b"]) for _ in range(r.randint(0, 6))]
    name = r.choice([b"GET", b"SET", b"INCRBY", b"EXPIRE", b"MGET", b"GETRANGE", b"APPEND",
                     b"TTL", b"NOSUCH", b"SETEX", b"STRLEN", b"GETDEL"])
    return [name] + [pick_key(r) for _ in range(r.choice([0, 4, 5]))]


def fill_time(args):
    """Replaces the FUTURE placeholders with absolute times (both sends get
    the same bytes)."""
    now = time.time()
    out = []
    for a in args:
        if a == b"FUTURE":
            a = str(int(now) + 600).encode()
        elif a == b"FUTUREMS":
            a = str(int(now * 1000) + 600_000).encode()
        out.append(a)
    return out


def same(cmd, a, b, queued=()):
    if a == b:
        return True
    name = cmd[0].upper()
    if name == b"EXEC" and a[0] == b[0] == b"*" and a[1] and b[1] and len(a[1]) == len(b[1]) == len(queued):
        return all(same(c, x, y) for c, x, y in zip(queued, a[1], b[1]))
    if name in (b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME") and a[0] == b[0] == b":":
        x, y = int(a[1]), int(b[1])
        secs = name in (b"TTL", b"EXPIRETIME")
        far = 16_000_000_000 if secs else 16_000_000_000_000
        if x >= far and y >= far:
            return True
        return x >= 0 and y >= 0 and abs(x - y) <= (1 if secs else 100)
    if name == b"KEYS" and a[0] == b[0] == b"*":
        return sorted(e[1] for e in a[1]) == sorted(e[1] for e in b[1])
    return False


def dump(history):
    """Writes the whole stream to $DIFF_HISTORY, when set, for a replay."""
    path = os.environ.get("DIFF_HISTORY")
    if path:
        with open(path, "wb") as f:
            for w, c in history:
                f.write(b"%d %r\n" % (w, c))


def main():
    argv = [a for a in sys.argv[1:] if not a.startswith("--")]
    global SHARDED
    sharded, resp3 = "--sharded" in sys.argv, "--resp3" in sys.argv
    SHARDED = sharded
    redis_port, ours_port = int(argv[0]), int(argv[1])
    ops = int(argv[2]) if len(argv) > 2 else 20000
    seed = int(argv[3]) if len(argv) > 3 else 1
    r = random.Random(seed)
    if seed == 1 and not sharded and not resp3:
        raw_frames(redis_port, ours_port)
    conns = [[Conn(redis_port), Conn(ours_port)] for _ in range(2)]
    for c in conns[0]:
        c.send([b"FLUSHALL"])
        assert c.reply() == (b"+", b"OK")
    for pair in conns:
        for c in pair:
            if resp3:
                c.send([b"HELLO", b"3"])
                assert c.reply()[0] == b"%"
    history = []
    in_multi = [False, False]
    queued = [[], []]
    probe = [Conn(redis_port), Conn(ours_port)]
    for i in range(ops):
        if i % 10 == 0:
            # The whole keyspace, on a third connection, so a divergence is
            # caught near the command that caused it.
            state = []
            for c in probe:
                for db in (b"0", b"1", b"2"):
                    c.send([b"SELECT", db])
                    c.reply()
                    c.send([b"KEYS", b"*"])
                    keys = sorted(e[1] for e in c.reply()[1])
                    c.send([b"MGET"] + keys if keys else [b"PING"])
                    c.send([b"DBSIZE"])
                    state.append((db, keys, c.reply(), c.reply()))
            if state[:3] != state[3:]:
                print(f"STATE DIFFERS after {i} commands (seed {seed})")
                for w, c in history[-15:]:
                    print(f"  conn{w}:", b" ".join(c))
                print("  redis-server:", state[:3])
                print("  resilienced: ", state[3:])
                dump(history)
                sys.exit(1)
        who = r.randrange(2)
        red, ours = conns[who]
        x = r.random()
        if x < 0.02 and not in_multi[who]:
            cmd = [b"MULTI"]
            in_multi[who] = True
        elif x < 0.06 and in_multi[who]:
            # EXEC with an argument ends the transaction with EXECABORT.
            cmd = r.choice([[b"EXEC"], [b"EXEC"], [b"DISCARD"], [b"EXEC", b"x"]])
            in_multi[who] = False
        elif x < 0.07:
            cmd = [b"WATCH"] + r.sample([b"{t}a", b"{t}b", b"{t}c"], r.randint(1, 2))
        elif x < 0.072 and not in_multi[who]:
            # Outside MULTI it also drops the watches.
            cmd = [b"EXEC", b"now"]
        elif in_multi[who]:
            # KEYS is left out of transactions (its order is free inside
            # EXEC's array too).
            cmd = gen(r)
            while cmd[0] == b"KEYS" or (sharded and cmd[0] in (b"DBSIZE", b"FLUSHDB", b"FLUSHALL", b"SELECT")):
                cmd = gen(r)
            if sharded:
                # Keep a transaction's keys on one hash tag, so that several
                # shards never answer CROSSSLOT where Redis would not.
                cmd = [a if a not in KEYS else b"{t}" + a.strip(b"{t}") for a in cmd]
        else:
            cmd = gen(r)
        cmd = fill_time(cmd)
        if cmd[0] in (b"EXPIRE", b"PEXPIRE") and {b"GT", b"LT"} & set(cmd[3:]):
            # A relative GT/LT compares now + n with a deadline set earlier
            # from the same n: equal within one millisecond, greater after.
            # Where each server's millisecond boundary falls is a race, so
            # let one pass first.
            time.sleep(0.002)
        history.append((who, cmd))
        red.send(cmd)
        ours.send(cmd)
        a, b = red.reply(), ours.reply()
        if cmd[0] == b"MULTI":
            queued[who] = []
        elif in_multi[who] and a == (b"+", b"QUEUED"):
            queued[who].append(cmd)
        if not same(cmd, a, b, queued[who]):
            print(f"MISMATCH after {i + 1} commands (seed {seed})")
            for w, c in history[-25:]:
                print(f"  conn{w}:", b" ".join(c))
            print("  redis-server:", a)
            print("  resilienced: ", b)
            for name, c in (("redis-server", red), ("resilienced", ours)):
                c.send([b"CLIENT", b"INFO"])
                line = c.reply()[1]
                print(f"  {name} conn{who}:", b" ".join(f for f in line.split() if f.split(b"=")[0] in (b"db", b"multi", b"watch")))
            dump(history)
            sys.exit(1)
    print(f"{ops} commands, identical replies (seed {seed}{', sharded' if sharded else ''}{', RESP3' if resp3 else ''})")


if __name__ == "__main__":
    main()
