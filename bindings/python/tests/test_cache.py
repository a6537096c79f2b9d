"""Cache: mapping behaviour, TTLs, big values, batches, serializers, threads."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta

import pytest

import resilience
from resilience import JSON, PICKLE, Cache, InvalidArgument, NotFound, TooLarge


def test_mapping_basics() -> None:
    c = Cache(max_entries=100)
    c["a"] = b"1"
    c.set(b"b", bytearray(b"2"))
    c.set("\u00e9", memoryview(b"3"))
    assert c["a"] == b"1" and c.get(b"a") == b"1"
    assert c["b"] == b"2" and c["\u00e9".encode()] == b"3"
    assert c.get("zz") is None and c.get("zz", b"d") == b"d"
    with pytest.raises(NotFound):
        c["zz"]
    with pytest.raises(KeyError):  # NotFound is a KeyError
        c["zz"]
    assert "a" in c and "zz" not in c and 5 not in c
    assert len(c) == 3 and c.weight == 7  # keys + values: a1 b2 \u00e9(2 bytes)3
    assert c.delete("a") is True and c.delete("a") is False
    with pytest.raises(NotFound):
        del c["a"]
    del c["b"]
    c.clear()
    assert len(c) == 0


def test_empty_key_and_value() -> None:
    c = Cache(max_entries=10)
    c[b""] = b""
    assert c[b""] == b"" and b"" in c


def test_values_bigger_than_the_scratch_buffer() -> None:
    c = Cache(max_weight=64 << 20, shards=1)
    big = bytes(range(256)) * 4096  # 1 MiB
    c["big"] = big
    c["small"] = b"s"
    assert c["big"] == big
    assert c.get_many(["small", "big", "none", "big"]) == [b"s", big, None, big]


def test_get_many() -> None:
    c = Cache(max_entries=1000)
    for i in range(100):
        c[f"k{i}"] = str(i).encode() * (i % 7)
    keys = [f"k{i}" for i in range(0, 120, 3)]
    expect = [c.get(k) for k in keys]
    assert c.get_many(keys) == expect
    assert c.get_many(iter(keys), default=b"-")[-1] == b"-"
    assert c.get_many([]) == []
    with pytest.raises(TypeError):
        c.get_many(["a", 1])  # type: ignore[list-item]


def test_ttl() -> None:
    c = Cache(max_entries=100, default_ttl=timedelta(milliseconds=50))
    c["default"] = b"x"
    c.set("short", b"y", ttl=0.05)
    c.set("never", b"z", ttl=math.inf)
    c.set("long", b"w", ttl=60)
    time.sleep(0.12)
    assert "default" not in c and "short" not in c
    assert len(c) == 4  # expired but not yet removed
    assert c.sweep() == 2
    assert len(c) == 2
    assert c.get("default") is None and c.get("short") is None
    assert c["never"] == b"z" and c["long"] == b"w"
    s = c.stats()
    assert s.expirations >= 2


def test_stats() -> None:
    c = Cache(max_entries=2, shards=1)
    c["a"] = b"1"
    c["a"] = b"2"
    c.get("a")
    c.get("b")
    for k in "bcdef":
        c[k] = b"v"
    s = c.stats()
    assert (s.hits, s.misses, s.updates) == (1, 1, 1)
    assert s.inserts == 6 and s.evictions == 4 and s.entries == 2


def test_serializers() -> None:
    j = Cache(max_entries=10, serializer=JSON)
    j["k"] = {"a": [1, 2, None], "b": "\u00e9"}
    assert j["k"] == {"a": [1, 2, None], "b": "\u00e9"}
    assert j.get_many(["k", "x"]) == [{"a": [1, 2, None], "b": "\u00e9"}, None]
    p = Cache(max_entries=10, serializer=PICKLE)
    p["k"] = (1, {2, 3}, b"x")
    assert p["k"] == (1, {2, 3}, b"x")
    with pytest.raises(TypeError, match="serializer"):
        Cache(max_entries=10)["k"] = "a str is not bytes"
    with pytest.raises(TypeError):
        Cache(max_entries=10, serializer=object())  # type: ignore[arg-type]


def test_too_large_entry_is_refused_and_removes_old_value() -> None:
    c = Cache(max_weight=1024, shards=1)
    c["k"] = b"small"
    with pytest.raises(TooLarge):
        c["k"] = b"x" * 2048
    assert "k" not in c  # never read stale


@pytest.mark.parametrize("kw", [
    dict(max_entries=0, max_weight=0), dict(shards=3), dict(max_entries=-1), dict(default_ttl=-1),
    dict(max_weight=2**64), dict(default_ttl=-math.inf),
])
def test_bad_settings(kw: dict) -> None:
    with pytest.raises(InvalidArgument):
        Cache(**kw)


def test_bad_arguments() -> None:
    c = Cache(max_entries=10)
    with pytest.raises(TypeError):
        c.get(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.set(None, b"x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        c.set("k", b"x", ttl=-1)
    with pytest.raises(InvalidArgument):
        c.set("k", b"x", ttl=0)
    with pytest.raises(InvalidArgument):
        c.set("k", b"x", ttl=-math.inf)  # not a bare OverflowError
    with pytest.raises(TypeError):
        c.set("k", b"x", ttl="1")  # type: ignore[arg-type]
    c.close()
    with pytest.raises(InvalidArgument, match="closed"):
        c.get("k")


def test_threads_hammering_one_cache_exact_accounting() -> None:
    c = Cache(max_entries=10_000)
    n_threads, per, keys = 4, 5_000, 64
    for k in range(keys):
        c[f"k{k}"] = f"v{k}".encode()
    wrong = [0] * n_threads

    def worker(i: int) -> None:
        for j in range(per):
            k = (i * 7 + j) % (keys * 2)  # half hit, half miss
            v = c.get(f"k{k}")
            if (v is not None) != (k < keys) or (v is not None and v != f"v{k}".encode()):
                wrong[i] += 1
            if j % 16 == 0:
                vals = c.get_many([f"k{k}", f"k{k + 1}"])
                if vals[0] != v:
                    wrong[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert wrong == [0] * n_threads
    s = c.stats()
    lookups = n_threads * per + n_threads * ((per + 15) // 16) * 2
    assert s.hits + s.misses == lookups  # every lookup counted exactly once
    assert s.misses == sum(1 for i in range(n_threads) for j in range(per) if (i * 7 + j) % (keys * 2) >= keys) + \
        sum(sum(1 for k in ((i * 7 + j) % (keys * 2), (i * 7 + j) % (keys * 2) + 1) if k >= keys)
            for i in range(n_threads) for j in range(0, per, 16))


def test_module_reexports() -> None:
    assert resilience.Cache is Cache


def test_get_many_key_packing_paths() -> None:
    c = Cache(max_entries=100)
    c["\u00e9"] = b"accent"
    c["e"] = b"plain"
    c[b"\xff"] = b"raw"
    assert c.get_many(["e", "\u00e9"]) == [b"plain", b"accent"]  # non-ASCII: per-key encode
    assert c.get_many(["e", b"\xff", bytearray(b"e")]) == [b"plain", b"raw", b"plain"]  # mixed types
    assert c.get_many(k for k in ["e", "x"]) == [b"plain", None]  # any iterable
