"""Rate limits and concurrency limits.

- :class:`TokenBucket`: one GCRA bucket (redis-cell's ``CL.THROTTLE``
  semantics): ``rate`` tokens per ``per`` seconds, holding ``burst``.
- :class:`KeyedLimiter`: a bucket per key in a bounded table, with
  :meth:`KeyedLimiter.acquire_many` for batches.
- :class:`Bulkhead`: at most N calls in flight (``with bulkhead:``,
  ``async with bulkhead:``, ``@bulkhead``).
- :class:`AdaptiveLimiter`: an in-flight limit that follows latency and drops
  (AIMD or gradient, as in Netflix concurrency-limits).

Decorators raise :class:`~resilience.RateLimited` (with ``retry_after``) or
:class:`~resilience.BulkheadFull` instead of calling the function.
"""

from __future__ import annotations

import enum
import functools
import math
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Tuple, Type, TypeVar, Union

from . import _fast
from ._native import ffi, lib
from ._util import U64_MAX, Duration, Held, Key, NoCopy, from_ns, pack_keys, scratch, to_float, to_int, to_key, to_ns
from .errors import BulkheadFull, InvalidArgument, RateLimited, Timeout, error_for

__all__ = ["Reason", "Decision", "TokenBucket", "KeyedLimiter", "KeyedLimiterStats", "Bulkhead",
           "BulkheadStats", "AdaptiveLimiter", "AdaptiveToken", "AdaptiveStats"]

F = TypeVar("F", bound=Callable[..., Any])
_NONE = 2**64 - 1  # RSL_RETRY_AFTER_NONE
_CLOCKS = {"auto": 0, "precise": 1, "coarse": 2}
_POLICIES = {"deny": 0, "allow_untracked": 1}


class Reason(enum.IntEnum):
    """Why a limiter decided as it did (RSL_REASON_*)."""

    ALLOWED = 0
    """The tokens were there."""
    UNTRACKED = 1
    """Allowed without tracking the key: the table was full (policy allow_untracked)."""
    LIMITED = 2
    """Denied: not enough tokens now; ``retry_after`` says when."""
    EXCEEDS_LIMIT = 3
    """Denied: the quantity exceeds the bucket's size; no wait can help."""
    TABLE_FULL = 4
    """Denied: the key table is full (policy deny); no wait can help."""


class Decision(NamedTuple):
    """The answer to an acquire: redis-cell's five facts, in seconds, and a
    reason. True in a boolean context when allowed."""

    allowed: bool
    """Whether the tokens were granted."""
    limit: int
    """Tokens in a full bucket."""
    remaining: int
    """Tokens left after this decision."""
    retry_after: Optional[float]
    """When denied as LIMITED: seconds until the same request would be
    allowed; None when allowed or when no wait can help."""
    reset_after: float
    """Seconds until the bucket is full again."""
    reason: Reason
    """Why."""

    def __bool__(self) -> bool:
        return self.allowed


_REASONS = tuple(Reason)


def _decision(d: Any) -> Decision:
    ra = d.retry_after_ns
    return Decision(bool(d.allowed), d.limit, d.remaining, None if ra == _NONE else ra / 1e9,
                    d.reset_after_ns / 1e9, _REASONS[d.reason])


# rsl_decision as laid out by the C compiler, for unpacking a batch in one go.
_DECISION = struct.Struct("=QQQQi?3x")
_PACKED_OK = (ffi.sizeof("rsl_decision") == _DECISION.size == 40
              and ffi.offsetof("rsl_decision", "reason") == 32
              and ffi.offsetof("rsl_decision", "allowed") == 36)


def _decisions(ds: Any, count: int) -> List[Decision]:
    if not _PACKED_OK:  # pragma: no cover - another layout: field by field
        return [_decision(ds[i]) for i in range(count)]
    reasons, none, new, cls = _REASONS, _NONE, tuple.__new__, Decision
    return [new(cls, (allowed, limit, remaining, None if ra == none else ra / 1e9, reset / 1e9, reasons[reason]))
            for limit, remaining, ra, reset, reason, allowed in _DECISION.iter_unpack(ffi.buffer(ds))]


def _quota(q: Any, rate: Any, per: Duration, burst: Optional[int]) -> None:
    q.count = to_int(rate, "rate", 1, U64_MAX)
    q.period_ns = to_ns(per, "per", allow_zero=False)
    b = rate if burst is None else to_int(burst, "burst", 1, U64_MAX)
    q.max_burst = b - 1


def _rate_limited(code: int, what: str) -> RateLimited:
    ra = math.inf if code == 2**63 - 1 else (code - 1) / 1e9
    msg = f"{what}: rate limited; retry after {ra:.3f} s" if ra != math.inf else \
        f"{what}: rate limited (no wait can help)"
    return RateLimited(msg, 103, ra)


def _deny(d: Decision, what: str) -> RateLimited:
    ra = math.inf if d.retry_after is None else d.retry_after
    return RateLimited(f"{what}: rate limited ({d.reason.name.lower()}); retry after {ra:.3f} s", 103, ra)


def _is_async(func: Callable[..., Any]) -> bool:
    import inspect  # at decoration time, not at `import resilience`

    return inspect.iscoroutinefunction(func)


def _closed_or(st: int, ptr: Any, what: str) -> Exception:
    if st == 1 and ptr == ffi.NULL:
        return InvalidArgument(f"the {what} is closed")
    return error_for(st, what)


class _Handle(NoCopy):
    __slots__ = ("_ptr", "__weakref__")
    _ptr: Any

    def close(self) -> None:
        """Frees the object now (else when garbage-collected). No call may
        use it concurrently or afterwards (they raise InvalidArgument)."""
        p, self._ptr = self._ptr, ffi.NULL
        if p != ffi.NULL:
            ffi.release(p)

    def _error(self, st: int) -> Exception:
        return _closed_or(st, self._ptr, type(self).__name__)


class TokenBucket(_Handle):
    """A token bucket: ``rate`` tokens per ``per`` seconds, holding ``burst``
    tokens (default ``rate``). Lock-free: one atomic word. Thread-safe.

    Args:
        rate: tokens added per period (an int >= 1).
        per: the period (seconds or timedelta; default 1 s).
        burst: tokens in a full bucket (default: ``rate``).
        clock: ``"auto"`` (default), ``"precise"`` or ``"coarse"``.
    """

    __slots__ = ()

    def __init__(self, rate: int, per: Duration = 1.0, *, burst: Optional[int] = None,
                 clock: str = "auto") -> None:
        cfg = ffi.new("rsl_limiter_config *", lib.rsl_limiter_config_default())
        _quota(cfg.quota, rate, per, burst)
        if clock not in _CLOCKS:
            raise InvalidArgument(f"clock must be one of {sorted(_CLOCKS)}, not {clock!r}")
        cfg.clock = _CLOCKS[clock]
        out = ffi.new("rsl_limiter **")
        st = lib.rsl_limiter_new(cfg, out)
        if st:
            raise error_for(st, "TokenBucket")
        self._ptr = ffi.gc(out[0], lib.rsl_limiter_free)

    def acquire(self, quantity: int = 1) -> Decision:
        """Takes ``quantity`` tokens if they are there; returns the decision
        (a denial is an answer, not an exception)."""
        d = ffi.new("rsl_decision *")
        try:
            st = lib.rsl_limiter_acquire(self._ptr, quantity, d)
        except (OverflowError, TypeError):
            raise _bad_quantity(quantity) from None
        if st:
            raise self._error(st)
        return _decision(d)

    def try_acquire(self, quantity: int = 1) -> bool:
        """Takes ``quantity`` tokens and returns True, or returns False (one C call)."""
        try:
            r = _fast.limiter_try(self._ptr, quantity)
        except (OverflowError, TypeError):
            raise _bad_quantity(quantity) from None
        if r == 0:
            return True
        if r > 0:
            return False
        raise self._error(-r)

    def check(self, quantity: int = 1) -> None:
        """Takes ``quantity`` tokens or raises :class:`RateLimited` (with ``retry_after``)."""
        try:
            r = _fast.limiter_try(self._ptr, quantity)
        except (OverflowError, TypeError):
            raise _bad_quantity(quantity) from None
        if r:
            raise _rate_limited(r, "TokenBucket") if r > 0 else self._error(-r)

    def peek(self, quantity: int = 1) -> Decision:
        """What :meth:`acquire` would answer now, taking nothing."""
        d = ffi.new("rsl_decision *")
        try:
            st = lib.rsl_limiter_peek(self._ptr, quantity, d)
        except (OverflowError, TypeError):
            raise _bad_quantity(quantity) from None
        if st:
            raise self._error(st)
        return _decision(d)

    def reset(self) -> None:
        """Refills the bucket."""
        st = lib.rsl_limiter_reset(self._ptr)
        if st:
            raise self._error(st)

    @property
    def rate(self) -> Tuple[int, float, int]:
        """(rate, per seconds, burst) as configured."""
        q = ffi.new("rsl_quota *")
        st = lib.rsl_limiter_get_quota(self._ptr, q)
        if st:
            raise self._error(st)
        return q.count, q.period_ns / 1e9, q.max_burst + 1

    def limit(self, quantity: int = 1) -> Callable[[F], F]:
        """Decorator (sync or ``async def``): each call takes ``quantity``
        tokens or raises :class:`RateLimited` without calling the function."""
        to_int(quantity, "quantity", 0, U64_MAX)
        bucket = self
        try_ = _fast.limiter_try

        def decorate(func: F) -> F:
            def admit() -> None:
                r = try_(bucket._ptr, quantity)
                if r:
                    raise _rate_limited(r, func.__qualname__) if r > 0 else bucket._error(-r)

            return _guard(func, admit)

        return decorate

    def __enter__(self) -> "TokenBucket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bad_quantity(q: object) -> Exception:
    if isinstance(q, int):
        return InvalidArgument(f"quantity must be in [0, 2**64), got {q}")
    return TypeError(f"quantity must be an int, not {type(q).__name__}")


def _guard(func: F, admit: Callable[..., None], key_of: Optional[Callable[..., Any]] = None) -> F:
    """Wraps ``func`` (sync or async) so ``admit`` runs before each call."""
    if key_of is None:
        if _is_async(func):
            @functools.wraps(func)
            async def async_limited(*args: Any, **kwargs: Any) -> Any:
                admit()
                return await func(*args, **kwargs)

            return async_limited  # type: ignore[return-value]

        @functools.wraps(func)
        def limited(*args: Any, **kwargs: Any) -> Any:
            admit()
            return func(*args, **kwargs)

        return limited  # type: ignore[return-value]

    if _is_async(func):
        @functools.wraps(func)
        async def async_keyed(*args: Any, **kwargs: Any) -> Any:
            admit(key_of(args, kwargs))
            return await func(*args, **kwargs)

        return async_keyed  # type: ignore[return-value]

    @functools.wraps(func)
    def keyed(*args: Any, **kwargs: Any) -> Any:
        admit(key_of(args, kwargs))
        return func(*args, **kwargs)

    return keyed  # type: ignore[return-value]


@dataclass(frozen=True)
class KeyedLimiterStats:
    """Counters of a keyed limiter."""

    keys: int
    """Keys tracked now."""
    capacity: int
    """The bound on tracked keys."""
    reclaimed: int
    """Keys dropped because their bucket had refilled."""
    sweeps: int
    """Shard sweeps for refilled buckets."""
    denied_full: int
    """New keys denied because the table was full."""
    allowed_untracked: int
    """New keys allowed untracked (policy allow_untracked)."""
    memory_bytes: int
    """Bytes held by the tables (not counting the keys)."""


class KeyedLimiter(_Handle):
    """A token bucket per key (bytes or str), in a bounded sharded table;
    keys whose bucket has refilled are dropped without changing any answer.
    Thread-safe.

    Args:
        rate, per, burst: every key's rate, as :class:`TokenBucket`.
        max_keys: most keys tracked at once (default 100000).
        shards: shard count (0: automatic).
        full_policy: when the table is full, ``"deny"`` new keys (default) or
            ``"allow_untracked"``.
        clock: ``"auto"`` (default), ``"precise"`` or ``"coarse"``.
    """

    __slots__ = ()

    def __init__(self, rate: int, per: Duration = 1.0, *, burst: Optional[int] = None,
                 max_keys: int = 100_000, shards: int = 0, full_policy: str = "deny",
                 clock: str = "auto") -> None:
        cfg = ffi.new("rsl_keyed_limiter_config *", lib.rsl_keyed_limiter_config_default())
        _quota(cfg.quota, rate, per, burst)
        cfg.max_keys = to_int(max_keys, "max_keys", 1, U64_MAX)
        cfg.shards = to_int(shards, "shards", 0, U64_MAX)
        if full_policy not in _POLICIES:
            raise InvalidArgument(f"full_policy must be one of {sorted(_POLICIES)}, not {full_policy!r}")
        cfg.full_policy = _POLICIES[full_policy]
        if clock not in _CLOCKS:
            raise InvalidArgument(f"clock must be one of {sorted(_CLOCKS)}, not {clock!r}")
        cfg.clock = _CLOCKS[clock]
        out = ffi.new("rsl_keyed_limiter **")
        st = lib.rsl_keyed_limiter_new(cfg, out)
        if st:
            raise error_for(st, "KeyedLimiter")
        self._ptr = ffi.gc(out[0], lib.rsl_keyed_limiter_free)

    def acquire(self, key: Key, quantity: int = 1) -> Decision:
        """Takes ``quantity`` tokens from ``key``'s bucket; returns the decision."""
        k = key if type(key) is bytes else to_key(key)
        d = ffi.new("rsl_decision *")
        try:
            st = lib.rsl_keyed_limiter_acquire(self._ptr, k, len(k), quantity, d)
        except (OverflowError, TypeError):
            raise _bad_quantity(quantity) from None
        if st:
            raise self._error(st)
        return _decision(d)

    def try_acquire(self, key: Key, quantity: int = 1) -> bool:
        """Takes ``quantity`` tokens from ``key``'s bucket and returns True, or
        returns False (one C call)."""
        t = type(key)
        k = key.encode() if t is str else key if t is bytes else to_key(key)  # type: ignore[union-attr]
        try:
            r = _fast.keyed_try(self._ptr, k, len(k), quantity)
        except (OverflowError, TypeError):
            raise _bad_quantity(quantity) from None
        if r == 0:
            return True
        if r > 0:
            return False
        raise self._error(-r)

    def check(self, key: Key, quantity: int = 1) -> None:
        """Takes the tokens or raises :class:`RateLimited` (with ``retry_after``)."""
        t = type(key)
        k = key.encode() if t is str else key if t is bytes else to_key(key)  # type: ignore[union-attr]
        try:
            r = _fast.keyed_try(self._ptr, k, len(k), quantity)
        except (OverflowError, TypeError):
            raise _bad_quantity(quantity) from None
        if r:
            raise _rate_limited(r, f"KeyedLimiter[{key!r}]") if r > 0 else self._error(-r)

    def acquire_many(self, keys: Iterable[Key], quantity: int = 1) -> List[Decision]:
        """Takes ``quantity`` tokens from each key's bucket in one C call
        (a repeated key is charged twice, in order); returns the decisions."""
        blob, key_lens = pack_keys(keys)
        count = len(key_lens)
        if count == 0:
            return []
        to_int(quantity, "quantity", 0, U64_MAX)
        lens = ffi.new("size_t[]", key_lens)
        ds = ffi.new("rsl_decision[]", count)
        st = _fast.keyed_acquire_many_packed(self._ptr, blob, lens, count, quantity, ds)
        if st:
            raise self._error(st)
        return _decisions(ds, count)

    def try_acquire_many(self, keys: Iterable[Key], quantity: int = 1) -> List[bool]:
        """:meth:`acquire_many`, answering only whether each was allowed."""
        blob, key_lens = pack_keys(keys)
        count = len(key_lens)
        if count == 0:
            return []
        to_int(quantity, "quantity", 0, U64_MAX)
        lens = ffi.new("size_t[]", key_lens)
        ds = ffi.new("rsl_decision[]", count)
        st = _fast.keyed_acquire_many_packed(self._ptr, blob, lens, count, quantity, ds)
        if st:
            raise self._error(st)
        if _PACKED_OK:  # the `allowed` byte of each 40-byte decision
            return list(map(bool, ffi.buffer(ds)[:][36::40]))
        return [bool(ds[i].allowed) for i in range(count)]  # pragma: no cover

    def reclaim(self) -> int:
        """Drops every key whose bucket has refilled; returns how many."""
        out = scratch.size
        st = lib.rsl_keyed_limiter_reclaim(self._ptr, out)
        if st:
            raise self._error(st)
        return out[0]

    def __len__(self) -> int:
        """Keys tracked now."""
        out = scratch.size
        st = lib.rsl_keyed_limiter_len(self._ptr, out)
        if st:
            raise self._error(st)
        return out[0]

    def stats(self) -> KeyedLimiterStats:
        """Counters."""
        s = ffi.new("rsl_keyed_limiter_stats *")
        st = lib.rsl_keyed_limiter_get_stats(self._ptr, s)
        if st:
            raise self._error(st)
        return KeyedLimiterStats(s.keys, s.capacity, s.reclaimed, s.sweeps, s.denied_full,
                                 s.allowed_untracked, s.memory_bytes)

    def limit(self, key: Union[str, Callable[..., Key]], quantity: int = 1) -> Callable[[F], F]:
        """Decorator (sync or ``async def``): each call takes ``quantity``
        tokens from the bucket of its key, or raises :class:`RateLimited`.

        ``key`` is the name of the argument holding the key
        (``key="user_id"``) or a callable taking the function's arguments and
        returning it (``key=lambda req: req.client_ip``).
        """
        to_int(quantity, "quantity", 0, U64_MAX)
        if not (isinstance(key, str) or callable(key)):
            raise TypeError("key must be an argument name or a callable")
        limiter = self
        keyed_try = _fast.keyed_try

        def decorate(func: F) -> F:
            key_of = _key_getter(func, key)

            def admit(k: Any) -> None:
                kb = k.encode() if type(k) is str else k if type(k) is bytes else to_key(k, "rate-limit key")
                r = keyed_try(limiter._ptr, kb, len(kb), quantity)
                if r:
                    raise _rate_limited(r, f"{func.__qualname__}[{k!r}]") if r > 0 else limiter._error(-r)

            return _guard(func, admit, key_of)

        return decorate

    def __enter__(self) -> "KeyedLimiter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key_getter(func: Callable[..., Any], key: Union[str, Callable[..., Key]]) -> Callable[[tuple, dict], Any]:
    if callable(key):
        return lambda args, kwargs: key(*args, **kwargs)  # type: ignore[operator]
    import inspect

    sig = inspect.signature(func)
    if key not in sig.parameters:
        raise TypeError(f"limit(key={key!r}): {func.__qualname__} has no argument {key!r}")
    names = list(sig.parameters)
    pos = names.index(key)
    param = sig.parameters[key]
    positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)

    def get(args: tuple, kwargs: dict) -> Any:
        if key in kwargs:
            return kwargs[key]
        if positional and pos < len(args):
            return args[pos]
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments[key]

    return get


@dataclass(frozen=True)
class BulkheadStats:
    """Counters and gauges of a bulkhead."""

    max_concurrent: int
    """The permit count."""
    in_flight: int
    """Permits held now."""
    waiting: int
    """Threads waiting now."""
    rejected: int
    """Non-waiting acquires refused."""
    rejected_full: int
    """Waiting acquires refused at once (too many waiters)."""
    waited: int
    """Acquires that waited and got a permit."""
    timed_out: int
    """Acquires that timed out."""
    invalid_releases: int
    """Releases with no permit held (refused)."""


class Bulkhead(_Handle):
    """At most ``max_concurrent`` calls in flight. Thread-safe.

    ``with bulkhead:`` takes a permit (waiting up to ``max_wait`` when
    ``max_waiters`` allows; the wait releases the GIL) and gives it back on
    exit; ``async with bulkhead:`` never blocks the event loop (it retries
    with ``asyncio.sleep`` until ``max_wait``); ``@bulkhead`` guards a sync or
    async function. A refusal raises :class:`~resilience.BulkheadFull`, a
    wait that runs out :class:`~resilience.Timeout`.

    Args:
        max_concurrent: permits (1 .. 2**32-1).
        max_waiters: threads allowed to wait for a permit (0: never wait);
            ``async with`` allows as many tasks to wait, counted apart.
        max_wait: how long ``with`` / the decorator wait (seconds; 0: no wait).
    """

    __slots__ = ("_wait_ns", "_max_waiters", "_async_waiting", "_count_lock")

    def __init__(self, max_concurrent: int, *, max_waiters: int = 0, max_wait: Duration = 0.0) -> None:
        to_int(max_concurrent, "max_concurrent", 1, 2**32 - 1)
        to_int(max_waiters, "max_waiters", 0, 2**32 - 1)
        self._wait_ns = to_ns(max_wait, "max_wait", allow_inf=True)
        self._max_waiters = max_waiters
        self._async_waiting = 0
        self._count_lock = threading.Lock()
        out = ffi.new("rsl_bulkhead **")
        st = lib.rsl_bulkhead_new(max_concurrent, max_waiters, out)
        if st:
            raise error_for(st, "Bulkhead")
        self._ptr = ffi.gc(out[0], lib.rsl_bulkhead_free)

    def try_acquire(self) -> bool:
        """Takes a permit if one is free now (pair it with :meth:`release`)."""
        st = lib.rsl_bulkhead_try_acquire(self._ptr)
        if st == 0:
            return True
        if st == 103:
            return False
        raise self._error(st)

    def acquire(self, timeout: Optional[Duration] = None) -> None:
        """Takes a permit, waiting up to ``timeout`` (default: ``max_wait``;
        ``math.inf``: no deadline). Raises :class:`BulkheadFull` or :class:`Timeout`."""
        ns = self._wait_ns if timeout is None else to_ns(timeout, "timeout", allow_inf=True)
        st = lib.rsl_bulkhead_try_acquire(self._ptr) if ns == 0 else \
            lib.rsl_bulkhead_acquire_timeout(self._ptr, ns)
        if st:
            raise self._refused(st)

    def release(self) -> None:
        """Gives a permit back (InvalidArgument if none is held)."""
        st = lib.rsl_bulkhead_release(self._ptr)
        if st:
            raise self._error(st)

    @property
    def in_flight(self) -> int:
        """Permits held now."""
        return self.stats().in_flight

    def stats(self) -> BulkheadStats:
        """Counters and gauges."""
        s = ffi.new("rsl_bulkhead_stats *")
        st = lib.rsl_bulkhead_get_stats(self._ptr, s)
        if st:
            raise self._error(st)
        return BulkheadStats(s.max_concurrent, s.in_flight, s.waiting, s.rejected, s.rejected_full,
                             s.waited, s.timed_out, s.invalid_releases)

    def _refused(self, st: int) -> Exception:
        if st in (103, 100):
            return BulkheadFull("bulkhead full: every permit is taken", 103)
        if st == 104:
            return Timeout("no bulkhead permit came free in time", 104)
        return self._error(st)

    def __enter__(self) -> "Bulkhead":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> "Bulkhead":
        await self._acquire_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    async def _acquire_async(self) -> None:
        st = lib.rsl_bulkhead_try_acquire(self._ptr)
        if st == 0:
            return
        if st != 103:
            raise self._error(st)
        if self._wait_ns == 0 or self._max_waiters == 0:
            raise self._refused(st)
        with self._count_lock:
            if self._async_waiting >= self._max_waiters:
                raise BulkheadFull(f"bulkhead full: every permit is taken and {self._max_waiters} "
                                   "tasks already wait", 103)
            self._async_waiting += 1
        try:
            await self._wait_async()
        finally:
            with self._count_lock:
                self._async_waiting -= 1

    async def _wait_async(self) -> None:
        import asyncio

        deadline = time.monotonic() + self._wait_ns / 1e9
        delay = 0.0005
        s = ffi.new("rsl_bulkhead_stats *")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no bulkhead permit came free in time", 104)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.02)
            # Look before trying, so that polling does not count as refusals.
            st = lib.rsl_bulkhead_get_stats(self._ptr, s)
            if st:
                raise self._error(st)
            if s.in_flight >= s.max_concurrent:
                continue
            st = lib.rsl_bulkhead_try_acquire(self._ptr)
            if st == 0:
                return
            if st != 103:
                raise self._error(st)

    def __call__(self, func: F) -> F:
        """``@bulkhead``: each call holds a permit while it runs."""
        bh = self
        if _is_async(func):
            @functools.wraps(func)
            async def async_bulkheaded(*args: Any, **kwargs: Any) -> Any:
                async with bh:
                    return await func(*args, **kwargs)

            return async_bulkheaded  # type: ignore[return-value]

        @functools.wraps(func)
        def bulkheaded(*args: Any, **kwargs: Any) -> Any:
            with bh:
                return func(*args, **kwargs)

        return bulkheaded  # type: ignore[return-value]


@dataclass(frozen=True)
class AdaptiveStats:
    """Counters of an adaptive limiter."""

    limit: int
    """The current limit."""
    in_flight: int
    """Calls in flight now."""
    rejected: int
    """Acquires refused so far."""


class AdaptiveToken:
    """Permission for one call from :meth:`AdaptiveLimiter.try_acquire`;
    give it back exactly once with :meth:`AdaptiveLimiter.record`."""

    __slots__ = ("_tok", "_done")

    def __init__(self, tok: Any) -> None:
        self._tok = tok
        self._done = False

    @property
    def start(self) -> float:
        """When the call was admitted (``time.monotonic()`` seconds)."""
        return float(self._tok.start_ns / 1e9)

    @property
    def inflight(self) -> int:
        """Calls in flight when it was admitted, itself included."""
        return int(self._tok.inflight)


_ADAPTIVE_OUTCOMES = {"success": 0, "dropped": 1, "ignored": 2}


class AdaptiveLimiter(_Handle):
    """An in-flight limit that adapts to latency and drops (Netflix
    concurrency-limits' AIMD or gradient). Thread-safe.

    ``with limiter.guard():`` or ``@limiter`` admit a call or raise
    :class:`~resilience.BulkheadFull`; the call's round trip is reported on
    exit: SUCCESS without exception, DROPPED for exceptions in ``drop``
    (default ``TimeoutError``: the signal that the limit is too high),
    IGNORED for other exceptions.

    Args:
        algorithm: ``"aimd"`` (default) or ``"gradient"``.
        initial_limit, min_limit, max_limit: the limit's start and bounds (20, 20, 200).
        aimd_backoff: factor applied on a drop (0.9).
        aimd_timeout: a slower sample counts as a drop (5 s).
        gradient_smoothing, gradient_tolerance, gradient_queue_size,
        gradient_drop_backoff, gradient_probe_interval: gradient settings.
    Omitted settings take the library's defaults.
    """

    __slots__ = ()

    def __init__(self, algorithm: str = "aimd", **settings: Any) -> None:
        cfg = ffi.new("rsl_adaptive_config *", lib.rsl_adaptive_config_default())
        algos = {"aimd": 0, "gradient": 1}
        if algorithm not in algos:
            raise InvalidArgument(f"algorithm must be 'aimd' or 'gradient', not {algorithm!r}")
        cfg.algorithm = algos[algorithm]
        for name in ("initial_limit", "min_limit", "max_limit", "gradient_queue_size"):
            if name in settings:
                setattr(cfg, name, to_int(settings.pop(name), name, 0, 2**32 - 1))
        if "gradient_probe_interval" in settings:
            cfg.gradient_probe_interval = to_int(settings.pop("gradient_probe_interval"),
                                                 "gradient_probe_interval", 0, 2**32 - 1)
        for name in ("aimd_backoff", "gradient_smoothing", "gradient_tolerance", "gradient_drop_backoff"):
            if name in settings:
                setattr(cfg, name, to_float(settings.pop(name), name, -math.inf, math.inf))
        if "aimd_timeout" in settings:
            cfg.aimd_timeout_ns = to_ns(settings.pop("aimd_timeout"), "aimd_timeout", allow_zero=False)
        if settings:
            raise TypeError(f"unexpected adaptive limiter setting(s): {', '.join(sorted(settings))}")
        out = ffi.new("rsl_adaptive **")
        st = lib.rsl_adaptive_new(cfg, out)
        if st:
            raise error_for(st, "AdaptiveLimiter")
        self._ptr = ffi.gc(out[0], lib.rsl_adaptive_free)

    def try_acquire(self) -> Optional[AdaptiveToken]:
        """Admits one call if fewer than the limit are in flight: a token to
        :meth:`record` exactly once, or None."""
        tok = ffi.new("rsl_adaptive_token *")
        st = lib.rsl_adaptive_try_acquire(self._ptr, tok)
        if st == 0:
            return AdaptiveToken(tok)
        if st == 103:
            return None
        raise self._error(st)

    def record(self, token: AdaptiveToken, outcome: str = "success", rtt: Optional[Duration] = None) -> None:
        """Gives ``token`` back and reports the call: ``"success"``,
        ``"dropped"`` or ``"ignored"``; ``rtt`` defaults to the time since
        it was admitted. A token is recorded once (a second time raises)."""
        if not isinstance(token, AdaptiveToken):
            raise TypeError("token must come from AdaptiveLimiter.try_acquire")
        if outcome not in _ADAPTIVE_OUTCOMES:
            raise InvalidArgument(f"outcome must be one of {sorted(_ADAPTIVE_OUTCOMES)}, not {outcome!r}")
        if token._done:
            raise InvalidArgument("this token was already recorded")
        ns = U64_MAX if rtt is None else to_ns(rtt, "rtt")
        st = lib.rsl_adaptive_record(self._ptr, token._tok[0], _ADAPTIVE_OUTCOMES[outcome], ns)
        if st:
            raise self._error(st)
        token._done = True

    @property
    def limit(self) -> int:
        """The current limit."""
        out = scratch.size
        st = lib.rsl_adaptive_limit(self._ptr, out)
        if st:
            raise self._error(st)
        return out[0]

    @property
    def in_flight(self) -> int:
        """Calls in flight now."""
        out = scratch.size
        st = lib.rsl_adaptive_in_flight(self._ptr, out)
        if st:
            raise self._error(st)
        return out[0]

    def stats(self) -> AdaptiveStats:
        """Counters."""
        s = ffi.new("rsl_adaptive_stats *")
        st = lib.rsl_adaptive_get_stats(self._ptr, s)
        if st:
            raise self._error(st)
        return AdaptiveStats(s.limit, s.in_flight, s.rejected)

    def guard(self, *, drop: Tuple[Type[BaseException], ...] = (TimeoutError,)) -> "_AdaptiveGuard":
        """A context manager (``with`` / ``async with``) admitting one call
        (or raising :class:`BulkheadFull`) and reporting it on exit. One
        guard may be reused, nested, and entered by many threads and asyncio
        tasks at once: each exit reports its own enter's token."""
        t = drop if isinstance(drop, tuple) else (drop,)
        if not all(isinstance(c, type) and issubclass(c, BaseException) for c in t):
            raise TypeError(f"drop must be an exception class or a tuple of them, not {drop!r}")
        return _AdaptiveGuard(self, t)

    def __call__(self, func: F) -> F:
        """``@limiter``: each call is admitted and reported (as :meth:`guard`)."""
        lim = self
        if _is_async(func):
            @functools.wraps(func)
            async def async_adaptive(*args: Any, **kwargs: Any) -> Any:
                async with lim.guard():
                    return await func(*args, **kwargs)

            return async_adaptive  # type: ignore[return-value]

        @functools.wraps(func)
        def adaptive(*args: Any, **kwargs: Any) -> Any:
            with lim.guard():
                return func(*args, **kwargs)

        return adaptive  # type: ignore[return-value]


class _AdaptiveGuard:
    """Reusable, and safe to enter from many threads and tasks at once: each
    exit reports the token its own enter took."""

    __slots__ = ("_lim", "_drop", "_held")

    def __init__(self, lim: AdaptiveLimiter, drop: Tuple[Type[BaseException], ...]) -> None:
        self._lim, self._drop = lim, drop
        self._held = Held()

    def __enter__(self) -> AdaptiveToken:
        tok = self._lim.try_acquire()
        if tok is None:
            raise BulkheadFull("adaptive limiter: at the current limit", 103)
        self._held.hold(tok)
        return tok

    def __exit__(self, et: Any, e: Any, tb: Any) -> None:
        tok = self._held.take()
        outcome = "success" if e is None else "dropped" if isinstance(e, self._drop) else "ignored"
        self._lim.record(tok, outcome)

    async def __aenter__(self) -> AdaptiveToken:
        return self.__enter__()

    async def __aexit__(self, et: Any, e: Any, tb: Any) -> None:
        self.__exit__(et, e, tb)


_ = (from_ns, _deny)
