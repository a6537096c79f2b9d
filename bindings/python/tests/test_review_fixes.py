"""Bugs a review found through the documented API, each pinned by a test."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
import time

import pytest

import resilience as rs


def _handles() -> list:
    p, c = rs.spsc_queue(4)
    return [rs.Cache(), rs.IdempotencyStore(), rs.MpmcQueue(4), rs.BytesQueue(4, 8), p, c,
            rs.TokenBucket(10), rs.KeyedLimiter(10), rs.Bulkhead(1), rs.AdaptiveLimiter(),
            rs.CircuitBreaker(), rs.BreakerRegistry()]


@pytest.mark.parametrize("op", [copy.copy, copy.deepcopy, pickle.dumps])
def test_native_handles_refuse_copies(op) -> None:  # type: ignore[no-untyped-def]
    # A copy would share the native pointer: close() on one then used
    # freed memory through the other (a segfault).
    for h in _handles():
        with pytest.raises(TypeError, match="cannot be"):
            op(h)


def test_answers_carry_no_stale_detail() -> None:
    with pytest.raises(rs.InvalidArgument):
        rs.TokenBucket(2**64 - 1)
    q = rs.MpmcQueue(1)
    q.push(1)
    with pytest.raises(rs.Full) as full:
        q.push(2)
    assert "rsl_quota" not in str(full.value) and "period" not in str(full.value)
    q.pop()
    with pytest.raises(rs.Empty) as empty:
        q.pop()
    assert "rsl_quota" not in str(empty.value)


def test_a_reused_breaker_guard_records_each_permit() -> None:
    b = rs.CircuitBreaker(window_size=10, minimum_calls=2, wait_in_open=0.05, permitted_calls_in_half_open=2)
    guard = b.guard(failure=(OSError,))
    b.transition_to(rs.BreakerState.OPEN)
    time.sleep(0.06)

    async def call() -> None:
        async with guard:
            await asyncio.sleep(0.01)

    async def both() -> list:
        return await asyncio.gather(call(), call(), return_exceptions=True)

    assert asyncio.run(both()) == [None, None]
    assert b.state == rs.BreakerState.CLOSED, "both probes were recorded"
    # Nested use of one guard, and threads sharing it.
    with guard:
        with guard:
            pass
    errors: list = []

    def worker() -> None:
        try:
            for _ in range(200):
                with guard:
                    pass
        except Exception as e:  # pragma: no cover - the failure being tested
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert b.metrics().calls == 10  # a full window of successes, nothing leaked


def test_a_reused_adaptive_guard_reports_each_token() -> None:
    lim = rs.AdaptiveLimiter()
    g = lim.guard()

    def worker() -> None:
        for _ in range(100):
            try:
                with g:
                    pass
            except rs.BulkheadFull:
                pass

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert lim.stats().in_flight == 0


def test_guard_exit_without_enter_is_a_clear_error() -> None:
    g = rs.CircuitBreaker().guard()
    with pytest.raises(RuntimeError, match="without a matching enter"):
        g.__exit__(None, None, None)


def test_bad_exception_classes_fail_at_decoration() -> None:
    b = rs.CircuitBreaker()
    with pytest.raises(TypeError, match="failure must be an exception class"):
        b(failure="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ignore must be"):
        b.guard(ignore=(int,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="drop must be"):
        rs.AdaptiveLimiter().guard(drop=(3,))  # type: ignore[arg-type]


_BREAKER = rs.CircuitBreaker()


@_BREAKER
def guarded_at_module_level(x: int) -> int:
    return x + 1


def test_a_decorated_function_pickles_and_copies_as_a_function() -> None:
    # Whichever implementation (the C guard or the cffi wrapper) decorated it.
    assert pickle.loads(pickle.dumps(guarded_at_module_level)) is guarded_at_module_level
    assert copy.copy(guarded_at_module_level) is guarded_at_module_level
    assert copy.deepcopy(guarded_at_module_level) is guarded_at_module_level
    assert guarded_at_module_level(1) == 2


def test_bytes_queue_push_many_takes_bytes_only() -> None:
    q = rs.BytesQueue(4, 8)
    with pytest.raises(TypeError):
        q.push_many([3, 5])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        q.push_many(["ab"])  # type: ignore[list-item]
    assert len(q) == 0
    assert q.push_many([b"a", bytearray(b"bc"), memoryview(b"d")]) == 3
    assert q.pop_many(10) == [b"a", b"bc", b"d"]


def test_bytes_queue_sizes_by_messages_not_max_len() -> None:
    q = rs.BytesQueue(8, 1 << 24)
    q.push(b"x")
    assert q.pop_many(1000) == [b"x"]
    big = bytes(range(256)) * 1000  # longer than the 64 KiB scratch
    q.push(big)
    q.push(big)
    q.push(b"after")
    assert q.pop() == big
    assert q.pop_many(10) == [big]
    assert q.try_pop() == b"after"
    assert q.try_pop(b"none") == b"none"


def test_pop_many_with_a_huge_count_allocates_by_what_can_be_queued() -> None:
    q = rs.MpmcQueue(4)
    q.push(7)
    assert q.pop_many(2**30) == [7]
    p, c = rs.spsc_queue(4)
    p.push(8)
    assert c.pop_many(2**30) == [8]


def test_async_bulkhead_honours_max_waiters_and_counts_no_polls() -> None:
    never = rs.Bulkhead(1, max_wait=0.2)  # max_waiters 0: never wait
    never.acquire()

    async def enter(bh: rs.Bulkhead) -> None:
        async with bh:
            pass

    with pytest.raises(rs.BulkheadFull):
        asyncio.run(enter(never))

    bh = rs.Bulkhead(1, max_waiters=1, max_wait=0.3)
    bh.acquire()
    before = bh.stats().rejected

    async def two() -> list:
        return await asyncio.gather(enter(bh), enter(bh), return_exceptions=True)

    results = asyncio.run(two())
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds == ["BulkheadFull", "Timeout"], results
    # The waiter's polling is not counted as refused acquires.
    assert bh.stats().rejected - before <= 2


def test_out_of_range_numbers_are_invalid_arguments() -> None:
    b = rs.CircuitBreaker()
    with pytest.raises(rs.InvalidArgument):
        b.transition_to(2**40)
    with pytest.raises(rs.InvalidArgument):
        b.record(rs.Permit(10**30, 0))
    with pytest.raises(rs.InvalidArgument):
        b.record(rs.Permit(-1, 0), duration=1)


def test_a_guard_entered_and_exited_in_different_contexts_records_its_permit() -> None:
    # As FastAPI runs a sync dependency's enter and exit: two thread-pool
    # calls, each in its own copy of the context.
    import contextvars

    b = rs.CircuitBreaker(window_size=10, minimum_calls=2, wait_in_open=0.05, permitted_calls_in_half_open=1)
    g = b.guard()
    b.transition_to(rs.BreakerState.OPEN)
    time.sleep(0.06)
    contextvars.copy_context().run(g.__enter__)
    assert b.state == rs.BreakerState.HALF_OPEN
    contextvars.copy_context().run(g.__exit__, None, None, None)
    assert b.state == rs.BreakerState.CLOSED, "the probe's success was recorded"
    with pytest.raises(RuntimeError, match="without a matching enter"):
        contextvars.copy_context().run(g.__exit__, None, None, None)
