"""Objects are freed: a million create/free cycles don't grow the process."""

from __future__ import annotations

import gc
import os

import resilience
from resilience import BreakerRegistry, Cache, CircuitBreaker, IdempotencyStore, MpmcQueue, spsc_queue
from resilience.breaker import _callbacks


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def grows(make, cycles: int, warmup: int) -> int:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        make()
    gc.collect()
    before = rss_bytes()
    for _ in range(cycles):
        make()
    gc.collect()
    return rss_bytes() - before


def test_million_queue_cycles() -> None:
    # A leaked ring would be >= 64 bytes each: >= 64 MB over a million.
    growth = grows(lambda: MpmcQueue(1), 1_000_000, 20_000)
    assert growth < 8 << 20, f"RSS grew {growth >> 10} KiB over 1e6 create/free cycles"


def test_many_cycles_of_every_class() -> None:
    def breaker() -> None:
        b = CircuitBreaker()
        b.record(b.try_acquire())
        b.on_state_change(lambda t: None)
        b.force_open()

    def guarded() -> None:
        b = CircuitBreaker(window_size=1000, minimum_calls=1000)

        @b
        def ok(x: int) -> int:
            return x

        @b
        def bad() -> None:
            raise KeyError("x")

        for i in range(10):
            ok(i)
            try:
                bad()
            except KeyError:
                pass

    def registry() -> None:
        r = BreakerRegistry(4)
        r.get("a").force_open()
        r.get("b")

    def cache() -> None:
        with Cache(max_entries=16, shards=1) as c:
            c["k"] = b"v" * 100

    def store() -> None:
        s = IdempotencyStore(shards=1, max_bytes=1 << 16, max_response_len=1024)
        b = s.begin("k")
        s.complete("k", b.token, b"r" * 100)

    def spsc() -> None:
        p, c = spsc_queue(2)
        p.push(1)

    callbacks_before = len(_callbacks)
    for make, n in ((breaker, 100_000), (guarded, 20_000), (registry, 50_000), (cache, 50_000), (store, 50_000),
                    (spsc, 200_000)):
        growth = grows(make, n, n // 20)
        assert growth < 8 << 20, f"{make.__name__}: RSS grew {growth >> 10} KiB over {n} cycles"
    assert len(_callbacks) == callbacks_before  # every callback's user_free ran
    assert resilience.MpmcQueue  # keep the import used


def test_limiter_cycles() -> None:
    if not hasattr(resilience, "TokenBucket"):
        return

    def limiters() -> None:
        t = resilience.TokenBucket(10)
        t.try_acquire()
        k = resilience.KeyedLimiter(10, max_keys=16)
        k.acquire_many(["a", "b"])
        with resilience.Bulkhead(2):
            pass
        a = resilience.AdaptiveLimiter()
        with a.guard():
            pass

    growth = grows(limiters, 30_000, 2_000)
    assert growth < 8 << 20, f"RSS grew {growth >> 10} KiB over 30000 cycles"
