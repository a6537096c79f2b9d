"""Single-call helpers for the hottest paths.

In API mode they are C functions compiled into the extension (glue over the
public C ABI, see ffibuild.HELPERS_C); in ABI mode (``RESILIENCE_LIBRARY``)
these Python versions with the same semantics are used instead.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from ._native import ffi, lib

__all__ = ["breaker_enter", "breaker_exit", "last_retry_after", "now_ns", "call_enter", "call_success",
           "call_failure", "call_ignored", "cache_get_many_packed", "limiter_try", "keyed_try",
           "keyed_acquire_many_packed"]

if hasattr(lib, "rsl_py_breaker_enter"):
    breaker_enter = lib.rsl_py_breaker_enter
    breaker_exit = lib.rsl_py_breaker_exit
    last_retry_after = lib.rsl_py_last_retry_after
    now_ns = time.monotonic_ns  # CLOCK_MONOTONIC, as rsl_py_now_ns
    # call_enter(ptr) -> token > 0, or minus the status; then exactly one of
    # call_success / call_failure / call_ignored(token) -> status.
    call_enter = lib.rsl_py_call_enter
    call_success = lib.rsl_py_call_success
    call_failure = lib.rsl_py_call_failure
    call_ignored = lib.rsl_py_call_ignored
    cache_get_many_packed = lib.rsl_py_cache_get_many_packed
else:
    class _Tls(threading.local):
        def __init__(self) -> None:
            self.permit = ffi.new("rsl_permit *")
            self.ra = ffi.new("uint64_t *")
            self.last_ra = 0

    _tls = _Tls()
    _acquire = lib.rsl_breaker_try_acquire
    _record = lib.rsl_breaker_record
    now_ns = time.monotonic_ns

    def breaker_enter(ptr: Any) -> int:
        """>= 0: the permit's generation; < 0: minus the status."""
        t = _tls
        st = _acquire(ptr, t.permit, t.ra)
        if st:
            t.last_ra = t.ra[0]
            return -st
        return t.permit.generation

    def last_retry_after() -> int:
        """Retry-after (ns) of this thread's last refused breaker_enter."""
        return _tls.last_ra

    def breaker_exit(ptr: Any, generation: int, outcome: int, start_ns: int) -> int:
        """Records the permit of ``generation``; returns the status."""
        p = _tls.permit
        p.generation = generation
        return _record(ptr, p[0], outcome, max(0, now_ns() - start_ns))

    _calls: dict = {}
    _next_call = itertools.count(1)

    def call_enter(ptr: Any) -> int:
        """Acquires and stamps a guarded call: a token > 0, or minus the status."""
        gen = breaker_enter(ptr)
        if gen < 0:
            return gen
        token = next(_next_call)
        _calls[token] = (ptr, gen, now_ns())
        return token

    def _call_exit(token: int, outcome: int) -> int:
        ptr, gen, t0 = _calls.pop(token)
        return breaker_exit(ptr, gen, outcome, t0)

    def call_success(token: int) -> int:
        """Records the call as a success; returns the status."""
        return _call_exit(token, 0)

    def call_failure(token: int) -> int:
        """Records the call as a failure; returns the status."""
        return _call_exit(token, 1)

    def call_ignored(token: int) -> int:
        """Records the call as ignored; returns the status."""
        return _call_exit(token, 2)

    def cache_get_many_packed(cache: Any, keys: bytes, key_lens: Any, count: int, buf: Any, cap: int,
                              offs: Any, lens: Any, statuses: Any) -> int:
        """rsl_cache_get_many over keys packed one after another in ``keys``."""
        base = ffi.from_buffer(keys)
        ptrs = ffi.new("uint8_t *[]", count)
        off = 0
        for i in range(count):
            ptrs[i] = base + off
            off += key_lens[i]
        return lib.rsl_cache_get_many(cache, ptrs, key_lens, count, buf, cap, offs, lens, statuses)


# Limiter helpers (only when the library has the limiter ABI).
if hasattr(lib, "rsl_py_limiter_try"):
    limiter_try = lib.rsl_py_limiter_try
    keyed_try = lib.rsl_py_keyed_try
    keyed_acquire_many_packed = lib.rsl_py_keyed_acquire_many_packed
else:
    _NONE_RA = 2**64 - 1

    def _code(st: int, d: Any) -> int:
        if st:
            return -st
        if d.allowed:
            return 0
        ra = d.retry_after_ns
        return 2**63 - 1 if ra >= 2**63 - 2 else ra + 1

    def limiter_try(ptr: Any, quantity: int) -> int:
        """0 allowed; > 0 denied (retry-after ns + 1, or 2**63-1); < 0 minus the status."""
        d = ffi.new("rsl_decision *")
        return _code(lib.rsl_limiter_acquire(ptr, quantity, d), d)

    def keyed_try(ptr: Any, key: bytes, key_len: int, quantity: int) -> int:
        """As limiter_try, for the bucket of ``key``."""
        d = ffi.new("rsl_decision *")
        return _code(lib.rsl_keyed_limiter_acquire(ptr, key, key_len, quantity, d), d)

    def keyed_acquire_many_packed(ptr: Any, keys: bytes, key_lens: Any, count: int, quantity: int,
                                  decisions: Any) -> int:
        """rsl_keyed_limiter_acquire_many over keys packed one after another."""
        base = ffi.from_buffer(keys)
        ptrs = ffi.new("uint8_t *[]", count)
        off = 0
        for i in range(count):
            ptrs[i] = base + off
            off += key_lens[i]
        return lib.rsl_keyed_limiter_acquire_many(ptr, ptrs, key_lens, count, quantity, decisions)
