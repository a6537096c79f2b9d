"""Circuit breakers (Resilience4j's model) and a bounded registry of them.

Typical use::

    breaker = CircuitBreaker(failure_rate_threshold=50, window_size=20, minimum_calls=10,
                             wait_in_open=30)

    @breaker                      # sync or async def
    def fetch(url): ...

    with breaker.guard():         # or explicitly
        ...

A call that raises counts as a failure (``failure=`` chooses which exceptions
count, ``ignore=`` which are not counted at all); when the breaker does not
permit a call, :class:`~resilience.CircuitOpen` is raised with ``retry_after``.
"""

from __future__ import annotations

import enum
import functools
import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar, Union, overload

from . import _fast
from ._native import ffi, lib

try:
    from . import _speedups  # type: ignore[attr-defined]
except ImportError:  # optional: built by setup.py when a C compiler allows
    _speedups = None  # type: ignore[assignment]

#: Whether ``@breaker`` on a plain (not async) function uses the C guard of
#: resilience._speedups (set to False to use the cffi wrapper; both behave
#: the same, the C guard costs about half as much per call).
USE_SPEEDUPS = True
if _speedups is not None:
    if ffi.sizeof("rsl_permit") == 8:
        _speedups.init(int(ffi.cast("uintptr_t", ffi.addressof(lib, "rsl_breaker_try_acquire"))),
                       int(ffi.cast("uintptr_t", ffi.addressof(lib, "rsl_breaker_record"))))
    else:  # pragma: no cover - a permit layout the C guard does not know
        _speedups = None
from ._util import U64_MAX, Duration, Held, Key, NoCopy, from_ns, scratch, to_float, to_int, to_key, to_ns
from .errors import CircuitOpen, InvalidArgument, NotFound, error_for

__all__ = [
    "BreakerState",
    "Outcome",
    "TransitionCause",
    "Permit",
    "Transition",
    "BreakerMetrics",
    "CircuitBreaker",
    "BreakerRegistry",
]

F = TypeVar("F", bound=Callable[..., Any])


class BreakerState(enum.IntEnum):
    """A breaker state (RSL_BREAKER_*)."""

    CLOSED = 0
    """Calls pass and are recorded in the sliding window."""
    OPEN = 1
    """Calls are rejected until the wait in open is over."""
    HALF_OPEN = 2
    """A limited number of probe calls pass; their results decide."""
    DISABLED = 3
    """Calls pass and nothing is recorded (entered only by hand)."""
    FORCED_OPEN = 4
    """Every call is rejected (entered only by hand)."""
    METRICS_ONLY = 5
    """Calls pass and are recorded, but the breaker never opens."""


class Outcome(enum.IntEnum):
    """How a call ended (RSL_OUTCOME_*)."""

    SUCCESS = 0
    """The call succeeded (it may still count as slow)."""
    FAILURE = 1
    """The call failed."""
    IGNORED = 2
    """Not counted at all; in half-open the probe slot is given back."""


class TransitionCause(enum.IntEnum):
    """Why a state change happened (RSL_BREAKER_CAUSE_*)."""

    FAILURE_RATE = 0
    """The failure rate reached its threshold."""
    SLOW_CALL_RATE = 1
    """The slow-call rate reached its threshold."""
    WAIT_ELAPSED = 2
    """The wait in open was over."""
    PROBES_PASSED = 3
    """Every half-open probe finished below both thresholds."""
    HALF_OPEN_TIMEOUT = 4
    """The half-open probes did not finish within the maximum wait."""
    MANUAL = 5
    """A manual transition (:meth:`CircuitBreaker.transition_to`)."""


class Permit:
    """Permission to make one call: record it exactly once with
    :meth:`CircuitBreaker.record`. Carries the breaker generation that issued it,
    so a result arriving after a state change is not counted against the new
    state."""

    __slots__ = ("generation", "started_ns")

    def __init__(self, generation: int, started_ns: int) -> None:
        #: Generation of the state that issued the permit.
        self.generation = generation
        #: time.monotonic_ns() when it was issued (used as the default duration).
        self.started_ns = started_ns

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation})"


@dataclass(frozen=True)
class Transition:
    """A state change, as given to :meth:`CircuitBreaker.on_state_change` callbacks."""

    from_state: BreakerState
    """The state left."""
    to_state: BreakerState
    """The state entered."""
    cause: TransitionCause
    """Why."""
    generation: int
    """Generation of the new state (orders concurrent callbacks)."""
    at: float
    """When, in seconds of CLOCK_MONOTONIC (comparable with ``time.monotonic()``)."""


@dataclass(frozen=True)
class BreakerMetrics:
    """A snapshot of a breaker's metrics."""

    state: BreakerState
    """The current state."""
    generation: int
    """Transitions since creation."""
    calls: int
    """Calls in the current window (or finished half-open probes)."""
    failed: int
    """Of which failed."""
    slow: int
    """Of which slow."""
    not_permitted: int
    """Calls rejected since creation."""
    time_in_state: float
    """Seconds since the current state was entered."""
    failure_rate: Optional[float]
    """Failed / calls in percent, None below the minimum number of calls."""
    slow_call_rate: Optional[float]
    """Slow / calls in percent, None below the minimum number of calls."""


_WINDOW_TYPES = {"count": 0, "time": 1}


def _config(kw: Dict[str, Any]) -> Any:
    """An rsl_breaker_config from keyword arguments (None: the library default)."""
    cfg = ffi.new("rsl_breaker_config *", lib.rsl_breaker_config_default())
    v = kw.pop("failure_rate_threshold", None)
    if v is not None:
        cfg.failure_rate_threshold = to_float(v, "failure_rate_threshold", 0.0, 100.0, lo_open=True)
    v = kw.pop("slow_call_rate_threshold", None)
    if v is not None:
        cfg.slow_call_rate_threshold = to_float(v, "slow_call_rate_threshold", 0.0, 100.0, lo_open=True)
    v = kw.pop("slow_call_duration_threshold", None)
    if v is not None:
        cfg.slow_call_duration_threshold_ns = to_ns(v, "slow_call_duration_threshold")
    v = kw.pop("wait_in_open", None)
    if v is not None:
        cfg.wait_in_open_ns = to_ns(v, "wait_in_open", allow_zero=False)
    v = kw.pop("max_wait_in_half_open", None)
    if v is not None:
        cfg.max_wait_in_half_open_ns = to_ns(v, "max_wait_in_half_open")
    v = kw.pop("permitted_calls_in_half_open", None)
    if v is not None:
        cfg.permitted_calls_in_half_open = to_int(v, "permitted_calls_in_half_open", 1, 1023)
    v = kw.pop("window_type", None)
    if v is not None:
        if v not in _WINDOW_TYPES:
            raise InvalidArgument(f"window_type must be 'count' or 'time', not {v!r}")
        cfg.window_type = _WINDOW_TYPES[v]
    v = kw.pop("window_size", None)
    if v is not None:
        cfg.window_size = to_int(v, "window_size", 1, 65536)
    v = kw.pop("minimum_calls", None)
    if v is not None:
        cfg.minimum_calls = to_int(v, "minimum_calls", 1, 2**32 - 1)
    v = kw.pop("automatic_transition", None)
    if v is not None:
        cfg.automatic_transition = 1 if v else 0
    if kw:
        raise TypeError(f"unexpected breaker setting(s): {', '.join(sorted(kw))}")
    return cfg


# State-change callbacks: the C library keeps `user` (an id into this table)
# until the breaker is destroyed, then calls _user_free(user) once.
_callbacks: Dict[int, Callable[[Transition], None]] = {}
_callback_ids = itertools.count(1)
# No lock around the table: its dict operations and next() on the counter are
# atomic under the GIL, and _c_user_free can run inside a garbage collection
# triggered anywhere (a non-reentrant lock held there would deadlock).


def _on_transition_error(exc_type: Any, exc: Any, tb: Any) -> None:
    import sys
    import traceback

    print("resilience: exception in a breaker state-change callback (ignored):", file=sys.stderr)
    traceback.print_exception(exc_type, exc, tb)


@ffi.callback("void(void *, const struct rsl_breaker_transition *)", onerror=_on_transition_error)
def _c_on_transition(user: Any, t: Any) -> None:
    callback = _callbacks.get(int(ffi.cast("uintptr_t", user)))
    if callback is not None:
        callback(Transition(BreakerState(getattr(t, "from")), BreakerState(t.to), TransitionCause(t.cause),
                            t.generation, t.at_ns / 1e9))


@ffi.callback("void(void *)", onerror=lambda *exc: None)
def _c_user_free(user: Any) -> None:
    _callbacks.pop(int(ffi.cast("uintptr_t", user)), None)


class CircuitBreaker(NoCopy):
    """A circuit breaker: closed, open, half-open, plus disabled, forced open
    and metrics-only. Thread-safe; the closed-state check is one atomic load
    in C.

    All settings are keyword-only; omitted ones take Resilience4j's defaults:

    Args:
        failure_rate_threshold: percent in (0, 100] at or above which it opens (50).
        slow_call_rate_threshold: percent in (0, 100] of slow calls that opens it (100).
        slow_call_duration_threshold: a call longer than this is slow (60 s).
        window_type: ``"count"`` (last ``window_size`` calls) or ``"time"``
            (calls of the last ``window_size`` seconds). Default ``"count"``.
        window_size: calls (1..65536) or seconds (1..3600); default 100.
        minimum_calls: calls needed before a rate is computed (100).
        wait_in_open: time in open before probes are let through (60 s).
        permitted_calls_in_half_open: probe calls in half-open, 1..1023 (10).
        max_wait_in_half_open: longest time in half-open, 0 = for ever (0).
        automatic_transition: :meth:`poll` moves open to half-open when the
            wait is over (else the next acquire does). Default False.
        name: a label for repr and errors (not sent to the library).

    Durations are float seconds or ``datetime.timedelta``.
    """

    __slots__ = ("_ptr", "name", "__weakref__")

    def __init__(self, *, name: Optional[str] = None, **settings: Any) -> None:
        cfg = _config(settings)
        out = ffi.new("rsl_breaker **")
        st = lib.rsl_breaker_new(cfg, out)
        if st:
            raise error_for(st, "CircuitBreaker")
        self._ptr = ffi.gc(out[0], lib.rsl_breaker_free)
        self.name = name

    @classmethod
    def _adopt(cls, ptr: Any, name: Optional[str]) -> "CircuitBreaker":
        self = cls.__new__(cls)
        self._ptr = ffi.gc(ptr, lib.rsl_breaker_free)
        self.name = name
        return self

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name is not None else ""
        try:
            return f"<CircuitBreaker{label} {self.state.name}>"
        except Exception:
            return f"<CircuitBreaker{label} closed handle>"

    # -- the two primitive operations --------------------------------------
    def try_acquire(self) -> Permit:
        """Asks to make a call now. Returns a :class:`Permit` to record later
        exactly once, or raises :class:`CircuitOpen` (with ``retry_after``
        seconds; ``math.inf`` when forced open)."""
        gen = _fast.breaker_enter(self._ptr)
        if gen < 0:
            raise self._refused(-gen)
        return Permit(gen, _fast.now_ns())

    def record(self, permit: Permit, outcome: Union[Outcome, int] = Outcome.SUCCESS,
               duration: Optional[Duration] = None) -> bool:
        """Records how the call ``permit`` was issued for ended. ``duration``
        defaults to the time since the permit was issued. Returns False when
        the permit was stale (the state changed since; nothing recorded)."""
        if not isinstance(outcome, int) or isinstance(outcome, bool) or not 0 <= outcome <= 2:
            raise InvalidArgument(f"outcome must be an Outcome, not {outcome!r}")
        g, t = permit.generation, permit.started_ns
        if type(g) is not int or not 0 <= g <= U64_MAX or type(t) is not int or not 0 <= t <= U64_MAX:
            raise InvalidArgument(f"{permit!r} is not a permit this breaker issued")
        if duration is None:
            st = _fast.breaker_exit(self._ptr, permit.generation, outcome, permit.started_ns)
        else:
            p = scratch.permit
            p.generation = permit.generation
            st = lib.rsl_breaker_record(self._ptr, p[0], outcome, to_ns(duration, "duration"))
        if st == 0:
            return True
        if st == 107:
            return False
        raise self._error(st)

    # -- decorator / context manager --------------------------------------
    @overload
    def __call__(self, func: F) -> F: ...
    @overload
    def __call__(self, func: None = None, *, failure: Tuple[Type[BaseException], ...] = ...,
                 ignore: Tuple[Type[BaseException], ...] = ...) -> Callable[[F], F]: ...

    def __call__(self, func: Optional[F] = None, *, failure: Tuple[Type[BaseException], ...] = (Exception,),
                 ignore: Tuple[Type[BaseException], ...] = ()) -> Any:
        """Decorates a function or ``async def`` so each call is guarded:
        ``@breaker`` or ``@breaker(failure=(IOError,), ignore=(KeyError,))``.

        Exceptions that are instances of ``ignore`` are recorded as IGNORED,
        of ``failure`` (default: every ``Exception``) as FAILURE, others (e.g.
        ``asyncio.CancelledError``, ``KeyboardInterrupt``) as IGNORED; the
        exception always propagates. When the breaker refuses,
        :class:`CircuitOpen` is raised and the function is not called.
        """
        failure, ignore = _exc_types(failure, "failure"), _exc_types(ignore, "ignore")
        if func is None:
            return lambda f: self._wrap(f, failure, ignore)
        return self._wrap(func, failure, ignore)

    protect = __call__

    def _wrap(self, func: F, failure: Tuple[Type[BaseException], ...],
              ignore: Tuple[Type[BaseException], ...]) -> F:
        if not callable(func):
            raise TypeError(f"@breaker decorates a callable, not {type(func).__name__}")
        import inspect  # at decoration time, not at `import resilience`

        ptr = self._ptr  # held by the wrapper: close() cannot free the breaker under it
        if ptr == ffi.NULL:
            raise InvalidArgument("the CircuitBreaker handle is closed")
        breaker = self
        enter = _fast.call_enter
        success = _fast.call_success
        failure_ = _fast.call_failure
        ignored = _fast.call_ignored

        def settle(call: int, e: BaseException) -> None:
            if ignore and isinstance(e, ignore):
                st = ignored(call)
            elif isinstance(e, failure):
                st = failure_(call)
            else:
                st = ignored(call)
            if st and st != 107:
                raise breaker._error(st) from e

        if not inspect.iscoroutinefunction(func) and _speedups is not None and USE_SPEEDUPS:
            # The guard keeps `ptr` (and so the breaker) alive while it exists.
            guard = _speedups.Guard(int(ffi.cast("uintptr_t", ptr)), ptr, func, failure, ignore,
                                    self._refused_ns, self._error)
            return functools.update_wrapper(guard, func)  # type: ignore[return-value]

        # Hot path: one one-argument C call before the function and one after
        # (see _fast and ffibuild.HELPERS_C).
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                call = enter(ptr)
                if call <= 0:
                    raise breaker._refused(-call)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as e:
                    settle(call, e)
                    raise
                st = success(call)
                if st and st != 107:
                    raise breaker._error(st)
                return result

            return async_guarded  # type: ignore[return-value]

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            call = enter(ptr)
            if call <= 0:
                raise breaker._refused(-call)
            try:
                result = func(*args, **kwargs)
            except BaseException as e:
                settle(call, e)
                raise
            st = success(call)
            if st and st != 107:
                raise breaker._error(st)
            return result

        return guarded  # type: ignore[return-value]

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Calls ``func(*args, **kwargs)`` guarded by the breaker (as the decorator)."""
        return self._wrap(func, (Exception,), ())(*args, **kwargs)

    def guard(self, *, failure: Tuple[Type[BaseException], ...] = (Exception,),
              ignore: Tuple[Type[BaseException], ...] = ()) -> "_Guard":
        """A context manager (``with`` or ``async with``) that acquires a
        permit on entry (raising :class:`CircuitOpen`) and records the
        outcome on exit, classifying exceptions as the decorator does. One
        guard may be reused, nested, and entered by many threads and asyncio
        tasks at once: each exit records its own enter's permit."""
        return _Guard(self, _exc_types(failure, "failure"), _exc_types(ignore, "ignore"))

    # -- state ---------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The current state (reading it never moves open to half-open)."""
        out = scratch.i32
        st = lib.rsl_breaker_state(self._ptr, out)
        if st:
            raise self._error(st)
        return BreakerState(out[0])

    def transition_to(self, state: Union[BreakerState, int]) -> int:
        """Moves to ``state`` now (a fresh instance of it even if current);
        returns the new generation. Permits issued before become stale."""
        if isinstance(state, bool) or not isinstance(state, int):
            raise TypeError(f"state must be a BreakerState, not {type(state).__name__}")
        if not 0 <= state <= 5:
            raise InvalidArgument(f"state must be a BreakerState, not {state!r}")
        gen = scratch.u64
        st = lib.rsl_breaker_transition_to(self._ptr, state, gen)
        if st:
            raise self._error(st)
        return gen[0]

    def reset(self) -> None:
        """Closes the breaker with an empty window."""
        self.transition_to(BreakerState.CLOSED)

    def force_open(self) -> None:
        """Rejects every call until another manual transition."""
        self.transition_to(BreakerState.FORCED_OPEN)

    def disable(self) -> None:
        """Lets every call pass without recording it."""
        self.transition_to(BreakerState.DISABLED)

    def poll(self) -> Optional[float]:
        """Drives timed transitions now; returns the ``time.monotonic()``
        time at which to poll again, or None when nothing is pending."""
        nxt = scratch.u64
        st = lib.rsl_breaker_poll(self._ptr, nxt)
        if st:
            raise self._error(st)
        return None if nxt[0] == 2**64 - 1 else nxt[0] / 1e9

    def metrics(self) -> BreakerMetrics:
        """A metrics snapshot."""
        m = ffi.new("struct rsl_breaker_metrics *")
        st = lib.rsl_breaker_get_metrics(self._ptr, m)
        if st:
            raise self._error(st)
        return BreakerMetrics(
            state=BreakerState(m.state), generation=m.generation, calls=m.calls, failed=m.failed,
            slow=m.slow, not_permitted=m.not_permitted, time_in_state=from_ns(m.time_in_state_ns),
            failure_rate=None if m.failure_rate < 0 else m.failure_rate,
            slow_call_rate=None if m.slow_call_rate < 0 else m.slow_call_rate)

    def transitions_to(self, state: Union[BreakerState, int]) -> int:
        """How many times the breaker has entered ``state`` since creation."""
        if isinstance(state, bool) or not isinstance(state, int):
            raise TypeError(f"state must be a BreakerState, not {type(state).__name__}")
        out = scratch.u64
        st = lib.rsl_breaker_transitions_to(self._ptr, state, out)
        if st:
            raise self._error(st)
        return out[0]

    def on_state_change(self, callback: Callable[[Transition], None]) -> Callable[[Transition], None]:
        """Registers ``callback(transition)``, called after every state change
        on the thread that caused it (it may call back into the breaker).
        Usable as a decorator. Exceptions it raises are printed and ignored.
        Callbacks live as long as the breaker and cannot be unregistered.

        The library holds the callback, out of sight of Python's garbage
        collector: a callback that references this breaker object keeps it
        alive for ever. Use ``weakref.ref(breaker)`` inside it if needed."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        # Only the callable is kept (not this handle, or the breaker could never be freed).
        ident = next(_callback_ids)
        _callbacks[ident] = callback
        st = lib.rsl_breaker_on_state_change(self._ptr, _c_on_transition, ffi.cast("void *", ident),
                                             _c_user_free)
        if st:
            _callbacks.pop(ident, None)
            raise self._error(st)
        return callback

    def close(self) -> None:
        """Releases this handle: methods raise InvalidArgument afterwards.
        The breaker itself lives on while a registry, another handle or a
        function decorated with it holds it."""
        self._ptr = ffi.NULL  # the cdata frees the handle when its last holder goes

    def __enter__(self) -> "CircuitBreaker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors ----------------------------------------------------------------
    def _refused_ns(self, st: int, retry_after_ns: int) -> Exception:
        if st == 103:
            return self._open(from_ns(retry_after_ns))
        return self._error(st)

    def _refused(self, st: int) -> Exception:
        if st == 103:
            return self._open(from_ns(_fast.last_retry_after()))
        return self._error(st)

    def _open(self, ra: float) -> CircuitOpen:
        """The rejection, saying which state refused (read now, so it may
        have moved on since)."""
        label = f"circuit breaker {self.name!r}" if self.name is not None else "circuit breaker"
        out = ffi.new("int32_t *")
        state = BreakerState(out[0]) if lib.rsl_breaker_state(self._ptr, out) == 0 else None
        if state == BreakerState.HALF_OPEN:
            why = "is half-open with every probe call out; retry shortly"
        elif state == BreakerState.FORCED_OPEN:
            why = "is forced open (until changed by hand)"
        else:
            why = f"is open; retry after {ra:.3f} s"
        return CircuitOpen(f"{label} {why}", 103, ra)

    def _error(self, st: int) -> Exception:
        if st == 1 and self._ptr == ffi.NULL:
            return InvalidArgument("the CircuitBreaker handle is closed")
        return error_for(st, "CircuitBreaker")


def _exc_types(v: Any, name: str) -> Tuple[Type[BaseException], ...]:
    """An exception class or a tuple of them, as a tuple; TypeError at
    decoration time otherwise (not at the first exception, where it would
    hide that exception)."""
    t = v if isinstance(v, tuple) else (v,)
    for c in t:
        if not (isinstance(c, type) and issubclass(c, BaseException)):
            raise TypeError(f"{name} must be an exception class or a tuple of them, not {v!r}")
    return t


class _Guard:
    """Reusable, and safe to enter from many threads and tasks at once: each
    exit records the permit its own enter took."""

    __slots__ = ("_b", "_failure", "_ignore", "_held")

    def __init__(self, b: CircuitBreaker, failure: Tuple[Type[BaseException], ...],
                 ignore: Tuple[Type[BaseException], ...]) -> None:
        self._b, self._failure, self._ignore = b, failure, ignore
        self._held = Held()

    def __enter__(self) -> Permit:
        permit = self._b.try_acquire()
        self._held.hold(permit)
        return permit

    def __exit__(self, et: Any, e: Any, tb: Any) -> None:
        permit = self._held.take()
        if e is None:
            outcome = Outcome.SUCCESS
        elif self._ignore and isinstance(e, self._ignore):
            outcome = Outcome.IGNORED
        else:
            outcome = Outcome.FAILURE if isinstance(e, self._failure) else Outcome.IGNORED
        self._b.record(permit, outcome)

    async def __aenter__(self) -> Permit:
        return self.__enter__()

    async def __aexit__(self, et: Any, e: Any, tb: Any) -> None:
        self.__exit__(et, e, tb)


class BreakerRegistry(NoCopy):
    """Circuit breakers by name, at most ``max_entries`` of them. When full,
    getting a new name evicts an idle breaker (closed, held by no handle
    outside the registry), or raises :class:`~resilience.Full`. Thread-safe.
    """

    __slots__ = ("_ptr", "__weakref__")

    def __init__(self, max_entries: int = 1024) -> None:
        to_int(max_entries, "max_entries", 1, 2**63 - 1)
        out = ffi.new("rsl_breaker_registry **")
        st = lib.rsl_breaker_registry_new(max_entries, out)
        if st:
            raise error_for(st, "BreakerRegistry")
        self._ptr = ffi.gc(out[0], lib.rsl_breaker_registry_free)

    def get(self, name: Key, **settings: Any) -> CircuitBreaker:
        """The breaker named ``name``, created with ``settings`` (as
        :class:`CircuitBreaker`) if there is none; an existing breaker keeps
        its own settings. The returned handle keeps it from being evicted."""
        k = to_key(name, "name")
        cfg = _config(settings) if settings else ffi.NULL
        out = ffi.new("rsl_breaker **")
        st = lib.rsl_breaker_registry_get(self._ptr, k, len(k), cfg, out)
        if st:
            raise self._error(st)
        return CircuitBreaker._adopt(out[0], name if isinstance(name, str) else k.decode("utf-8", "replace"))

    def find(self, name: Key) -> Optional[CircuitBreaker]:
        """The breaker named ``name``, or None (never creates one)."""
        k = to_key(name, "name")
        out = ffi.new("rsl_breaker **")
        st = lib.rsl_breaker_registry_find(self._ptr, k, len(k), out)
        if st == 102:
            return None
        if st:
            raise self._error(st)
        return CircuitBreaker._adopt(out[0], name if isinstance(name, str) else k.decode("utf-8", "replace"))

    def remove(self, name: Key) -> bool:
        """Removes ``name`` (its handles keep working); False if absent."""
        k = to_key(name, "name")
        st = lib.rsl_breaker_registry_remove(self._ptr, k, len(k))
        if st == 102:
            return False
        if st:
            raise self._error(st)
        return True

    def __contains__(self, name: object) -> bool:
        try:
            k = to_key(name, "name")
        except TypeError:
            return False
        out = ffi.new("rsl_breaker **")
        st = lib.rsl_breaker_registry_find(self._ptr, k, len(k), out)
        if st == 0:
            lib.rsl_breaker_free(out[0])
            return True
        if st == 102:
            return False
        raise self._error(st)

    def __len__(self) -> int:
        out = scratch.size
        st = lib.rsl_breaker_registry_len(self._ptr, out)
        if st:
            raise self._error(st)
        return out[0]

    def close(self) -> None:
        """Frees the registry now (breakers held by handles stay valid)."""
        p, self._ptr = self._ptr, ffi.NULL
        if p != ffi.NULL:
            ffi.release(p)

    def __enter__(self) -> "BreakerRegistry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, st: int) -> Exception:
        if st == 1 and self._ptr == ffi.NULL:
            return InvalidArgument("the BreakerRegistry is closed")
        return error_for(st, "BreakerRegistry")


_ = NotFound
