"""CircuitBreaker, its decorator and context manager, and BreakerRegistry."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from datetime import timedelta

import pytest

from conftest import run_async
from resilience import (BreakerRegistry, BreakerState, CircuitBreaker, CircuitOpen, Full, InvalidArgument,
                        Outcome, Transition, TransitionCause)


@pytest.fixture(autouse=True, params=["c-guard", "cffi-wrapper"])
def decorator_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs every test with both implementations of the sync decorator."""
    import resilience.breaker as mod

    if request.param == "c-guard" and mod._speedups is None:
        pytest.skip("resilience._speedups not built")
    monkeypatch.setattr(mod, "USE_SPEEDUPS", request.param == "c-guard")
    return str(request.param)


def small(**kw: object) -> CircuitBreaker:
    settings = dict(window_size=4, minimum_calls=4, failure_rate_threshold=50, wait_in_open=60,
                    permitted_calls_in_half_open=2)
    settings.update(kw)
    return CircuitBreaker(**settings)  # type: ignore[arg-type]


class Boom(Exception):
    pass


def test_opens_after_failure_rate_and_rejects() -> None:
    b = small()
    assert b.state is BreakerState.CLOSED
    for outcome in (Outcome.SUCCESS, Outcome.SUCCESS, Outcome.FAILURE):
        assert b.record(b.try_acquire(), outcome)
    assert b.state is BreakerState.CLOSED  # 3 calls < minimum 4
    b.record(b.try_acquire(), Outcome.FAILURE)  # 2/4 = 50 % -> open
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as info:
        b.try_acquire()
    assert 59 < info.value.retry_after <= 60
    m = b.metrics()
    assert (m.state, m.calls, m.failed, m.not_permitted) == (BreakerState.OPEN, 4, 2, 1)
    assert m.failure_rate == 50.0
    assert b.transitions_to(BreakerState.OPEN) == 1


def test_decorator_sync_counts_exceptions() -> None:
    b = small()
    calls = []

    @b
    def work(x: int) -> int:
        calls.append(x)
        if x < 0:
            raise Boom()
        return x * 2

    assert work.__name__ == "work"
    assert work(2) == 4 and work(3) == 6
    for _ in range(2):
        with pytest.raises(Boom):
            work(-1)
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        work(5)
    assert calls == [2, 3, -1, -1]  # the rejected call never ran


def test_decorator_ignore_and_failure_filters() -> None:
    b = small(minimum_calls=2, window_size=2)

    @b(failure=(Boom,), ignore=(KeyError,))
    def work(e: BaseException) -> None:
        raise e

    for e in (KeyError("k"), ValueError("not a failure"), KeyError("k")):
        with pytest.raises(type(e)):
            work(e)
    m = b.metrics()
    assert m.calls == 0 and b.state is BreakerState.CLOSED  # ignored: not counted
    for _ in range(2):
        with pytest.raises(Boom):
            work(Boom())
    assert b.state is BreakerState.OPEN


def test_decorator_async() -> None:
    b = small()

    @b
    async def work(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise Boom()
        return "ok"

    async def main() -> None:
        assert await work(False) == "ok"
        assert await work(False) == "ok"
        for _ in range(2):
            with pytest.raises(Boom):
                await work(True)
        with pytest.raises(CircuitOpen):
            await work(False)

    run_async(main())
    assert b.metrics().failed == 2


def test_cancelled_async_call_is_ignored() -> None:
    b = small(minimum_calls=1, window_size=1)

    @b
    async def slow() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        t = asyncio.ensure_future(slow())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run_async(main())
    assert b.state is BreakerState.CLOSED and b.metrics().calls == 0


def test_guard_context_manager_sync_and_async() -> None:
    b = small()
    with b.guard():
        pass
    with pytest.raises(Boom):
        with b.guard():
            raise Boom()

    async def main() -> None:
        async with b.guard():
            pass
        with pytest.raises(Boom):
            async with b.guard():
                raise Boom()

    run_async(main())
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        with b.guard():
            pass


def test_half_open_probes_close_it_again() -> None:
    b = small(wait_in_open=0.05)
    b.force_open()
    b.transition_to(BreakerState.OPEN)
    time.sleep(0.08)
    p1 = b.try_acquire()  # wait over: half-open
    assert b.state is BreakerState.HALF_OPEN
    p2 = b.try_acquire()
    with pytest.raises(CircuitOpen):
        b.try_acquire()  # both probes out
    b.record(p1)
    b.record(p2)
    assert b.state is BreakerState.CLOSED


def test_stale_permit_is_not_counted() -> None:
    b = small()
    p = b.try_acquire()
    b.reset()
    assert b.record(p, Outcome.FAILURE) is False
    assert b.metrics().calls == 0


def test_slow_calls() -> None:
    b = small(slow_call_duration_threshold=timedelta(milliseconds=1), slow_call_rate_threshold=100)
    for _ in range(4):
        b.record(b.try_acquire(), Outcome.SUCCESS, duration=0.01)
    m = b.metrics()
    assert m.slow == 4 and b.state is BreakerState.OPEN


def test_forced_open_disabled_metrics_only() -> None:
    b = small()
    b.force_open()
    with pytest.raises(CircuitOpen) as info:
        b.try_acquire()
    assert info.value.retry_after == math.inf
    b.disable()
    for _ in range(10):
        b.record(b.try_acquire(), Outcome.FAILURE)
    assert b.state is BreakerState.DISABLED
    b.transition_to(BreakerState.METRICS_ONLY)
    for _ in range(10):
        b.record(b.try_acquire(), Outcome.FAILURE)
    assert b.state is BreakerState.METRICS_ONLY and b.metrics().failed == 4


def test_state_change_callback() -> None:
    b = small()
    seen: list = []
    ref = weakref.ref(b)  # a strong reference from the callback would keep b alive for ever

    @b.on_state_change
    def cb(t: Transition) -> None:
        seen.append(t)
        breaker = ref()
        assert breaker is not None and breaker.state == t.to_state  # calling back in is allowed

    b.force_open()
    b.reset()
    assert [(t.from_state, t.to_state, t.cause) for t in seen] == [
        (BreakerState.CLOSED, BreakerState.FORCED_OPEN, TransitionCause.MANUAL),
        (BreakerState.FORCED_OPEN, BreakerState.CLOSED, TransitionCause.MANUAL)]
    assert seen[1].generation == seen[0].generation + 1
    assert abs(seen[0].at - time.monotonic()) < 5
    del b, cb
    import gc

    gc.collect()
    assert ref() is None  # freed, and the callback with it


def test_callback_exception_is_contained(capsys: pytest.CaptureFixture) -> None:
    b = small()
    b.on_state_change(lambda t: 1 / 0)
    b.force_open()  # must not raise or crash
    assert b.state is BreakerState.FORCED_OPEN


def test_poll_automatic_transition() -> None:
    b = small(wait_in_open=0.02, automatic_transition=True)
    b.transition_to(BreakerState.OPEN)
    nxt = b.poll()
    assert nxt is not None and nxt > time.monotonic() - 1
    time.sleep(0.04)
    b.poll()
    assert b.state is BreakerState.HALF_OPEN


@pytest.mark.parametrize("kw", [
    dict(failure_rate_threshold=0), dict(failure_rate_threshold=101), dict(window_size=0),
    dict(window_size=70000), dict(wait_in_open=0), dict(wait_in_open=-1),
    dict(permitted_calls_in_half_open=0), dict(window_type="sliding"), dict(minimum_calls=0),
    dict(wait_in_open=float("nan")), dict(window_type="time", window_size=4000),
])
def test_bad_settings(kw: dict) -> None:
    with pytest.raises(InvalidArgument):
        CircuitBreaker(**kw)


def test_bad_types() -> None:
    with pytest.raises(TypeError):
        CircuitBreaker(wait_in_open="1s")
    with pytest.raises(TypeError):
        CircuitBreaker(no_such_setting=1)
    b = CircuitBreaker()
    with pytest.raises(InvalidArgument):
        b.record(b.try_acquire(), 7)
    with pytest.raises(InvalidArgument):
        b.transition_to(42)
    with pytest.raises(TypeError):
        b(42)  # type: ignore[call-overload]


def test_closed_handle() -> None:
    b = CircuitBreaker()
    b.close()
    with pytest.raises(InvalidArgument, match="closed"):
        b.try_acquire()


def test_threads_exact_accounting() -> None:
    b = CircuitBreaker(window_type="count", window_size=1000, minimum_calls=1000,
                       failure_rate_threshold=100)
    n_threads, per = 4, 5_000
    ok = [0] * n_threads

    def worker(i: int) -> None:
        for _ in range(per):
            if b.record(b.try_acquire(), Outcome.SUCCESS):
                ok[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(ok) == n_threads * per
    m = b.metrics()
    assert m.calls == 1000 and m.failed == 0 and m.not_permitted == 0


def test_registry() -> None:
    reg = BreakerRegistry(max_entries=2)
    a = reg.get("a", window_size=4, minimum_calls=4)
    assert "a" in reg and b"a" in reg and "zz" not in reg and 5 not in reg
    assert len(reg) == 1
    a2 = reg.get("a")
    a.force_open()
    assert a2.state is BreakerState.FORCED_OPEN  # the same breaker
    found = reg.find("a")
    assert found is not None and found.state is BreakerState.FORCED_OPEN
    assert reg.find("nope") is None
    b = reg.get("b")
    with pytest.raises(Full):
        reg.get("c")  # both held by handles here: none idle
    del b
    c = reg.get("c")  # "b" was idle (closed, no handle) and is evicted
    assert len(reg) == 2 and "b" not in reg and c.state is BreakerState.CLOSED
    assert reg.remove("a") is True and reg.remove("a") is False
    assert a.state is BreakerState.FORCED_OPEN  # handles outlive removal
    reg.close()
    assert a2.state is BreakerState.FORCED_OPEN  # and the registry


def test_registry_bad_args() -> None:
    with pytest.raises(InvalidArgument):
        BreakerRegistry(0)
    reg = BreakerRegistry()
    with pytest.raises(TypeError):
        reg.get(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        reg.get("x", window_size=0)


def test_interpreter_exit_with_live_callbacks_does_not_hang() -> None:
    # Breakers freed by the garbage collector (or at exit) run their
    # callbacks' user_free from inside whatever triggered the collection.
    from conftest import run_python

    r = run_python(
        "import gc, resilience as r\n"
        "keep = []\n"
        "for i in range(2000):\n"
        "    b = r.CircuitBreaker()\n"
        "    b.on_state_change(lambda t, b=b: None)  # a cycle through C: lives until exit\n"
        "    b.force_open()\n"
        "    keep.append(r.BreakerRegistry().get('x'))\n"
        "    keep[-1].on_state_change(print)\n"
        "    gc.collect() if i % 100 == 0 else None\n"
        "print('done')\n", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"


def test_decorated_function_outlives_close() -> None:
    b = small()

    @b
    def f() -> int:
        return 1

    b.close()
    assert f() == 1  # the decorated function holds the breaker alive
    with pytest.raises(InvalidArgument, match="closed"):
        b.try_acquire()
    with pytest.raises(InvalidArgument, match="closed"):
        b(lambda: None)


def test_decorator_on_methods_and_signature() -> None:
    import inspect

    b = small()

    class Client:
        def __init__(self) -> None:
            self.n = 0

        @b
        def get(self, path: str, *, retries: int = 0) -> str:
            """Fetch."""
            self.n += 1
            return f"{path}:{retries}"

    c = Client()
    assert c.get("/a", retries=2) == "/a:2" and c.n == 1
    assert Client.get(c, "/b") == "/b:0"
    assert Client.get.__name__ == "get" and Client.get.__doc__ == "Fetch."
    assert list(inspect.signature(Client.get).parameters) == ["self", "path", "retries"]
    assert b.metrics().calls == 2
