"""A concurrent in-memory cache of byte keys to byte values.

``Cache`` behaves like a bounded mutable mapping with TTLs: ``cache[key]``,
``cache.get(key)``, ``cache.set(key, value, ttl=...)``, ``del cache[key]``,
``key in cache``, ``len(cache)``, and one-call batches with
:meth:`Cache.get_many`. Keys are ``bytes`` or ``str`` (UTF-8); values are
bytes, or any object when the cache has a ``serializer``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, TypeVar, Union, overload

from . import _fast
from ._native import ffi, lib
from ._util import U64_MAX, Duration, Key, NoCopy, pack_keys, scratch, to_bytes, to_int, to_key, to_ns
from .errors import BufferTooSmall, InvalidArgument, NotFound, error_for
from .serializers import Serializer

__all__ = ["Cache", "CacheStats"]

_cache_get = lib.rsl_cache_get

_T = TypeVar("_T")
_MISSING: Any = object()


@dataclass(frozen=True)
class CacheStats:
    """Counters and occupancy of a cache."""

    hits: int
    """Reads that found a live entry."""
    misses: int
    """Reads that found nothing (or an expired entry)."""
    inserts: int
    """New entries stored."""
    updates: int
    """Inserts that replaced a present key's value."""
    evictions: int
    """Entries evicted to make room."""
    expirations: int
    """Entries removed because their TTL passed."""
    rejections: int
    """Inserts refused (heavier than a shard's budget)."""
    entries: int
    """Entries held now (expired ones not yet removed included)."""
    weight: int
    """Bytes held now (keys + values)."""


class Cache(NoCopy):
    """A sharded, scan-resistant cache with per-entry TTLs. Thread-safe; the
    GIL is released inside every lookup.

    Args:
        max_entries: most entries held at once (0: no count limit).
        max_weight: most bytes (keys + values) held at once (0: no limit;
            default 64 MiB). At least one limit must be set. Both are
            totals, split among the shards in shares that differ by at most
            one, so one entry may weigh at most ``max_weight // shards``.
        default_ttl: time to live of entries set without ``ttl`` (None: never
            expire). Seconds or ``timedelta``.
        shards: a power of two up to 65536 (0: automatic).
        serializer: stores any object via ``serializer.dumps``/``loads``
            (e.g. ``resilience.JSON`` or ``resilience.PICKLE`` — see the
            warning in :mod:`resilience.serializers`). None: values are bytes.
    """

    __slots__ = ("_ptr", "_ser", "__weakref__")

    def __init__(self, *, max_entries: int = 0, max_weight: Optional[int] = None,
                 default_ttl: Optional[Duration] = None, shards: int = 0,
                 serializer: Optional[Serializer] = None) -> None:
        cfg = ffi.new("rsl_cache_config *", lib.rsl_cache_config_default())
        cfg.max_entries = to_int(max_entries, "max_entries", 0, U64_MAX)
        if max_weight is not None:
            cfg.max_weight = to_int(max_weight, "max_weight", 0, U64_MAX)
        if default_ttl is not None:
            cfg.default_ttl_ns = to_ns(default_ttl, "default_ttl")
        cfg.shards = to_int(shards, "shards", 0, U64_MAX)
        if serializer is not None and not (hasattr(serializer, "dumps") and hasattr(serializer, "loads")):
            raise TypeError("serializer needs dumps() and loads()")
        out = ffi.new("rsl_cache **")
        st = lib.rsl_cache_new(cfg, out)
        if st:
            raise error_for(st, "Cache")
        self._ptr = ffi.gc(out[0], lib.rsl_cache_free)
        self._ser = serializer

    # -- reads -------------------------------------------------------------
    @overload
    def get(self, key: Key) -> Optional[Any]: ...
    @overload
    def get(self, key: Key, default: _T) -> Union[Any, _T]: ...

    def get(self, key: Key, default: Optional[_T] = None) -> Union[Any, _T, None]:
        """The value of ``key``, or ``default`` when absent or expired."""
        t = type(key)
        if t is str:
            key = key.encode()  # type: ignore[union-attr]
        elif t is not bytes:
            key = to_key(key)
        buf, cap, n, mv = scratch.get
        st = _cache_get(self._ptr, key, len(key), buf, cap, n)  # type: ignore[arg-type]
        if st == 0:
            v = mv[:n[0]].tobytes()
        elif st == 102:
            return default
        elif st == 3:
            big = self._get_big(key, n[0])  # type: ignore[arg-type]
            if big is None:
                return default
            v = big
        else:
            raise self._error(st)
        ser = self._ser
        return v if ser is None else ser.loads(v)

    def _get_big(self, key: bytes, needed: int) -> Optional[bytes]:
        s = scratch
        n = s.size
        for _ in range(8):  # the value may grow between the calls
            s.ensure(needed)
            st = lib.rsl_cache_get(self._ptr, key, len(key), s.buf, s.cap, n)
            if st == 0:
                return bytes(s.mv[:n[0]])
            if st == 102:
                return None
            if st != 3:
                raise self._error(st)
            needed = n[0]
        raise BufferTooSmall("value kept growing while being read", 3, needed)  # pragma: no cover

    def __getitem__(self, key: Key) -> Any:
        """The value of ``key``; raises :class:`~resilience.NotFound` (a KeyError)."""
        v = self.get(key, _MISSING)
        if v is _MISSING:
            raise NotFound(f"{key!r}", 102)
        return v

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has a live entry (not counted as a hit or miss)."""
        try:
            k = to_key(key)
        except TypeError:
            return False
        out = scratch.boolp
        st = lib.rsl_cache_contains(self._ptr, k, len(k), out)
        if st:
            raise self._error(st)
        return bool(out[0])

    def get_many(self, keys: Iterable[Key], default: Any = None) -> List[Any]:
        """Looks up every key in one C call; returns the values in key order
        (``default`` for the absent ones)."""
        blob, key_lens = pack_keys(keys)
        count = len(key_lens)
        if count == 0:
            return []
        lens = ffi.new("size_t[]", key_lens)
        offs = ffi.new("size_t[]", count)
        vlens = ffi.new("size_t[]", count)
        sts = ffi.new("int32_t[]", count)
        s = scratch
        s.ensure(min(count * 256, 1 << 20))
        st = _fast.cache_get_many_packed(self._ptr, blob, lens, count, s.buf, s.cap, offs, vlens, sts)
        if st:
            raise self._error(st)
        statuses = ffi.unpack(sts, count)
        ol = list(zip(ffi.unpack(offs, count), ffi.unpack(vlens, count)))
        end = max([o + n for code, (o, n) in zip(statuses, ol) if code == 0], default=0)
        data = bytes(s.mv[:end])  # copy out before anything can reuse the buffer
        ser = self._ser
        out: List[Any] = []
        for i, (code, (o, n)) in enumerate(zip(statuses, ol)):
            if code == 0:
                v = data[o:o + n]
            elif code == 102:
                out.append(default)
                continue
            elif code == 3:
                start = sum(key_lens[:i])
                big = self._get_big(blob[start:start + key_lens[i]], n)
                if big is None:
                    out.append(default)
                    continue
                v = big
            else:
                raise self._error(code)
            out.append(v if ser is None else ser.loads(v))
        return out

    # -- writes ----------------------------------------------------------------
    def set(self, key: Key, value: Any, ttl: Optional[Duration] = None) -> None:
        """Stores ``key -> value`` (replacing any value). ``ttl``: seconds or
        timedelta; None: the cache's default TTL; ``math.inf``: never expires.
        Raises :class:`~resilience.TooLarge` when the entry is heavier than a
        shard's budget (the key's old value is removed too)."""
        k = key if type(key) is bytes else to_key(key)
        v = to_bytes(value) if self._ser is None else to_bytes(self._ser.dumps(value), "serialized value")
        if ttl is None:
            ttl_ns = 0
        else:
            ttl_ns = to_ns(ttl, "ttl", allow_zero=False, allow_inf=True)
        st = lib.rsl_cache_insert(self._ptr, k, len(k), v, len(v), ttl_ns)
        if st:
            raise self._error(st)

    def __setitem__(self, key: Key, value: Any) -> None:
        """``cache[key] = value``: :meth:`set` with the default TTL."""
        self.set(key, value)

    def delete(self, key: Key) -> bool:
        """Removes ``key``; returns whether it was held (an entry past its
        TTL that no read or sweep has removed yet counts as held)."""
        k = to_key(key)
        st = lib.rsl_cache_remove(self._ptr, k, len(k))
        if st == 0:
            return True
        if st == 102:
            return False
        raise self._error(st)

    def __delitem__(self, key: Key) -> None:
        """Removes ``key``; raises :class:`~resilience.NotFound` if absent."""
        if not self.delete(key):
            raise NotFound(f"{key!r}", 102)

    def clear(self) -> None:
        """Removes every entry (counters are kept)."""
        st = lib.rsl_cache_clear(self._ptr)
        if st:
            raise self._error(st)

    def sweep(self, max_entries: int = 1 << 16) -> int:
        """Removes up to ``max_entries`` expired entries; returns how many.
        Nothing sweeps by itself: call it from a timer if TTLs are used."""
        to_int(max_entries, "max_entries", 0, 2**63 - 1)
        out = scratch.size
        st = lib.rsl_cache_sweep(self._ptr, max_entries, out)
        if st:
            raise self._error(st)
        return out[0]

    # -- sizes -----------------------------------------------------------------
    def __len__(self) -> int:
        """Entries held (expired ones not yet removed included)."""
        out = scratch.size
        st = lib.rsl_cache_len(self._ptr, out, ffi.NULL)
        if st:
            raise self._error(st)
        return out[0]

    @property
    def weight(self) -> int:
        """Bytes held (keys + values)."""
        out = scratch.u64
        st = lib.rsl_cache_len(self._ptr, ffi.NULL, out)
        if st:
            raise self._error(st)
        return out[0]

    def stats(self) -> CacheStats:
        """Counters and occupancy."""
        s = ffi.new("struct rsl_cache_stats *")
        st = lib.rsl_cache_get_stats(self._ptr, s)
        if st:
            raise self._error(st)
        return CacheStats(s.hits, s.misses, s.inserts, s.updates, s.evictions, s.expirations,
                          s.rejections, s.entries, s.weight)

    def close(self) -> None:
        """Frees the cache now (else when garbage-collected). No call may use
        it concurrently or afterwards (they raise InvalidArgument)."""
        p, self._ptr = self._ptr, ffi.NULL
        if p != ffi.NULL:
            ffi.release(p)

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, st: int) -> Exception:
        if st == 1 and self._ptr == ffi.NULL:
            return InvalidArgument("the Cache is closed")
        return error_for(st, "Cache")


_ = math
