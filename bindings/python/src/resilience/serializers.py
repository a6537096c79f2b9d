"""Serializers turn objects into the bytes the C library stores.

A serializer is any object with ``dumps(obj) -> bytes`` and
``loads(bytes) -> obj`` (the ``pickle`` module itself qualifies).

.. warning::
   :data:`PICKLE` can run arbitrary code when it loads bytes. Use it only for
   data that this process (or one you trust) stored — e.g. an in-process cache
   or idempotency store — never for bytes that may come from elsewhere. Prefer
   :data:`JSON` for plain data.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python < 3.8
    Protocol = object  # type: ignore[assignment,misc]

__all__ = ["Serializer", "PICKLE", "JSON", "RAW"]


class Serializer(Protocol):
    """Anything with ``dumps(obj) -> bytes`` and ``loads(bytes) -> obj``."""

    def dumps(self, obj: Any) -> bytes:
        """Encodes ``obj``."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decodes what :meth:`dumps` made."""
        ...


class _Pickle:
    """pickle (highest protocol). Loads run code: trusted data only."""

    def dumps(self, obj: Any) -> bytes:
        """pickle.dumps with the highest protocol."""
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        """pickle.loads."""
        return pickle.loads(data)

    def __repr__(self) -> str:
        return "resilience.PICKLE"


class _Json:
    """Compact UTF-8 JSON (plain data only: dict, list, str, numbers, bool, None)."""

    def dumps(self, obj: Any) -> bytes:
        """json.dumps, compact, UTF-8."""
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        """json.loads."""
        return json.loads(data)

    def __repr__(self) -> str:
        return "resilience.JSON"


class _Raw:
    """The identity on bytes (values must be bytes-like)."""

    def dumps(self, obj: Any) -> bytes:
        """bytes(obj) for bytes-like objects."""
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        raise TypeError(f"RAW stores bytes-like values, not {type(obj).__name__}")

    def loads(self, data: bytes) -> Any:
        """The bytes themselves."""
        return data

    def __repr__(self) -> str:
        return "resilience.RAW"


#: pickle, highest protocol. **Loading pickles runs code**: trusted data only.
PICKLE: Serializer = _Pickle()
#: Compact UTF-8 JSON for plain data.
JSON: Serializer = _Json()
#: bytes in, bytes out.
RAW: Serializer = _Raw()
