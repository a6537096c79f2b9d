"""libresilience for Python: circuit breakers, caches, idempotency keys,
lock-free queues (and rate limiters / bulkheads) backed by the Rust library
through its C ABI.

Every class is thread-safe unless its docstring says otherwise, and the GIL
is released inside the C calls. Durations are float seconds or
``datetime.timedelta``. Errors are subclasses of :class:`ResilienceError`,
one per C status code (see :mod:`resilience.errors`).
"""

from __future__ import annotations

from ._native import lib as _lib
from ._native import HEADER_ABI_VERSION, LIBRARY_ABI_VERSION, LIBRARY_ENV, LIBRARY_VERSION, MODE
from .breaker import (BreakerMetrics, BreakerRegistry, BreakerState, CircuitBreaker, Outcome, Permit,
                      Transition, TransitionCause)
from .cache import Cache, CacheStats
from .errors import (AllocError, BufferTooSmall, BulkheadFull, CircuitOpen, Closed, Empty, EngineState,
                     Full, InProgress, InternalError, InvalidArgument, IoError, IoUringUnavailable,
                     Mismatch, NotFound, NotOwner, NullArgument, Panic, RateLimited, Rejected,
                     ResilienceError, Stale, Timeout, TooLarge, check)
from .idempotency import Begin, BeginState, IdempotencyStats, IdempotencyStore, idempotent
from .queues import BytesQueue, MpmcQueue, SpscConsumer, SpscProducer, spsc_queue
from .serializers import JSON, PICKLE, RAW, Serializer

if hasattr(_lib, "rsl_limiter_new"):  # the limiter ABI
    from .limit import (AdaptiveLimiter, AdaptiveStats, AdaptiveToken, Bulkhead, BulkheadStats, Decision,
                        KeyedLimiter, KeyedLimiterStats, Reason, TokenBucket)

#: Version of this package (the library's version: they are released together).
__version__ = "0.1.0"

#: "api": the compiled extension with libresilience.a linked in; "abi": the
#: shared library named by $RESILIENCE_LIBRARY, loaded with dlopen.
mode = MODE
#: The loaded library's version string.
library_version = LIBRARY_VERSION
#: The ABI version of the loaded library (== the header's, checked at import).
abi_version = LIBRARY_ABI_VERSION

__all__ = [
    # breaker
    "CircuitBreaker", "BreakerRegistry", "BreakerState", "BreakerMetrics", "Outcome", "Permit",
    "Transition", "TransitionCause",
    # cache
    "Cache", "CacheStats",
    # idempotency
    "IdempotencyStore", "idempotent", "Begin", "BeginState", "IdempotencyStats",
    # queues
    "BytesQueue", "MpmcQueue", "SpscProducer", "SpscConsumer", "spsc_queue",
    # serializers
    "Serializer", "PICKLE", "JSON", "RAW",
    # errors
    "ResilienceError", "NullArgument", "InvalidArgument", "BufferTooSmall", "TooLarge", "Full",
    "Empty", "NotFound", "Rejected", "CircuitOpen", "RateLimited", "BulkheadFull", "InProgress",
    "Timeout", "NotOwner", "Mismatch", "Stale", "Closed", "IoError", "IoUringUnavailable",
    "EngineState", "Panic", "AllocError", "InternalError", "check",
    # module facts
    "mode", "library_version", "abi_version", "LIBRARY_ENV", "HEADER_ABI_VERSION",
]

if hasattr(_lib, "rsl_limiter_new"):
    __all__ += ["TokenBucket", "KeyedLimiter", "Bulkhead", "AdaptiveLimiter", "Decision", "Reason",
                "KeyedLimiterStats", "BulkheadStats", "AdaptiveStats", "AdaptiveToken"]
