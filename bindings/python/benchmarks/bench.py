#!/usr/bin/env python3
"""Times, in one run, resilience against the pure-Python libraries Python
teams use today, per call, single thread:

- limiter acquire: resilience TokenBucket / KeyedLimiter vs ``limits``
  (in-memory storage; moving window and fixed window strategies);
- breaker call: a function guarded by ``@CircuitBreaker`` vs ``pybreaker``;
- cache get (hit): resilience ``Cache.get`` / ``get_many`` vs ``cachetools``
  (LRUCache, TTLCache) and a plain ``dict`` (for honesty: a dict lookup never
  leaves the interpreter);
- queue push+pop: MpmcQueue vs ``collections.deque`` and ``queue.SimpleQueue``.

It installs nothing. First, in the same virtual environment as resilience:

    pip install limits pybreaker cachetools

then ``python bindings/python/benchmarks/bench.py`` (``--quick`` for a smoke
run). Prints medians of several repeats in ns per call and the ratio
peer / resilience (> 1: resilience is faster), plus the load average.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import queue
import statistics
import sys
import threading
import time
import timeit
from typing import Callable, List, Optional, Tuple

import resilience

Row = Tuple[str, str, Optional["Case"], str, Optional["Case"]]


class Case:
    """One timed callable; its samples are taken round-robin with the others
    so that load drift on a shared machine hits every case alike."""

    def __init__(self, fn: Callable[[], object], number: int, per_call: int = 1) -> None:
        fn()  # warm up, and prove it runs
        self.fn, self.number, self.per_call = fn, number, per_call
        self.samples: List[float] = []

    def sample(self) -> None:
        t = timeit.timeit(self.fn, number=self.number)
        self.samples.append(t / (self.number * self.per_call) * 1e9)

    @property
    def ns(self) -> float:
        return statistics.median(self.samples)


CASES: List[Case] = []


def case(fn: Callable[[], object], number: int, per_call: int = 1) -> Case:
    c = Case(fn, number, per_call)
    CASES.append(c)
    return c


def bench_limiter(n: int, r: int) -> List[Row]:
    rows: List[Row] = []
    try:
        from limits import parse, storage, strategies
    except ImportError:
        return [("limiter acquire", "limits not installed", None, "", None)]
    mem = storage.MemoryStorage()
    item = parse("1000000000/second")  # never denies: we time the bookkeeping
    moving = strategies.MovingWindowRateLimiter(mem)
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    assert moving.hit(item, "user-1") and fixed.hit(item, "user-1")
    # limits' moving window keeps every hit inside the window: run a bounded
    # number of hits per repeat so the per-call figure is the common case.
    t_moving = case(lambda: moving.hit(item, "user-1"), min(n, 20_000))
    t_fixed = case(lambda: fixed.hit(item, "user-1"), n)

    if hasattr(resilience, "TokenBucket"):
        bucket = resilience.TokenBucket(10**9, per=1.0, burst=10**9)  # never denies either
        keyed = resilience.KeyedLimiter(10**9, per=1.0, burst=10**9)
        assert bucket.try_acquire() and keyed.try_acquire("user-1")
        t_bucket = case(bucket.try_acquire, n)
        t_keyed = case(lambda: keyed.try_acquire("user-1"), n)
        keys = [f"user-{i}" for i in range(100)]
        t_many = case(lambda: keyed.acquire_many(keys), max(n // 100, 10), 100)
        t_many_b = case(lambda: keyed.try_acquire_many(keys), max(n // 100, 10), 100)
        rows += [
            ("limiter acquire (1 key)", "TokenBucket.try_acquire", t_bucket,
             "limits moving window hit", t_moving),
            ("", "TokenBucket.try_acquire", t_bucket, "limits fixed window hit", t_fixed),
            ("keyed limiter acquire", "KeyedLimiter.try_acquire", t_keyed,
             "limits moving window hit", t_moving),
            ("", "KeyedLimiter.try_acquire", t_keyed, "limits fixed window hit", t_fixed),
            ("", "acquire_many (100 keys) / key", t_many, "limits fixed window hit", t_fixed),
            ("", "try_acquire_many (100) / key", t_many_b, "limits fixed window hit", t_fixed),
        ]
    else:
        rows += [("limiter acquire", "(not in this build)", None, "limits moving window hit", t_moving),
                 ("", "(not in this build)", None, "limits fixed window hit", t_fixed)]
    return rows


def bench_breaker(n: int, r: int) -> List[Row]:
    def work(x: int) -> int:
        return x

    ours = resilience.CircuitBreaker()(work)
    t_plain = case(lambda: work(1), n)
    t_ours = case(lambda: ours(1), n)
    assert ours(3) == 3
    rows: List[Row] = [("breaker call", "@CircuitBreaker", t_ours, "plain call (no breaker)", t_plain)]
    try:
        import pybreaker
    except ImportError:
        return rows + [("", "@CircuitBreaker", t_ours, "pybreaker not installed", None)]
    theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(work)
    assert theirs(3) == 3
    t_theirs = case(lambda: theirs(1), n)
    b = resilience.CircuitBreaker()

    def explicit() -> None:
        b.record(b.try_acquire())

    t_explicit = case(explicit, n)
    import resilience.breaker as rb

    saved, rb.USE_SPEEDUPS = rb.USE_SPEEDUPS, False
    try:
        ours_cffi = resilience.CircuitBreaker()(work)  # the pure-cffi wrapper
    finally:
        rb.USE_SPEEDUPS = saved
    t_cffi = case(lambda: ours_cffi(1), n)
    return rows + [("", "@CircuitBreaker", t_ours, "@pybreaker.CircuitBreaker", t_theirs),
                   ("", "@CircuitBreaker (cffi wrapper)", t_cffi, "@pybreaker.CircuitBreaker", t_theirs),
                   ("", "try_acquire + record", t_explicit, "@pybreaker.CircuitBreaker", t_theirs)]


def bench_cache(n: int, r: int) -> List[Row]:
    keys = [f"key-{i}" for i in range(1000)]
    value = b"v" * 64
    ours = resilience.Cache(max_entries=10_000)
    plain = {}
    for k in keys:
        ours[k] = value
        plain[k] = value
    assert ours.get("key-7") == value
    t_ours = case(lambda: ours.get("key-7"), n)
    bkey = b"key-7"
    t_ours_b = case(lambda: ours.get(bkey), n)
    batch = keys[:100]
    assert ours.get_many(batch) == [value] * 100
    t_many = case(lambda: ours.get_many(batch), max(n // 100, 10), 100)
    t_dict = case(lambda: plain.get("key-7"), n)
    rows: List[Row] = []
    try:
        import cachetools
    except ImportError:
        return [("cache get (hit, 64 B)", "Cache.get", t_ours, "cachetools not installed", None),
                ("", "Cache.get", t_ours, "dict.get", t_dict)]
    lru = cachetools.LRUCache(maxsize=10_000)
    ttl = cachetools.TTLCache(maxsize=10_000, ttl=3600)
    for k in keys:
        lru[k] = value
        ttl[k] = value
    assert lru.get("key-7") == value and ttl.get("key-7") == value
    t_lru = case(lambda: lru.get("key-7"), n)
    t_ttl = case(lambda: ttl.get("key-7"), n)
    rows += [("cache get (hit, 64 B)", "Cache.get (str key)", t_ours, "cachetools LRUCache.get", t_lru),
             ("", "Cache.get (str key)", t_ours, "cachetools TTLCache.get", t_ttl),
             ("", "Cache.get (bytes key)", t_ours_b, "cachetools TTLCache.get", t_ttl),
             ("", "get_many (100 keys) / key", t_many, "cachetools TTLCache.get", t_ttl),
             ("", "Cache.get (str key)", t_ours, "dict.get", t_dict)]
    return rows


def bench_queue(n: int, r: int) -> List[Row]:
    q = resilience.MpmcQueue(1024)
    d: collections.deque = collections.deque()
    sq: queue.SimpleQueue = queue.SimpleQueue()

    def ours() -> None:
        q.push(1)
        q.pop()

    def dq() -> None:
        d.append(1)
        d.popleft()

    def simple() -> None:
        sq.put(1)
        sq.get()

    vals = list(range(100))
    t_ours = case(ours, n)
    t_many = case(lambda: (q.push_many(vals), q.pop_many(100)), max(n // 100, 10), 100)
    return [("queue push + pop", "MpmcQueue push+pop", t_ours, "queue.SimpleQueue put+get",
             case(simple, n)),
            ("", "push_many+pop_many / item", t_many, "collections.deque", case(dq, n))]


def bench_threads(n: int) -> List[str]:
    """Aggregate throughput from 1 and 2 threads. The GIL is released inside
    every C call, but the Python around each call still needs it, so calls
    of a few hundred ns scale only as far as their C share allows."""
    c = resilience.Cache(max_entries=100_000)
    keys = [f"k{i}" for i in range(100)]
    for k in keys:
        c[k] = b"x" * 32
    bucket = resilience.TokenBucket(10**9, burst=10**9) if hasattr(resilience, "TokenBucket") else None
    rounds = max(n // 100, 50)
    work = {"Cache.get_many (100 keys)": (lambda: c.get_many(keys), 100)}
    if bucket is not None:
        work["TokenBucket.try_acquire"] = (bucket.try_acquire, 1)
    out = []
    for name, (fn, per_call) in work.items():
        base = None
        for threads in (1, 2):
            calls = rounds if per_call > 1 else rounds * 100

            def loop(fn: Callable[[], object] = fn, calls: int = calls) -> None:
                for _ in range(calls):
                    fn()

            rates = []
            for _ in range(5):  # median of 5 runs
                ts = [threading.Thread(target=loop) for _ in range(threads)]
                t0 = time.perf_counter()
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                rates.append(threads * calls * per_call / (time.perf_counter() - t0))
            rate = statistics.median(rates)
            base = base or rate
            out.append(f"  {name:28} {threads} thread(s): {rate / 1e6:6.2f} M/s ({rate / base:.2f}x)")
    return out


def fmt(c: Optional[Case]) -> str:
    return "      -" if c is None else f"{c.ns:7.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke run)")
    ap.add_argument("-n", type=int, default=200_000, help="calls per repeat")
    ap.add_argument("-r", type=int, default=7, help="repeats (the median is reported)")
    args = ap.parse_args()
    n, r = (2_000, 3) if args.quick else (args.n, args.r)

    rows: List[Row] = []
    for section in (bench_limiter, bench_breaker, bench_cache, bench_queue):
        rows += section(n, r)
    for _ in range(r):
        for c in CASES:
            c.sample()
    load = os.getloadavg()
    print(f"resilience {resilience.library_version} ({resilience.mode} mode), Python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"median of {r} round-robin repeats x {n} calls; ns per call; ratio = peer / resilience\n")
    print(f"| {'operation':24} | {'resilience':31} | {'ns':>7} | {'peer':31} | {'ns':>7} | {'ratio':>6} |")
    print(f"|{'-' * 26}|{'-' * 33}|{'-' * 9}|{'-' * 33}|{'-' * 9}|{'-' * 8}|")
    for op, ours, t_ours, peer, t_peer in rows:
        ratio = f"{t_peer.ns / t_ours.ns:5.1f}x" if t_ours and t_peer else "     -"
        print(f"| {op:24} | {ours:31} | {fmt(t_ours)} | {peer:31} | {fmt(t_peer)} | {ratio:>6} |")
    print("\nthreads (aggregate; the GIL is released inside C calls, not around the Python):")
    print("\n".join(bench_threads(n)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
