"""Idempotency keys: do a request's work once, replay its response to retries.

:class:`IdempotencyStore` is the primitive (``begin`` / ``complete`` /
``abandon``); :func:`idempotent` is the decorator most code wants::

    store = IdempotencyStore(retention=3600)

    @idempotent(store, key="request_id")
    def charge(request_id: str, amount: int) -> dict: ...

The first call with a key runs the function and stores its result (via a
serializer, pickle by default — see :mod:`resilience.serializers`); later calls
with the same key and the same arguments return the stored result without
running it; the same key with different arguments raises
:class:`~resilience.Mismatch`; a call while the first is still running raises
:class:`~resilience.InProgress` (or waits, with ``wait=``). A call that raises
is abandoned, so a retry runs the function again.
"""

from __future__ import annotations

import enum
import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union

from ._native import ffi, lib
from ._util import Duration, Key, NoCopy, from_ns, scratch, to_bytes, to_int, to_key, to_ns
from .errors import InProgress, InvalidArgument, NotFound, NotOwner, ResilienceError, error_for
from .serializers import PICKLE, Serializer

__all__ = ["BeginState", "Begin", "IdempotencyStats", "IdempotencyStore", "idempotent"]

F = TypeVar("F", bound=Callable[..., Any])


class BeginState(enum.IntEnum):
    """The answer of :meth:`IdempotencyStore.begin` (RSL_IDEM_*)."""

    STARTED = 0
    """The caller owns a new record: do the work, then complete or abandon."""
    IN_PROGRESS = 1
    """Another caller owns the record; retry after ``retry_after``."""
    COMPLETED = 2
    """The work was already done; ``response`` holds the stored response."""
    STARTED_TAKEOVER = 3
    """Like STARTED, but a stale owner's lease ran out: its attempt may have
    done part of the work."""


@dataclass(frozen=True)
class Begin:
    """What :meth:`IdempotencyStore.begin` answered."""

    state: BeginState
    """The answer."""
    token: int
    """Owner token (nonzero) when started, else 0."""
    retry_after: float
    """Seconds left on the owner's lease when in progress, else 0."""
    response: Optional[bytes]
    """The stored response when completed, else None."""

    @property
    def started(self) -> bool:
        """True when the caller now owns the record (STARTED or STARTED_TAKEOVER)."""
        return self.state in (BeginState.STARTED, BeginState.STARTED_TAKEOVER)


@dataclass(frozen=True)
class IdempotencyStats:
    """Counters and occupancy of a store."""

    started: int
    """Begins that started a record (takeovers included)."""
    takeovers: int
    """Starts that replaced a stale in-progress record."""
    replays: int
    """Begins answered with a stored response."""
    in_progress: int
    """Begins answered "in progress"."""
    mismatches: int
    """Begins answered "mismatch"."""
    full: int
    """Begins refused because in-progress records fill the budget."""
    completed: int
    """Successful completes."""
    complete_full: int
    """Completes refused for lack of room."""
    abandoned: int
    """Successful abandons."""
    evicted: int
    """Records removed early to make room."""
    expired: int
    """Records removed after their deadline."""
    records: int
    """Records held now."""
    in_progress_records: int
    """Of which in progress."""
    bytes_used: int
    """Bytes charged to the budget."""


class IdempotencyStore(NoCopy):
    """Records of requests by idempotency key. Thread-safe: racing
    ``begin`` calls on one key start exactly one record.

    Args:
        max_bytes: byte budget for all records (default 64 MiB).
        retention: how long a completed response is replayed (default 24 h).
        shards: a power of two in 1..4096 (default 16).
        max_key_len: longest key in bytes (default 255).
        max_fingerprint_len: longest fingerprint (default 64).
        max_response_len: longest response (default 1 MiB).

    When in-progress records fill the budget, ``begin`` raises
    :class:`~resilience.Full` (shed load) rather than evict them.
    """

    __slots__ = ("_ptr", "__weakref__")

    def __init__(self, *, max_bytes: Optional[int] = None, retention: Optional[Duration] = None,
                 shards: Optional[int] = None, max_key_len: Optional[int] = None,
                 max_fingerprint_len: Optional[int] = None,
                 max_response_len: Optional[int] = None) -> None:
        cfg = ffi.new("rsl_idem_config *", lib.rsl_idem_config_default())
        if max_bytes is not None:
            cfg.max_bytes = to_int(max_bytes, "max_bytes", 1, 2**64 - 1)
        if retention is not None:
            cfg.retention_ns = to_ns(retention, "retention", allow_zero=False)
        if shards is not None:
            cfg.shards = to_int(shards, "shards", 1, 4096)
        if max_key_len is not None:
            cfg.max_key_len = to_int(max_key_len, "max_key_len", 1, 1 << 30)
        if max_fingerprint_len is not None:
            cfg.max_fingerprint_len = to_int(max_fingerprint_len, "max_fingerprint_len", 0, 1 << 30)
        if max_response_len is not None:
            cfg.max_response_len = to_int(max_response_len, "max_response_len", 0, 1 << 30)
        out = ffi.new("rsl_idem **")
        st = lib.rsl_idem_new(cfg, out)
        if st:
            raise error_for(st, "IdempotencyStore")
        self._ptr = ffi.gc(out[0], lib.rsl_idem_free)

    def begin(self, key: Key, fingerprint: Union[bytes, str] = b"", lease: Duration = 30.0) -> Begin:
        """Claims ``key`` for the request identified by ``fingerprint`` (empty:
        only the key matters) with a lease of ``lease`` seconds, or answers
        from its record. Raises :class:`~resilience.Mismatch` when the key's
        record has another fingerprint, :class:`~resilience.Full` when
        in-progress records fill the budget, :class:`~resilience.InvalidArgument`
        for an empty key or a lease of 0, :class:`~resilience.TooLarge` for a
        key or fingerprint over the limits. A stored response larger than
        the scratch buffer (4 KiB at first; it grows) is fetched with a
        second call, and the store's ``replays`` counter counts both."""
        k = to_key(key)
        fp = to_key(fingerprint, "fingerprint")
        lease_ns = to_ns(lease, "lease", allow_zero=False)
        s = scratch
        state, token, ra, n = s.i32, s.u64, s.u64b, s.size
        for _ in range(8):
            st = lib.rsl_idem_begin(self._ptr, k, len(k), fp, len(fp), lease_ns, state, token, ra,
                                    s.buf, s.cap, n)
            if st != 3:  # BUFFER_TOO_SMALL: grow to the size asked for and ask again
                break
            s.ensure(n[0])
        if st:
            raise self._error(st)
        bs = BeginState(state[0])
        if bs == BeginState.COMPLETED:
            return Begin(bs, 0, 0.0, bytes(s.mv[:n[0]]))
        if bs == BeginState.IN_PROGRESS:
            return Begin(bs, 0, from_ns(ra[0]), None)
        return Begin(bs, token[0], 0.0, None)

    def complete(self, key: Key, token: int, response: Union[bytes, bytearray, memoryview] = b"",
                 retention: Optional[Duration] = None) -> None:
        """Stores ``response`` for ``key`` if ``token`` owns its record; it is
        replayed for ``retention`` (default: the store's). Raises
        :class:`~resilience.NotOwner`, :class:`~resilience.NotFound`,
        :class:`~resilience.Full` (record stays in progress) or
        :class:`~resilience.TooLarge`."""
        k = to_key(key)
        r = to_bytes(response, "response")
        to_int(token, "token", 0, 2**64 - 1)
        if retention is None:
            st = lib.rsl_idem_complete(self._ptr, k, len(k), token, r, len(r))
        else:
            ret = to_ns(retention, "retention", allow_zero=False)
            st = lib.rsl_idem_complete_at(self._ptr, k, len(k), token, r, len(r), ret, time.monotonic_ns())
        if st:
            raise self._error(st)

    def abandon(self, key: Key, token: int) -> None:
        """Releases ``key`` if ``token`` owns its in-progress record, so a retry
        starts afresh. Raises :class:`~resilience.NotOwner` / ``NotFound``."""
        k = to_key(key)
        to_int(token, "token", 0, 2**64 - 1)
        st = lib.rsl_idem_abandon(self._ptr, k, len(k), token)
        if st:
            raise self._error(st)

    def sweep(self, max_records: int = 1 << 16) -> int:
        """Removes up to ``max_records`` records that are over; returns how many.

        Completed records go after their retention; in-progress records one
        retention period after their lease ran out (until then a late
        ``complete`` is accepted and the next ``begin`` reports a takeover).
        """
        to_int(max_records, "max_records", 0, 2**63 - 1)
        out = scratch.size
        st = lib.rsl_idem_sweep(self._ptr, max_records, out)
        if st:
            raise self._error(st)
        return out[0]

    def stats(self) -> IdempotencyStats:
        """Counters and occupancy."""
        s = ffi.new("struct rsl_idem_stats *")
        st = lib.rsl_idem_get_stats(self._ptr, s)
        if st:
            raise self._error(st)
        return IdempotencyStats(s.started, s.takeovers, s.replays, s.in_progress, s.mismatches, s.full,
                                s.completed, s.complete_full, s.abandoned, s.evicted, s.expired,
                                s.records, s.in_progress_records, s.bytes_used)

    def close(self) -> None:
        """Frees the store now. No call may use it concurrently or afterwards."""
        p, self._ptr = self._ptr, ffi.NULL
        if p != ffi.NULL:
            ffi.release(p)

    def __enter__(self) -> "IdempotencyStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, st: int) -> Exception:
        if st == 1 and self._ptr == ffi.NULL:
            return InvalidArgument("the IdempotencyStore is closed")
        return error_for(st, "IdempotencyStore")


KeyFunc = Union[str, Callable[..., Key]]


def idempotent(store: IdempotencyStore, *, key: KeyFunc,
               fingerprint: Union[None, bool, Callable[..., Union[bytes, str]]] = None,
               lease: Duration = 30.0, retention: Optional[Duration] = None,
               serializer: Serializer = PICKLE, wait: Duration = 0.0) -> Callable[[F], F]:
    """Decorates a function or ``async def`` so that calls with the same
    idempotency key run it once and replay its result.

    Args:
        store: where the records live.
        key: the name of the argument holding the key (``key="request_id"``),
            or a callable taking the function's arguments and returning the
            key (bytes or str).
        fingerprint: identifies the request so that reusing a key for a
            different request raises :class:`~resilience.Mismatch`. None
            (default): SHA-256 of ``serializer.dumps`` of the bound arguments
            (excluding ``self``/``cls``): pickle is not canonical, so equal
            arguments built differently (``{"x": 1, "y": 2}`` and
            ``{"y": 2, "x": 1}``, ``1`` and ``1.0``) may fingerprint apart
            and raise Mismatch; pass a callable over the fields that identify
            the request when that matters. A callable taking the function's
            arguments; or False for none (only the key matters).
        lease: how long a caller may work before a retry may take over.
        retention: how long the result is replayed (default: the store's).
        serializer: turns the result into bytes and back (default
            :data:`~resilience.PICKLE`: trusted data only; use
            :data:`~resilience.JSON` for plain data).
        wait: when another caller is running the same key, wait up to this
            long for its result instead of raising :class:`~resilience.InProgress`.

    Only results are stored: a call that raises abandons its record and the
    exception propagates, so a retry runs the function again. So does a call
    whose result cannot be stored (the serializer fails, or ``complete``
    raises TooLarge or Full): its side effects happened, and the error
    propagates after the record is abandoned. Size ``max_response_len`` and
    the store's budget for the results you return.
    """
    lease_ns = to_ns(lease, "lease", allow_zero=False)
    wait_s = to_ns(wait, "wait") / 1e9
    if retention is not None:
        to_ns(retention, "retention", allow_zero=False)
    if not (isinstance(key, str) or callable(key)):
        raise TypeError("key must be an argument name or a callable")

    def decorate(func: F) -> F:
        import hashlib
        import inspect  # imported when decorating: keeps `import resilience` fast

        sig = inspect.signature(func)
        params = list(sig.parameters)
        skip_first = bool(params) and params[0] in ("self", "cls")
        if isinstance(key, str) and key not in sig.parameters:
            raise TypeError(f"@idempotent(key={key!r}): {func.__qualname__} has no argument {key!r}")

        def identify(args: tuple, kwargs: dict) -> tuple:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            if isinstance(key, str):
                k = bound.arguments[key]
            else:
                k = key(*args, **kwargs)
            k = to_key(k, "idempotency key")
            if fingerprint is False:
                fp = b""
            elif fingerprint is None or fingerprint is True:
                items = list(bound.arguments.items())[1 if skip_first else 0:]
                try:
                    blob = serializer.dumps(items)
                except Exception as e:
                    raise TypeError(f"@idempotent: cannot fingerprint the arguments of "
                                    f"{func.__qualname__} with {serializer!r} ({e}); pass "
                                    "fingerprint=callable or fingerprint=False") from e
                fp = hashlib.sha256(to_bytes(blob)).digest()
            else:
                fp = to_key(fingerprint(*args, **kwargs), "fingerprint")
            return k, fp

        def settle(k: bytes, token: int, result: Any) -> None:
            try:
                store.complete(k, token, to_bytes(serializer.dumps(result), "serialized result"), retention)
            except BaseException:
                _quiet_abandon(store, k, token)
                raise

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                k, fp = identify(args, kwargs)
                deadline = time.monotonic() + wait_s
                while True:
                    b = store.begin(k, fp, lease_ns / 1e9)
                    if b.state != BeginState.IN_PROGRESS:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise _in_progress(k, b.retry_after)
                    await _asyncio().sleep(min(left, b.retry_after, 0.05))
                if b.state == BeginState.COMPLETED:
                    return serializer.loads(b.response)  # type: ignore[arg-type]
                try:
                    result = await func(*args, **kwargs)
                except BaseException:
                    _quiet_abandon(store, k, b.token)
                    raise
                settle(k, b.token, result)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            k, fp = identify(args, kwargs)
            deadline = time.monotonic() + wait_s
            while True:
                b = store.begin(k, fp, lease_ns / 1e9)
                if b.state != BeginState.IN_PROGRESS:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _in_progress(k, b.retry_after)
                time.sleep(min(left, b.retry_after, 0.05))
            if b.state == BeginState.COMPLETED:
                return serializer.loads(b.response)  # type: ignore[arg-type]
            try:
                result = func(*args, **kwargs)
            except BaseException:
                _quiet_abandon(store, k, b.token)
                raise
            settle(k, b.token, result)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def _in_progress(k: bytes, retry_after: float) -> InProgress:
    return InProgress(f"idempotency key {k!r} is in progress; retry after {retry_after:.3f} s", 103,
                      retry_after)


def _quiet_abandon(store: IdempotencyStore, k: bytes, token: int) -> None:
    try:
        store.abandon(k, token)
    except (NotFound, NotOwner):
        pass  # lease expired and someone took over, or it was evicted: nothing to release
    except ResilienceError:
        pass


def _asyncio() -> Any:
    import asyncio  # only async code reaches here, and it has imported asyncio already

    return asyncio
