"""Exceptions: one class per ``rsl_status`` code, all under :class:`ResilienceError`.

:func:`check` maps a status code returned by the C library to its exception
(with the thread's ``rsl_last_error()`` message) and is the only place that
does so. Several classes also derive from the matching built-in exception
(``ValueError``, ``KeyError``, ``TimeoutError``, ``OSError``, ``MemoryError``)
so code that already catches those keeps working.
"""

from __future__ import annotations

from typing import Dict, NoReturn, Optional, Type

from ._native import ffi, lib

__all__ = [
    "ResilienceError",
    "NullArgument",
    "InvalidArgument",
    "BufferTooSmall",
    "TooLarge",
    "Full",
    "Empty",
    "NotFound",
    "Rejected",
    "CircuitOpen",
    "RateLimited",
    "BulkheadFull",
    "InProgress",
    "Timeout",
    "NotOwner",
    "Mismatch",
    "Stale",
    "Closed",
    "IoError",
    "IoUringUnavailable",
    "EngineState",
    "Panic",
    "AllocError",
    "InternalError",
    "check",
    "error_for",
    "status_str",
    "last_error",
]


class ResilienceError(Exception):
    """Base class of every error raised by this package.

    Attributes:
        status: the ``rsl_status`` code (an ``int``; 0 never appears here).
        message: detail from the library (``rsl_last_error()``) or from Python.
    """

    #: The status code this class stands for (None on the base class).
    code: Optional[int] = None

    def __init__(self, message: str = "", status: Optional[int] = None) -> None:
        self.status: int = status if status is not None else (self.code or 0)
        self.message: str = message or status_str(self.status)
        super().__init__(self.message)


class NullArgument(ResilienceError, ValueError):
    """RSL_ERR_NULL_ARG: a required pointer was NULL (a bug in this binding if
    you ever see it: the Python API never passes NULL where it is required)."""

    code = 1


class InvalidArgument(ResilienceError, ValueError):
    """RSL_ERR_INVALID_ARG: an argument was out of range or inconsistent."""

    code = 2


class BufferTooSmall(ResilienceError):
    """RSL_ERR_BUFFER_TOO_SMALL: an output buffer was too small. The binding
    retries with the size the library asked for, so user code never sees it.

    Attributes:
        needed: the size the library asked for, when known.
    """

    code = 3

    def __init__(self, message: str = "", status: Optional[int] = None, needed: int = 0) -> None:
        super().__init__(message, status)
        self.needed = needed


class TooLarge(ResilienceError, ValueError):
    """RSL_ERR_TOO_LARGE: a key, value or batch is above its documented maximum."""

    code = 4


class Full(ResilienceError):
    """RSL_ERR_FULL: the container is full; nothing was added."""

    code = 100


class Empty(ResilienceError):
    """RSL_ERR_EMPTY: the container is empty; nothing was removed."""

    code = 101


class NotFound(ResilienceError, KeyError):
    """RSL_ERR_NOT_FOUND: the key was not found (also a ``KeyError``)."""

    code = 102

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class Rejected(ResilienceError):
    """RSL_ERR_REJECTED: refused by policy (breaker open, limiter denied,
    bulkhead full, request in progress).

    Attributes:
        retry_after: seconds until a retry may succeed (``float``; ``math.inf``
            when it never will without a manual change, 0.0 when unknown).
    """

    code = 103

    def __init__(self, message: str = "", status: Optional[int] = None, retry_after: float = 0.0) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class CircuitOpen(Rejected):
    """The circuit breaker did not permit the call (open, forced open, or
    half-open with every probe out); ``retry_after`` says when to retry."""


class RateLimited(Rejected):
    """The rate limiter denied the request; ``retry_after`` is the wait in
    seconds until it would be allowed."""


class BulkheadFull(Rejected):
    """The bulkhead (or adaptive limiter) has no free slot."""


class InProgress(Rejected):
    """Another caller is executing the same idempotency key; ``retry_after``
    is the time left on its lease."""


class Timeout(ResilienceError, TimeoutError):
    """RSL_ERR_TIMEOUT: a wait ran out of time."""

    code = 104


class NotOwner(ResilienceError):
    """RSL_ERR_NOT_OWNER: the token does not own the idempotency record."""

    code = 105


class Mismatch(ResilienceError):
    """RSL_ERR_MISMATCH: same idempotency key, different request fingerprint."""

    code = 106


class Stale(ResilienceError):
    """RSL_ERR_STALE: a permit from an earlier breaker generation; nothing was
    recorded (not an error to act on; ``record`` swallows it by default)."""

    code = 107


class Closed(ResilienceError):
    """RSL_ERR_CLOSED: the other end of the queue was freed."""

    code = 108


class IoError(ResilienceError, OSError):
    """RSL_ERR_IO: an I/O error."""

    code = 200


class IoUringUnavailable(IoError):
    """RSL_ERR_IO_URING_UNAVAILABLE: io_uring is disabled; the message says how
    to enable it."""

    code = 201


class EngineState(ResilienceError):
    """RSL_ERR_ENGINE_STATE: the engine is already running or stopped."""

    code = 202


class Panic(ResilienceError):
    """RSL_ERR_PANIC: a panic inside the library was caught at the C boundary."""

    code = 900


class AllocError(ResilienceError, MemoryError):
    """RSL_ERR_ALLOC: memory could not be allocated."""

    code = 901


class InternalError(ResilienceError):
    """RSL_ERR_INTERNAL: an internal invariant failed (please report it)."""

    code = 902


_BY_CODE: Dict[int, Type[ResilienceError]] = {
    cls.code: cls  # type: ignore[misc]
    for cls in (NullArgument, InvalidArgument, BufferTooSmall, TooLarge, Full, Empty, NotFound,
                Rejected, Timeout, NotOwner, Mismatch, Stale, Closed, IoError, IoUringUnavailable,
                EngineState, Panic, AllocError, InternalError)
}


def status_str(status: int) -> str:
    """The library's description of a status code (``rsl_status_str``)."""
    try:
        return ffi.string(lib.rsl_status_str(status)).decode("utf-8", "replace")
    except OverflowError:
        return "unknown status code"


def last_error() -> str:
    """This thread's last error message from the library (``rsl_last_error``)."""
    return ffi.string(lib.rsl_last_error()).decode("utf-8", "replace")


def _has_detail(status: int) -> bool:
    """Whether the library sets ``rsl_last_error`` for ``status``."""
    return 0 < status < 100 or status in (105, 108) or status >= 200


def error_for(status: int, context: str = "") -> ResilienceError:
    """The exception for a nonzero ``status``, with the library's detail.

    An unknown code gives a plain :class:`ResilienceError` carrying the code.
    """
    cls = _BY_CODE.get(status, ResilienceError)
    # Answers (full, empty, not found, rejected, timeout, mismatch, stale)
    # set no message: the thread's last one belongs to an older call.
    detail = last_error() if _has_detail(status) else ""
    msg = status_str(status)
    if detail:
        msg = f"{msg}: {detail}"
    if context:
        msg = f"{context}: {msg}"
    return cls(msg, status)


def check(status: int, context: str = "") -> None:
    """Raises the exception for ``status`` unless it is 0 (RSL_OK).

    Every status code maps to one class: see the module docstring.
    """
    if status:
        raise error_for(status, context)


def _raise(status: int, context: str = "") -> NoReturn:
    raise error_for(status, context)
