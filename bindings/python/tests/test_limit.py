"""TokenBucket, KeyedLimiter, Bulkhead, AdaptiveLimiter and their decorators."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from datetime import timedelta

import pytest

import resilience
from conftest import run_async

if not hasattr(resilience, "TokenBucket"):
    pytest.skip("the loaded library has no limiter C ABI", allow_module_level=True)

from resilience import (AdaptiveLimiter, Bulkhead, BulkheadFull, InvalidArgument, KeyedLimiter, RateLimited,
                        Reason, Timeout, TokenBucket)


def test_token_bucket_decisions() -> None:
    b = TokenBucket(10, per=1.0, burst=5)
    assert b.rate == (10, 1.0, 5)
    d = b.acquire()
    assert d and d.allowed and d.limit == 5 and d.remaining == 4 and d.reason is Reason.ALLOWED
    assert d.retry_after is None and 0 < d.reset_after <= 0.1 + 1e-9
    assert b.acquire(4).remaining == 0
    denied = b.acquire()
    assert not denied and denied.reason is Reason.LIMITED
    assert denied.retry_after is not None and 0 < denied.retry_after <= 0.1
    too_big = b.acquire(6)
    assert too_big.reason is Reason.EXCEEDS_LIMIT and too_big.retry_after is None
    assert b.peek(0).remaining == 0
    b.reset()
    assert b.peek().remaining == 4  # peek answers as acquire would, takes nothing
    assert b.peek().remaining == 4


def test_try_acquire_and_check() -> None:
    b = TokenBucket(1, per=timedelta(hours=1), burst=2)
    assert b.try_acquire() and b.try_acquire()
    assert b.try_acquire() is False
    with pytest.raises(RateLimited) as info:
        b.check()
    assert 3000 < info.value.retry_after <= 3600
    with pytest.raises(RateLimited) as info:
        b.check(3)
    assert info.value.retry_after == math.inf


def test_refill_over_time() -> None:
    b = TokenBucket(100, per=1.0, burst=1)
    assert b.try_acquire() and not b.try_acquire()
    time.sleep(0.03)
    assert b.try_acquire()


def test_bucket_decorator_sync_and_async() -> None:
    b = TokenBucket(1, per=3600, burst=2)
    calls: list = []

    @b.limit()
    def f(x: int) -> int:
        calls.append(x)
        return x

    @b.limit()
    async def g(x: int) -> int:
        calls.append(x)
        return x

    assert f(1) == 1
    assert run_async(g(2)) == 2
    with pytest.raises(RateLimited):
        f(3)
    with pytest.raises(RateLimited):
        run_async(g(4))
    assert calls == [1, 2]
    assert f.__name__ == "f"


@pytest.mark.parametrize("kw", [dict(rate=0), dict(rate=1, per=0), dict(rate=1, burst=0),
                                dict(rate=10**9, per=0.5), dict(rate=1, clock="sundial"),
                                dict(rate=-1)])
def test_bucket_bad_settings(kw: dict) -> None:
    with pytest.raises(InvalidArgument):
        TokenBucket(**kw)


def test_bad_quantity_and_types() -> None:
    b = TokenBucket(10)
    with pytest.raises(InvalidArgument):
        b.acquire(-1)
    with pytest.raises(InvalidArgument):
        b.try_acquire(2**64)
    with pytest.raises(TypeError):
        b.acquire("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TokenBucket(1.5)  # type: ignore[arg-type]
    b.close()
    with pytest.raises(InvalidArgument, match="closed"):
        b.try_acquire()


def test_threads_hammering_one_bucket_exact_accounting() -> None:
    total = 20_000
    b = TokenBucket(1, per=timedelta(days=1), burst=total)  # no refill during the test
    n_threads, per = 4, 8_000  # 32000 attempts for 20000 tokens
    granted = [0] * n_threads

    def worker(i: int) -> None:
        for _ in range(per):
            if b.try_acquire():
                granted[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(granted) == total  # never more, never fewer
    assert b.peek(0).remaining == 0


def test_keyed_limiter() -> None:
    k = KeyedLimiter(1, per=3600, burst=2, max_keys=100)
    assert k.try_acquire("a") and k.try_acquire(b"a")  # str and bytes: the same key
    assert not k.try_acquire("a")
    assert k.try_acquire("b")
    d = k.acquire("a")
    assert not d and d.reason is Reason.LIMITED and d.retry_after > 0
    assert len(k) == 2
    with pytest.raises(RateLimited):
        k.check("a")
    k.check("c")
    s = k.stats()
    assert s.keys == 3 and s.capacity >= 100


def test_keyed_acquire_many() -> None:
    k = KeyedLimiter(1, per=3600, burst=2)
    ds = k.acquire_many(["x", "y", "x", "x", b"y", ""])
    assert [d.allowed for d in ds] == [True, True, True, False, True, True]
    assert ds[3].reason is Reason.LIMITED
    assert k.try_acquire_many(["y", "z"]) == [False, True]
    assert k.acquire_many([]) == []
    many = [f"k{i}" for i in range(500)]  # above the helper's stack array
    assert all(k.try_acquire_many(many))
    with pytest.raises(TypeError):
        k.acquire_many(["a", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument):
        k.acquire_many(["a"], quantity=-1)


def test_keyed_table_full_policies() -> None:
    deny = KeyedLimiter(1, per=3600, max_keys=2, shards=1)
    assert deny.try_acquire("a") and deny.try_acquire("b")
    d = deny.acquire("c")
    assert not d and d.reason is Reason.TABLE_FULL
    allow = KeyedLimiter(1, per=3600, max_keys=2, shards=1, full_policy="allow_untracked")
    allow.acquire("a"), allow.acquire("b")
    d = allow.acquire("c")
    assert d and d.reason is Reason.UNTRACKED
    with pytest.raises(InvalidArgument):
        KeyedLimiter(1, full_policy="maybe")


def test_keyed_reclaim() -> None:
    k = KeyedLimiter(1000, per=1.0, burst=1)
    for i in range(50):
        k.acquire(f"k{i}")
    time.sleep(0.01)
    assert k.reclaim() == 50 and len(k) == 0


def test_keyed_limit_decorator() -> None:
    k = KeyedLimiter(1, per=3600, burst=1)

    @k.limit(key="user")
    def handle(user: str, payload: int = 0) -> int:
        return payload

    @k.limit(key=lambda req: req["ip"])
    async def handle_async(req: dict) -> str:
        return req["ip"]

    assert handle("ann", 1) == 1
    assert handle(user="bob") == 0
    with pytest.raises(RateLimited) as info:
        handle("ann", 2)
    assert info.value.retry_after > 3000 and "ann" in str(info.value)
    assert run_async(handle_async({"ip": "10.0.0.1"})) == "10.0.0.1"
    with pytest.raises(RateLimited):
        run_async(handle_async({"ip": "10.0.0.1"}))
    with pytest.raises(TypeError):
        @k.limit(key="nope")
        def bad(user: str) -> None: ...


def test_keyed_threads_exact_accounting() -> None:
    k = KeyedLimiter(1, per=timedelta(days=1), burst=1000)
    keys = ["a", "b", "c"]
    granted = {key: 0 for key in keys}
    batch_granted = [0]
    lock = threading.Lock()

    def worker() -> None:
        mine = {key: 0 for key in keys}
        for i in range(1500):  # 500 tries per key per thread, 2000 per key in all
            key = keys[i % 3]
            if k.try_acquire(key):
                mine[key] += 1
        late = sum(k.try_acquire_many(keys * 20))
        with lock:
            for key in keys:
                granted[key] += mine[key]
            batch_granted[0] += late

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    # Each thread's single acquires end before its batch starts, but another
    # thread's batch may overlap them: the total per key is exact either way.
    assert sum(granted.values()) + batch_granted[0] == 3 * 1000
    assert all(not d for d in k.acquire_many(keys))


def test_bulkhead_sync() -> None:
    bh = Bulkhead(2)
    with bh:
        with bh:
            assert bh.in_flight == 2
            with pytest.raises(BulkheadFull):
                with bh:
                    pass
    assert bh.in_flight == 0
    assert bh.try_acquire()
    bh.release()
    with pytest.raises(InvalidArgument):
        bh.release()  # unmatched
    s = bh.stats()
    assert s.rejected == 1 and s.invalid_releases == 1


def test_bulkhead_waits_with_timeout() -> None:
    bh = Bulkhead(1, max_waiters=4, max_wait=5)
    bh.acquire()
    threading.Timer(0.05, bh.release).start()
    t0 = time.monotonic()
    with bh:  # waits (GIL released) until the timer releases
        assert time.monotonic() - t0 >= 0.03
    bh.acquire()
    with pytest.raises(Timeout):
        bh.acquire(timeout=0.02)
    bh.release()


def test_bulkhead_decorator_and_threads() -> None:
    bh = Bulkhead(3)
    peak = [0]
    now = [0]
    lock = threading.Lock()
    rejected = [0]

    @bh
    def work() -> None:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.002)
        with lock:
            now[0] -= 1

    def worker() -> None:
        for _ in range(30):
            try:
                work()
            except BulkheadFull:
                rejected[0] += 1

    ts = [threading.Thread(target=worker) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert peak[0] <= 3 and bh.in_flight == 0
    assert bh.stats().rejected == rejected[0]


def test_bulkhead_async() -> None:
    bh = Bulkhead(2, max_waiters=8, max_wait=2)  # async waiters count against max_waiters too
    peak = [0]
    cur = [0]

    @bh
    async def work(i: int) -> int:
        cur[0] += 1
        peak[0] = max(peak[0], cur[0])
        await asyncio.sleep(0.01)
        cur[0] -= 1
        return i

    async def main() -> list:
        return await asyncio.gather(*[work(i) for i in range(8)])

    assert run_async(main()) == list(range(8))
    assert peak[0] == 2 and bh.in_flight == 0

    no_wait = Bulkhead(1)

    async def refused() -> None:
        async with no_wait:
            async with no_wait:
                pass

    with pytest.raises(BulkheadFull):
        run_async(refused())
    assert no_wait.in_flight == 0


@pytest.mark.parametrize("kw", [dict(max_concurrent=0), dict(max_concurrent=2**32),
                                dict(max_concurrent=1, max_waiters=-1), dict(max_concurrent=1, max_wait=-1)])
def test_bulkhead_bad_settings(kw: dict) -> None:
    with pytest.raises(InvalidArgument):
        Bulkhead(**kw)


def test_adaptive_limiter() -> None:
    lim = AdaptiveLimiter(initial_limit=2, min_limit=1, max_limit=10)
    assert lim.limit == 2
    t1, t2 = lim.try_acquire(), lim.try_acquire()
    assert t1 is not None and t2 is not None and lim.try_acquire() is None
    assert lim.in_flight == 2 and t2.inflight == 2
    lim.record(t1)
    with pytest.raises(InvalidArgument):
        lim.record(t1)  # once only
    lim.record(t2, "dropped")
    assert lim.limit <= 2  # a drop never grows it
    s = lim.stats()
    assert s.rejected == 1 and s.in_flight == 0
    with pytest.raises(InvalidArgument):
        lim.record(lim.try_acquire(), "meh")  # type: ignore[arg-type]
    big = AdaptiveLimiter(initial_limit=10, min_limit=1, max_limit=100)
    t = big.try_acquire()
    assert t is not None
    big.record(t, "dropped")
    assert big.limit == 9  # AIMD: 10 * 0.9


def test_adaptive_guard_and_decorator() -> None:
    lim = AdaptiveLimiter(initial_limit=10, min_limit=1, max_limit=20)

    @lim
    def ok() -> str:
        return "ok"

    @lim
    async def slow() -> None:
        raise TimeoutError()

    for _ in range(20):
        assert ok() == "ok"
    assert lim.limit == 10  # one call in flight is far below the limit: no growth
    before = lim.limit
    with pytest.raises(TimeoutError):
        run_async(slow())
    assert lim.limit < before  # a drop shrinks it
    one = AdaptiveLimiter(initial_limit=1, min_limit=1, max_limit=1)
    with one.guard() as t:
        assert t.inflight == 1 and one.in_flight == 1
        with pytest.raises(BulkheadFull):
            with one.guard():
                pass
    assert one.in_flight == 0 and lim.in_flight == 0


@pytest.mark.parametrize("kw", [dict(algorithm="pid"), dict(min_limit=0), dict(aimd_backoff=1.5),
                                dict(max_limit=1, min_limit=5), dict(algorithm="gradient", gradient_tolerance=0.5)])
def test_adaptive_bad_settings(kw: dict) -> None:
    with pytest.raises(InvalidArgument):
        AdaptiveLimiter(**kw)


def test_gradient() -> None:
    lim = AdaptiveLimiter("gradient", initial_limit=10, min_limit=1, max_limit=100)
    for _ in range(50):
        t = lim.try_acquire()
        assert t is not None
        lim.record(t, rtt=0.001)
    assert 1 <= lim.limit <= 100


def test_exports() -> None:
    for name in ("TokenBucket", "KeyedLimiter", "Bulkhead", "AdaptiveLimiter", "Decision", "Reason"):
        assert hasattr(resilience, name)
