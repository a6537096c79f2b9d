"""BytesQueue: semantics, batches, bad input, threads."""

from __future__ import annotations

import threading

import pytest

from resilience import BytesQueue, Empty, Full, TooLarge


def test_fifo_full_empty_too_large() -> None:
    q = BytesQueue(3, 8)
    assert q.capacity == 4 and q.max_len == 8 and len(q) == 0
    for m in [b"a", b"", b"12345678", bytearray(b"xy")]:
        q.push(m)
    with pytest.raises(Full):
        q.push(b"z")
    assert q.try_push(b"z") is False
    assert [q.pop() for _ in range(4)] == [b"a", b"", b"12345678", b"xy"]
    with pytest.raises(Empty):
        q.pop()
    assert q.try_pop() is None and q.try_pop(b"-") == b"-"
    with pytest.raises(TooLarge):
        q.push(b"123456789")
    with pytest.raises(TooLarge):
        q.try_push(b"123456789")


def test_batches() -> None:
    q = BytesQueue(4, 5)
    assert q.push_many([b"one", b"two", b"three", b"", b"extra"]) == 4
    assert q.pop_many(3) == [b"one", b"two", b"three"]
    assert q.pop_many(10) == [b""]
    assert q.pop_many(10) == []
    assert q.push_many([]) == 0
    with pytest.raises(TooLarge):
        q.push_many([b"ok", b"toolong"])
    assert q.pop() == b"ok"


def test_close_and_bad_args() -> None:
    with BytesQueue(2, 4) as q:
        q.push(b"left")
    with pytest.raises(Exception):
        q.push(b"x")
    with pytest.raises(Exception):
        BytesQueue(0, 4)


def test_threads_deliver_everything_intact() -> None:
    q = BytesQueue(16, 16)
    n = 2000

    def produce(p: int) -> None:
        for i in range(n):
            m = b"%d:%d" % (p, i)
            while not q.try_push(m):
                pass

    ts = [threading.Thread(target=produce, args=(p,)) for p in range(2)]
    for t in ts:
        t.start()
    got = []
    while len(got) < 2 * n:
        m = q.try_pop()
        if m is not None:
            got.append(m)
    for t in ts:
        t.join()
    assert sorted(got) == sorted(b"%d:%d" % (p, i) for p in range(2) for i in range(n))
