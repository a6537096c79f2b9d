"""MpmcQueue and the SPSC ends: semantics, batches, bad input, threads."""

from __future__ import annotations

import threading
import time

import pytest

import resilience
from resilience import Empty, Full, InvalidArgument, MpmcQueue, spsc_queue


def test_mpmc_fifo_full_empty() -> None:
    q = MpmcQueue(3)
    assert q.capacity == 4 and len(q) == 0
    for i in range(4):
        q.push(i)
    with pytest.raises(Full):
        q.push(99)
    assert q.try_push(99) is False
    assert len(q) == 4
    assert [q.pop() for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(Empty):
        q.pop()
    assert q.try_pop() is None and q.try_pop(-1) == -1


def test_mpmc_extreme_payloads() -> None:
    q = MpmcQueue(2)
    q.push(0)
    q.push(2**64 - 1)
    assert q.pop() == 0 and q.pop() == 2**64 - 1


def test_mpmc_batches() -> None:
    q = MpmcQueue(8)
    assert q.push_many(range(5)) == 5
    assert q.push_many([10, 11, 12, 13, 14]) == 3  # stops when full
    assert q.pop_many(3) == [0, 1, 2]
    assert q.pop_many(100) == [3, 4, 10, 11, 12]
    assert q.pop_many(10) == [] and q.pop_many(0) == []
    assert q.push_many([]) == 0


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, "1", None])
def test_mpmc_bad_payloads(bad: object) -> None:
    q = MpmcQueue(4)
    with pytest.raises((InvalidArgument, TypeError)):
        q.push(bad)  # type: ignore[arg-type]
    with pytest.raises((InvalidArgument, TypeError)):
        q.push_many([1, bad])  # type: ignore[list-item]
    assert len(q) == 0  # nothing half-pushed


@pytest.mark.parametrize("cap", [0, -1, 2**30 + 1, 2**64])
def test_bad_capacity(cap: int) -> None:
    with pytest.raises(InvalidArgument):
        MpmcQueue(cap)
    with pytest.raises(InvalidArgument):
        spsc_queue(cap)
    with pytest.raises(TypeError):
        MpmcQueue("8")  # type: ignore[arg-type]


def test_closed_queue_raises_not_crashes() -> None:
    q = MpmcQueue(4)
    q.close()
    q.close()  # idempotent
    with pytest.raises(InvalidArgument, match="closed"):
        q.push(1)
    with pytest.raises(InvalidArgument, match="closed"):
        q.pop()
    with MpmcQueue(2) as q2:
        q2.push(1)


def test_mpmc_threads_exact_accounting() -> None:
    q = MpmcQueue(1024)
    producers, consumers, per = 4, 4, 20_000
    popped: list = [[] for _ in range(consumers)]
    done = threading.Event()

    def produce(base: int) -> None:
        vals = list(range(base * per, (base + 1) * per))
        i = 0
        while i < len(vals):
            if i % 2:
                i += q.push_many(vals[i:i + 64])
            elif q.try_push(vals[i]):
                i += 1

    def consume(idx: int) -> None:
        out = popped[idx]
        while True:
            got = q.pop_many(32)
            if got:
                out.extend(got)
                continue
            v = q.try_pop()
            if v is not None:
                out.append(v)
            elif done.is_set() and len(q) == 0:
                return

    ps = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    cs = [threading.Thread(target=consume, args=(i,)) for i in range(consumers)]
    for t in ps + cs:
        t.start()
    for t in ps:
        t.join()
    done.set()
    for t in cs:
        t.join()
    everything = sorted(v for part in popped for v in part)
    assert everything == list(range(producers * per))  # each exactly once


def test_spsc_roundtrip_and_batches() -> None:
    p, c = spsc_queue(4)
    assert p.capacity == 4
    for i in range(4):
        p.push(i)
    assert p.try_push(9) is False
    with pytest.raises(Full):
        p.push(9)
    assert len(p) == 4 and len(c) == 4
    assert c.pop() == 0
    assert c.pop_many(10) == [1, 2, 3]
    assert c.try_pop("none") == "none"
    with pytest.raises(Empty):
        c.pop()
    assert p.push_many(range(10)) == 4


def test_spsc_closed_when_consumer_freed() -> None:
    p, c = spsc_queue(2)
    c.close()
    p.push(1)
    p.push(2)
    with pytest.raises(resilience.Closed):
        p.push(3)  # full because nobody will ever pop


def test_spsc_threads_in_order() -> None:
    p, c = spsc_queue(256)
    n = 50_000
    got: list = []

    def consume() -> None:
        while len(got) < n:
            batch = c.pop_many(256)
            if batch:
                got.extend(batch)
            else:
                time.sleep(0)  # let the producer have the GIL

    t = threading.Thread(target=consume)
    t.start()
    vals = list(range(n))
    i = 0
    while i < n:
        pushed = p.push_many(vals[i:i + 128]) if i % 3 else int(p.try_push(vals[i]))
        if not pushed:
            time.sleep(0)
        i += pushed
    t.join()
    assert got == vals


def test_spsc_end_refuses_two_threads_at_once() -> None:
    p, _c = spsc_queue(4)
    assert p._lock.acquire(False)  # another thread is inside a call
    try:
        with pytest.raises(RuntimeError, match="one thread at a time"):
            p.push(1)
    finally:
        p._lock.release()
    p.push(1)
