"""IdempotencyStore and the @idempotent decorator."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from conftest import run_async
from resilience import (JSON, BeginState, Full, IdempotencyStore, InProgress, InvalidArgument, Mismatch,
                        NotFound, NotOwner, TooLarge, idempotent)


def test_begin_complete_replay() -> None:
    s = IdempotencyStore()
    b = s.begin("k", b"fp", lease=10)
    assert b.state is BeginState.STARTED and b.started and b.token
    again = s.begin("k", b"fp")
    assert again.state is BeginState.IN_PROGRESS and 0 < again.retry_after <= 10
    s.complete("k", b.token, b"response")
    done = s.begin("k", b"fp")
    assert done.state is BeginState.COMPLETED and done.response == b"response" and not done.started
    with pytest.raises(Mismatch):
        s.begin("k", b"other")
    st = s.stats()
    assert (st.started, st.replays, st.in_progress, st.mismatches, st.completed) == (1, 1, 1, 1, 1)


def test_big_response_is_replayed_whole() -> None:
    s = IdempotencyStore(max_response_len=4 << 20, shards=1)
    b = s.begin(b"big")
    body = bytes(range(256)) * 8192  # 2 MiB > scratch buffer
    s.complete(b"big", b.token, body)
    assert s.begin(b"big").response == body


def test_owner_rules() -> None:
    s = IdempotencyStore()
    b = s.begin("k")
    with pytest.raises(NotOwner):
        s.complete("k", b.token + 1, b"x")
    with pytest.raises(NotOwner):
        s.abandon("k", b.token + 1)
    s.abandon("k", b.token)
    with pytest.raises(NotFound):
        s.complete("k", b.token, b"x")
    assert s.begin("k").started  # a retry starts afresh


def test_expired_lease_is_taken_over() -> None:
    s = IdempotencyStore()
    first = s.begin("k", lease=0.02)
    time.sleep(0.05)
    second = s.begin("k", lease=10)
    assert second.state is BeginState.STARTED_TAKEOVER and second.started
    with pytest.raises(NotOwner):
        s.complete("k", first.token, b"late")


def test_retention() -> None:
    s = IdempotencyStore()
    b = s.begin("k")
    s.complete("k", b.token, b"x", retention=0.02)
    time.sleep(0.05)
    assert s.begin("k").started
    assert s.sweep() >= 0


def test_full_sheds_load() -> None:
    s = IdempotencyStore(max_bytes=4096, shards=1, max_key_len=16, max_fingerprint_len=0,
                         max_response_len=16)
    with pytest.raises(Full):
        for i in range(1000):
            s.begin(f"k{i}")


@pytest.mark.parametrize("kw", [dict(shards=3), dict(retention=0), dict(max_key_len=0)])
def test_bad_settings(kw: dict) -> None:
    with pytest.raises(InvalidArgument):
        IdempotencyStore(**kw)


def test_bad_arguments() -> None:
    s = IdempotencyStore(max_key_len=8)
    with pytest.raises(InvalidArgument):
        s.begin("")
    with pytest.raises(TooLarge):
        s.begin("123456789")
    with pytest.raises(InvalidArgument):
        s.begin("k", lease=0)
    with pytest.raises(TypeError):
        s.begin(1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        s.complete("k", -1, b"")
    with pytest.raises(TypeError):
        s.complete("k", 1, "str")  # type: ignore[arg-type]


def test_decorator_runs_once_and_replays() -> None:
    s = IdempotencyStore()
    runs: list = []

    @idempotent(s, key="request_id")
    def charge(request_id: str, amount: int, note: str = "") -> dict:
        runs.append(request_id)
        return {"id": request_id, "amount": amount}

    assert charge("r1", 10) == {"id": "r1", "amount": 10}
    assert charge("r1", 10) == {"id": "r1", "amount": 10}
    assert charge(request_id="r1", amount=10, note="") == {"id": "r1", "amount": 10}
    assert runs == ["r1"]
    with pytest.raises(Mismatch):
        charge("r1", 11)
    charge("r2", 11)
    assert runs == ["r1", "r2"]


def test_decorator_exception_abandons() -> None:
    s = IdempotencyStore()
    attempts: list = []

    @idempotent(s, key=lambda rid: rid, serializer=JSON)
    def flaky(rid: str) -> list:
        attempts.append(rid)
        if len(attempts) == 1:
            raise ConnectionError("try again")
        return [len(attempts)]

    with pytest.raises(ConnectionError):
        flaky("x")
    assert flaky("x") == [2] and flaky("x") == [2]
    assert attempts == ["x", "x"]


def test_decorator_method_and_no_fingerprint() -> None:
    s = IdempotencyStore()

    class Service:
        def __init__(self) -> None:
            self.calls = 0

        @idempotent(s, key="rid", fingerprint=False)
        def handle(self, rid: str, payload: object) -> int:
            self.calls += 1
            return self.calls

    svc = Service()
    assert svc.handle("a", object()) == 1
    assert svc.handle("a", object()) == 1  # unpicklable-ish args fine: no fingerprint
    assert svc.calls == 1


def test_decorator_bad_key_name() -> None:
    s = IdempotencyStore()
    with pytest.raises(TypeError):
        @idempotent(s, key="nope")
        def f(x: int) -> int:
            return x


def test_decorator_in_progress_and_wait() -> None:
    s = IdempotencyStore()
    started = threading.Event()
    release = threading.Event()
    runs: list = []

    @idempotent(s, key="k", wait=0)
    def slow(k: str) -> str:
        runs.append(k)
        started.set()
        release.wait(5)
        return "done"

    @idempotent(s, key="k", wait=5)
    def waiting(k: str) -> str:
        return "should not run"

    results: list = []
    t = threading.Thread(target=lambda: results.append(slow("a")))
    t.start()
    started.wait(5)
    with pytest.raises(InProgress) as info:
        slow("a")
    assert info.value.retry_after > 0
    threading.Timer(0.05, release.set).start()
    # Same key, same arguments (fingerprint of {"k": "a"}), different function:
    # waits for the first call and replays its result.
    assert waiting("a") == "done"
    t.join()
    assert results == ["done"] and runs == ["a"]


def test_decorator_threads_run_exactly_once() -> None:
    s = IdempotencyStore()
    runs: list = []
    lock = threading.Lock()

    @idempotent(s, key="k", wait=10)
    def work(k: str) -> int:
        with lock:
            runs.append(k)
        time.sleep(0.02)
        return 42

    out: list = []
    ts = [threading.Thread(target=lambda: out.append(work("same"))) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == [42] * 8 and runs == ["same"]


def test_decorator_async() -> None:
    s = IdempotencyStore()
    runs: list = []

    @idempotent(s, key="rid", wait=5)
    async def handler(rid: str) -> str:
        runs.append(rid)
        await asyncio.sleep(0.02)
        return rid.upper()

    async def main() -> list:
        return await asyncio.gather(*[handler("a") for _ in range(5)], handler("b"))

    assert run_async(main()) == ["A"] * 5 + ["B"]
    assert sorted(runs) == ["a", "b"]
