"""Bounded lock-free queues of unsigned 64-bit integers (the C ABI's payload).

A payload is an ``int`` in ``[0, 2**64)``: an index, a handle, a packed
record. Full and empty are answers, never waits: ``push`` raises
:class:`~resilience.Full`, ``pop`` raises :class:`~resilience.Empty`, and
``try_push`` / ``try_pop`` return a flag or a default instead.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, List, Optional, Tuple, TypeVar, Union, overload

from ._native import ffi, lib
from ._util import U64_MAX, NoCopy, scratch, to_bytes, to_int
from .errors import Closed, Empty, Full, InvalidArgument, error_for

__all__ = ["BytesQueue", "MpmcQueue", "SpscProducer", "SpscConsumer", "spsc_queue"]

_T = TypeVar("_T")
_E = TypeVar("_E", bound="_SpscEnd")
_MAX_CAP = 1 << 30


def _values(values: Iterable[int]) -> list:
    vals = values if isinstance(values, list) else list(values)
    for v in vals:
        if not isinstance(v, int) or not 0 <= v <= U64_MAX:
            raise InvalidArgument(f"queue payloads are ints in [0, 2**64), got {v!r}")
    return vals


def _bad_value(value: object) -> Exception:
    if isinstance(value, bool) or not isinstance(value, int):
        return TypeError(f"queue payloads are ints, not {type(value).__name__}")
    return InvalidArgument(f"queue payloads are ints in [0, 2**64), got {value!r}")


class MpmcQueue(NoCopy):
    """A bounded multi-producer multi-consumer queue; every method is
    thread-safe and lock-free (the GIL is released inside the C calls).

    Args:
        capacity: at least this many payloads (rounded up to a power of two,
            at most 2**30).
    """

    __slots__ = ("_ptr", "__weakref__")

    def __init__(self, capacity: int) -> None:
        to_int(capacity, "capacity", 1, _MAX_CAP)
        out = ffi.new("rsl_mpmc **")
        st = lib.rsl_mpmc_new(capacity, out)
        if st:
            raise error_for(st, "MpmcQueue")
        self._ptr = ffi.gc(out[0], lib.rsl_mpmc_free)

    def push(self, value: int) -> None:
        """Appends ``value``; raises :class:`Full` (nothing added) when full."""
        try:
            st = lib.rsl_mpmc_push(self._ptr, value)
        except (OverflowError, TypeError):
            raise _bad_value(value) from None
        if st:
            raise self._error(st)

    def try_push(self, value: int) -> bool:
        """Appends ``value`` and returns True, or returns False when full."""
        try:
            st = lib.rsl_mpmc_push(self._ptr, value)
        except (OverflowError, TypeError):
            raise _bad_value(value) from None
        if st == 0:
            return True
        if st == 100:
            return False
        raise self._error(st)

    def pop(self) -> int:
        """Removes and returns the oldest payload; raises :class:`Empty` when empty."""
        out = scratch.u64
        st = lib.rsl_mpmc_pop(self._ptr, out)
        if st:
            raise self._error(st)
        return out[0]

    @overload
    def try_pop(self) -> Optional[int]: ...
    @overload
    def try_pop(self, default: _T) -> Union[int, _T]: ...

    def try_pop(self, default: Optional[_T] = None) -> Union[int, _T, None]:
        """Removes and returns the oldest payload, or ``default`` when empty."""
        out = scratch.u64
        st = lib.rsl_mpmc_pop(self._ptr, out)
        if st == 0:
            return out[0]
        if st == 101:
            return default
        raise self._error(st)

    def push_many(self, values: Iterable[int]) -> int:
        """Appends payloads in order until one does not fit; returns how many
        were appended (one C call for the whole batch)."""
        vals = _values(values)
        arr = ffi.new("uint64_t[]", vals)
        n = scratch.size
        st = lib.rsl_mpmc_push_many(self._ptr, arr, len(vals), n)
        if st:
            raise self._error(st)
        return n[0]

    def pop_many(self, max_items: int) -> List[int]:
        """Removes up to ``max_items`` payloads (oldest first) in one C call;
        an empty list when the queue is empty."""
        to_int(max_items, "max_items", 0, _MAX_CAP)
        if max_items > 64:
            max_items = min(max_items, self.capacity)  # never more queued at once
        arr = ffi.new("uint64_t[]", max_items or 1)
        n = scratch.size
        st = lib.rsl_mpmc_pop_many(self._ptr, arr, max_items, n)
        if st:
            raise self._error(st)
        return ffi.unpack(arr, n[0])

    def __len__(self) -> int:
        """Approximate number of queued payloads."""
        n = scratch.size
        st = lib.rsl_mpmc_len(self._ptr, n, ffi.NULL)
        if st:
            raise self._error(st)
        return n[0]

    @property
    def capacity(self) -> int:
        """The capacity (a power of two)."""
        c = scratch.size2
        st = lib.rsl_mpmc_len(self._ptr, ffi.NULL, c)
        if st:
            raise self._error(st)
        return c[0]

    def close(self) -> None:
        """Frees the queue now (else it is freed when garbage-collected).
        No call on it may run concurrently or afterwards (they raise)."""
        p, self._ptr = self._ptr, ffi.NULL
        if p != ffi.NULL:
            ffi.release(p)

    def __enter__(self) -> "MpmcQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, st: int) -> Exception:
        if st == 1 and self._ptr == ffi.NULL:
            return InvalidArgument("the queue is closed")
        return error_for(st, "MpmcQueue")


class _SpscEnd(NoCopy):
    __slots__ = ("_ptr", "_lock", "__weakref__")
    _ptr: Any
    _lock: threading.Lock

    def _enter(self) -> None:
        if not self._lock.acquire(False):
            raise RuntimeError(f"{type(self).__name__} used by two threads at once: "
                               "an SPSC end belongs to one thread at a time")

    def _error(self, st: int) -> Exception:
        if st == 1 and self._ptr == ffi.NULL:
            return InvalidArgument(f"the {type(self).__name__} is closed")
        return error_for(st, type(self).__name__)

    def close(self) -> None:
        """Frees this end now; the queue's memory goes when both ends are freed."""
        with self._lock:
            p, self._ptr = self._ptr, ffi.NULL
            if p != ffi.NULL:
                ffi.release(p)

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpscProducer(_SpscEnd):
    """The producing end of a wait-free single-producer single-consumer queue.
    One thread at a time may use it (a second concurrent user gets
    RuntimeError, never a corrupted queue). Made by :func:`spsc_queue`."""

    __slots__ = ()

    def push(self, value: int) -> None:
        """Appends ``value``; raises :class:`Full` when full, :class:`Closed`
        when full because the consumer was freed."""
        self._enter()
        try:
            st = lib.rsl_spsc_push(self._ptr, value)
        except (OverflowError, TypeError):
            raise _bad_value(value) from None
        finally:
            self._lock.release()
        if st:
            raise self._error(st)

    def try_push(self, value: int) -> bool:
        """Appends ``value`` and returns True, or False when full."""
        self._enter()
        try:
            st = lib.rsl_spsc_push(self._ptr, value)
        except (OverflowError, TypeError):
            raise _bad_value(value) from None
        finally:
            self._lock.release()
        if st == 0:
            return True
        if st == 100:
            return False
        raise self._error(st)

    def push_many(self, values: Iterable[int]) -> int:
        """Appends payloads in order until the queue is full; returns how many."""
        vals = _values(values)
        arr = ffi.new("uint64_t[]", vals)
        n = scratch.size
        self._enter()
        try:
            st = lib.rsl_spsc_push_many(self._ptr, arr, len(vals), n)
        finally:
            self._lock.release()
        if st:
            raise self._error(st)
        return n[0]

    def __len__(self) -> int:
        """Queued payloads as seen by the producer."""
        n = scratch.size
        self._enter()
        try:
            st = lib.rsl_spsc_producer_len(self._ptr, n, ffi.NULL)
        finally:
            self._lock.release()
        if st:
            raise self._error(st)
        return n[0]

    @property
    def capacity(self) -> int:
        """The capacity (a power of two)."""
        c = scratch.size2
        self._enter()
        try:
            st = lib.rsl_spsc_producer_len(self._ptr, ffi.NULL, c)
        finally:
            self._lock.release()
        if st:
            raise self._error(st)
        return c[0]


class SpscConsumer(_SpscEnd):
    """The consuming end of a single-producer single-consumer queue (one
    thread at a time). Made by :func:`spsc_queue`."""

    __slots__ = ()

    def pop(self) -> int:
        """Removes and returns the oldest payload; raises :class:`Empty` when empty."""
        out = scratch.u64
        self._enter()
        try:
            st = lib.rsl_spsc_pop(self._ptr, out)
        finally:
            self._lock.release()
        if st:
            raise self._error(st)
        return out[0]

    @overload
    def try_pop(self) -> Optional[int]: ...
    @overload
    def try_pop(self, default: _T) -> Union[int, _T]: ...

    def try_pop(self, default: Optional[_T] = None) -> Union[int, _T, None]:
        """Removes and returns the oldest payload, or ``default`` when empty."""
        out = scratch.u64
        self._enter()
        try:
            st = lib.rsl_spsc_pop(self._ptr, out)
        finally:
            self._lock.release()
        if st == 0:
            return out[0]
        if st == 101:
            return default
        raise self._error(st)

    def pop_many(self, max_items: int) -> List[int]:
        """Removes up to ``max_items`` payloads in one C call (may be empty)."""
        to_int(max_items, "max_items", 0, _MAX_CAP)
        if max_items > 64:
            max_items = min(max_items, len(self))  # the only consumer: no more to take
        arr = ffi.new("uint64_t[]", max_items or 1)
        n = scratch.size
        self._enter()
        try:
            st = lib.rsl_spsc_pop_many(self._ptr, arr, max_items, n)
        finally:
            self._lock.release()
        if st:
            raise self._error(st)
        return ffi.unpack(arr, n[0])

    def __len__(self) -> int:
        """Queued payloads as seen by the consumer."""
        n = scratch.size
        self._enter()
        try:
            st = lib.rsl_spsc_consumer_len(self._ptr, n)
        finally:
            self._lock.release()
        if st:
            raise self._error(st)
        return n[0]


def spsc_queue(capacity: int) -> Tuple[SpscProducer, SpscConsumer]:
    """Creates a wait-free SPSC queue of at least ``capacity`` payloads
    (rounded up to a power of two) and returns its (producer, consumer)."""
    to_int(capacity, "capacity", 1, _MAX_CAP)
    p = ffi.new("rsl_spsc_producer **")
    c = ffi.new("rsl_spsc_consumer **")
    st = lib.rsl_spsc_new(capacity, p, c)
    if st:
        raise error_for(st, "spsc_queue")
    prod = SpscProducer.__new__(SpscProducer)
    prod._ptr = ffi.gc(p[0], lib.rsl_spsc_producer_free)
    prod._lock = threading.Lock()
    cons = SpscConsumer.__new__(SpscConsumer)
    cons._ptr = ffi.gc(c[0], lib.rsl_spsc_consumer_free)
    cons._lock = threading.Lock()
    return prod, cons


# Closed is raised through error_for(RSL_ERR_CLOSED); Full/Empty likewise.
_ = (Closed, Empty, Full)


_MAX_LEN = 1 << 24
_POP_SCRATCH = 64 << 10
_scratch_tls = threading.local()


def _pop_scratch() -> Any:
    """This thread's 64 KiB buffer for pops."""
    buf = getattr(_scratch_tls, "buf", None)
    if buf is None:
        buf = _scratch_tls.buf = ffi.new("uint8_t[]", _POP_SCRATCH)
    return buf


class BytesQueue(NoCopy):
    """A bounded multi-producer multi-consumer queue of ``bytes`` messages of
    at most ``max_len`` bytes each; every method is thread-safe and lock-free
    (the GIL is released inside the C calls). Messages are copied in and out.

    Args:
        capacity: at least this many messages (rounded up to a power of two,
            at most 2**30).
        max_len: the longest message accepted, in bytes (at most 2**24).
    """

    __slots__ = ("_ptr", "_max_len", "__weakref__")

    def __init__(self, capacity: int, max_len: int) -> None:
        to_int(capacity, "capacity", 1, _MAX_CAP)
        to_int(max_len, "max_len", 0, _MAX_LEN)
        out = ffi.new("rsl_bytes_queue **")
        st = lib.rsl_bytes_queue_new(capacity, max_len, out)
        if st:
            raise error_for(st, "BytesQueue")
        self._ptr = ffi.gc(out[0], lib.rsl_bytes_queue_free)
        self._max_len = max_len

    def push(self, data: bytes) -> None:
        """Appends a copy of ``data``; raises :class:`Full` (nothing added)
        when full, :class:`TooLarge` when longer than ``max_len``."""
        st = lib.rsl_bytes_queue_push(self._ptr, ffi.from_buffer(data), len(data))
        if st:
            raise self._error(st)

    def try_push(self, data: bytes) -> bool:
        """Appends a copy of ``data`` and returns True, or returns False when
        full (:class:`TooLarge` is still raised)."""
        st = lib.rsl_bytes_queue_push(self._ptr, ffi.from_buffer(data), len(data))
        if st == 0:
            return True
        if st == 100:
            return False
        raise self._error(st)

    def _pop(self) -> Tuple[int, bytes]:
        """(status, message): reads through a 64 KiB per-thread scratch
        buffer, and a buffer of the message's own size when it is longer
        (``max_len`` says nothing about what is queued)."""
        buf = _pop_scratch()
        cap = min(len(buf), self._max_len)
        n = scratch.size
        while True:
            st = lib.rsl_bytes_queue_pop(self._ptr, buf, cap, n)
            if st == 0:
                return 0, bytes(ffi.buffer(buf, n[0]))
            if st != 3:  # not RSL_ERR_BUFFER_TOO_SMALL
                return st, b""
            big = ffi.new("uint8_t[]", n[0])  # its length was written to n
            st = lib.rsl_bytes_queue_pop(self._ptr, big, n[0], n)
            if st == 0:
                return 0, bytes(ffi.buffer(big, n[0]))
            if st != 3:
                return st, b""
            # Still too small: another consumer took that message meanwhile
            # and the next is longer still; try again from the scratch.

    def pop(self) -> bytes:
        """Removes and returns the oldest message; raises :class:`Empty` when empty."""
        st, m = self._pop()
        if st:
            raise self._error(st)
        return m

    @overload
    def try_pop(self) -> Optional[bytes]: ...
    @overload
    def try_pop(self, default: _T) -> Union[bytes, _T]: ...

    def try_pop(self, default: Optional[_T] = None) -> Union[bytes, _T, None]:
        """Removes and returns the oldest message, or ``default`` when empty."""
        st, m = self._pop()
        if st == 0:
            return m
        if st == 101:
            return default
        raise self._error(st)

    def push_many(self, messages: Iterable[bytes]) -> int:
        """Appends messages in order until one does not fit; returns how many
        were appended (one C call for the whole batch). Raises
        :class:`TooLarge` at a message longer than ``max_len``."""
        msgs = [to_bytes(m, "message") for m in messages]
        data = b"".join(msgs)
        lens = ffi.new("size_t[]", [len(m) for m in msgs] or [0])
        n = ffi.new("size_t *")
        st = lib.rsl_bytes_queue_push_many(self._ptr, ffi.from_buffer(data), len(data), lens, len(msgs), n)
        if st:
            raise self._error(st)
        return n[0]

    def pop_many(self, max_items: int) -> List[bytes]:
        """Removes up to ``max_items`` messages (oldest first) in one C call,
        as many as fit in 64 KiB together (a longer first message comes
        alone); an empty list when the queue is empty."""
        to_int(max_items, "max_items", 0, _MAX_CAP)
        if max_items == 0:
            return []
        buf = _pop_scratch()
        max_items = min(max_items, len(buf))  # more than this never fit, empty messages aside
        lens = ffi.new("size_t[]", max_items)
        n = scratch.size
        st = lib.rsl_bytes_queue_pop_many(self._ptr, buf, len(buf), lens, max_items, n)
        if st == 3:  # the oldest message alone is longer than the scratch
            st, m = self._pop()
            if st == 101:
                return []
            if st:
                raise self._error(st)
            return [m]
        if st:
            raise self._error(st)
        raw = ffi.buffer(buf, len(buf))
        out, at = [], 0
        for i in range(n[0]):
            out.append(bytes(raw[at:at + lens[i]]))
            at += lens[i]
        return out

    def __len__(self) -> int:
        """Approximate number of queued messages."""
        n = ffi.new("size_t *")
        st = lib.rsl_bytes_queue_len(self._ptr, n, ffi.NULL)
        if st:
            raise self._error(st)
        return n[0]

    @property
    def capacity(self) -> int:
        """The capacity (a power of two)."""
        c = ffi.new("size_t *")
        st = lib.rsl_bytes_queue_len(self._ptr, ffi.NULL, c)
        if st:
            raise self._error(st)
        return c[0]

    @property
    def max_len(self) -> int:
        """The longest message accepted, in bytes."""
        return self._max_len

    def close(self) -> None:
        """Frees the queue now (else it is freed when garbage-collected).
        No call on it may run concurrently or afterwards (they raise)."""
        p, self._ptr = self._ptr, ffi.NULL
        if p != ffi.NULL:
            ffi.release(p)

    def __enter__(self) -> "BytesQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, st: int) -> Exception:
        if st == 1 and self._ptr == ffi.NULL:
            return InvalidArgument("the queue is closed")
        return error_for(st, "BytesQueue")
