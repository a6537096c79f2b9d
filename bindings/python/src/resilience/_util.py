"""Conversions shared by every wrapper: durations, keys, values, per-thread
scratch buffers. Private: the public API documents what each accepts."""

from __future__ import annotations

import contextvars
import math
import threading
from datetime import timedelta
from typing import Any, List, Tuple, Union

from ._native import ffi
from .errors import InvalidArgument

#: A duration: float or int seconds, or a ``datetime.timedelta``.
Duration = Union[float, int, timedelta]
#: A key: ``bytes`` (or another bytes-like object) or ``str`` (encoded as UTF-8).
Key = Union[bytes, bytearray, memoryview, str]

U64_MAX = 2**64 - 1
_NS_PER_S = 1_000_000_000
_US = timedelta(microseconds=1)


def to_ns(d: Duration, name: str, *, allow_zero: bool = True, allow_inf: bool = False) -> int:
    """Seconds (float/int) or a timedelta to integer nanoseconds.

    ``math.inf`` maps to UINT64_MAX where ``allow_inf``; negative, NaN and
    out-of-range values raise InvalidArgument, other types TypeError.
    """
    t = type(d)
    d_: Any = d
    if t is int:
        ns = d_ * _NS_PER_S
    elif t is float:
        if d_ != d_:  # NaN
            raise InvalidArgument(f"{name} must be a number of seconds, not NaN")
        if d_ == math.inf and allow_inf:
            return U64_MAX
        if d_ < 0:
            raise InvalidArgument(f"{name} must not be negative (got {d!r})")
        if d_ > U64_MAX / _NS_PER_S:
            raise InvalidArgument(f"{name}={d!r} s is too long (at most ~584 years)")
        ns = round(d_ * _NS_PER_S)
    elif isinstance(d, timedelta):
        ns = (d // _US) * 1000
    elif isinstance(d, bool) or not isinstance(d, (int, float)):
        raise TypeError(f"{name} must be seconds (float or int) or a datetime.timedelta, "
                        f"not {type(d).__name__}")
    else:  # int/float subclasses
        return to_ns(float(d) if isinstance(d, float) else int(d), name,
                     allow_zero=allow_zero, allow_inf=allow_inf)
    if ns < 0:
        raise InvalidArgument(f"{name} must not be negative (got {d!r})")
    if ns == 0 and not allow_zero:
        raise InvalidArgument(f"{name} must be greater than zero (got {d!r})")
    if ns > U64_MAX:
        raise InvalidArgument(f"{name}={d!r} is too long")
    return ns


def from_ns(ns: int) -> float:
    """Integer nanoseconds to float seconds (UINT64_MAX is ``math.inf``)."""
    return math.inf if ns >= U64_MAX else ns / _NS_PER_S


#: The enters made in this thread or task, innermost last: ``(id(owner),
#: entry)`` pairs. A ``ContextVar`` so that one guard object may be entered
#: by many threads and asyncio tasks at once, and nested, each exit taking
#: back its own enter's permit.
_HELD: "contextvars.ContextVar[Tuple[Tuple[int, List[Any]], ...]]" = contextvars.ContextVar(
    "resilience_held", default=())


class Held:
    """What a reusable context manager's enters hold and its exits give back.

    Each enter's item is kept in the owner's list of open enters and named in
    the current context. An exit takes back the innermost open enter named in
    its context; when its context names none (frameworks that run
    ``__enter__`` and ``__exit__`` in different copied contexts, such as a
    dependency run through two thread-pool calls), it takes the most recent
    open enter, so nothing stays held for ever."""

    __slots__ = ("_open", "_lock")

    def __init__(self) -> None:
        self._open: List[List[Any]] = []
        self._lock = threading.Lock()

    def hold(self, item: Any) -> None:
        entry = [item]
        with self._lock:
            self._open.append(entry)
        _HELD.set(_HELD.get() + ((id(self), entry),))

    def take(self) -> Any:
        held = _HELD.get()
        key = id(self)
        with self._lock:
            for i in range(len(held) - 1, -1, -1):
                if held[i][0] != key:
                    continue
                entry = held[i][1]
                _HELD.set(held[:i] + held[i + 1:])
                for j in range(len(self._open) - 1, -1, -1):
                    if self._open[j] is entry:
                        del self._open[j]
                        return entry[0]
                # Already taken by an exit elsewhere: look further out.
            if self._open:
                return self._open.pop()[0]
        raise RuntimeError("context manager exited without a matching enter")


class NoCopy:
    """Refuses copy, deepcopy and pickle: the object owns a native handle,
    which a copy would share and free twice. Share the object itself."""

    __slots__ = ()

    def __copy__(self) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be copied: it owns a native object; share it instead")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be copied: it owns a native object; share it instead")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be pickled: it owns a native object")


def to_key(key: Any, name: str = "key") -> bytes:
    """bytes as is, str as UTF-8, other bytes-like objects copied to bytes."""
    t = type(key)
    if t is bytes:
        return key
    if t is str:
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, str):
        return str(key).encode("utf-8")
    raise TypeError(f"{name} must be bytes or str, not {type(key).__name__}")


def to_bytes(value: Any, name: str = "value") -> bytes:
    """bytes-like values to bytes (str is refused: pass a serializer)."""
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes-like, not {type(value).__name__} "
                    "(give the object a serializer, e.g. serializer=resilience.PICKLE)")


def to_int(value: Any, name: str, lo: int, hi: int) -> int:
    """An int in [lo, hi], else InvalidArgument (TypeError for non-integers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} must be in [{lo}, {hi}] (got {value})")
    return value


def to_float(value: Any, name: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """A number in [lo, hi] (or (lo, hi] with lo_open), else InvalidArgument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    v = float(value)
    if not (v > lo if lo_open else v >= lo) or not v <= hi:
        raise InvalidArgument(f"{name} must be in {'(' if lo_open else '['}{lo}, {hi}] (got {value})")
    return v


class Scratch(threading.local):
    """Per-thread out-parameters and a growable byte buffer. The GIL is
    released during C calls, so these must never be shared between threads."""

    def __init__(self) -> None:
        self.size = ffi.new("size_t *")
        self.size2 = ffi.new("size_t *")
        self.u64 = ffi.new("uint64_t *")
        self.u64b = ffi.new("uint64_t *")
        self.i32 = ffi.new("int32_t *")
        self.boolp = ffi.new("bool *")
        self.permit = ffi.new("rsl_permit *")
        self._grow(4096)

    def _grow(self, cap: int) -> None:
        self.cap = cap
        self.ba = bytearray(cap)
        self.mv = memoryview(self.ba)
        self.buf = ffi.from_buffer("uint8_t[]", self.ba)
        #: (buf, cap, size_t *, memoryview): one thread-local lookup for hot paths.
        self.get = (self.buf, cap, self.size, self.mv)

    def ensure(self, cap: int) -> None:
        """Makes the buffer hold at least ``cap`` bytes."""
        if cap > self.cap:
            self._grow(max(cap, 2 * self.cap))


scratch = Scratch()


def pack_keys(keys: Any) -> "tuple[bytes, list]":
    """Keys packed one after another, and their byte lengths, for the batch
    calls. Lists of ASCII str keys take a fast path (one join, one encode)."""
    ks = keys if isinstance(keys, list) else list(keys)
    try:
        joined = "".join(ks)
    except TypeError:
        pass
    else:
        blob = joined.encode("utf-8")
        if len(blob) == len(joined):  # all ASCII: byte lengths are str lengths
            return blob, list(map(len, ks))
    bs = [k.encode("utf-8") if type(k) is str else to_key(k) for k in ks]
    return b"".join(bs), list(map(len, bs))
