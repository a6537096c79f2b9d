"""Loading, ABI check, RESILIENCE_LIBRARY (ABI mode), and the GIL."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import resilience
from conftest import run_python
from resilience import MpmcQueue
from resilience._native import HEADER_ABI_VERSION, ffi, lib


def test_abi_and_versions() -> None:
    assert resilience.abi_version == HEADER_ABI_VERSION == lib.RSL_ABI_VERSION
    assert resilience.library_version == "%d.%d.%d" % (
        lib.RSL_VERSION_MAJOR, lib.RSL_VERSION_MINOR, lib.RSL_VERSION_PATCH)
    assert resilience.mode in ("api", "abi")


def test_py_typed_is_shipped() -> None:
    assert (Path(resilience.__file__).parent / "py.typed").is_file()


def test_every_public_name_has_a_docstring() -> None:
    import inspect

    missing = []
    for name in resilience.__all__:
        obj = getattr(resilience, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not (obj.__doc__ or "").strip():
                missing.append(name)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not callable(member) and not isinstance(member, property):
                        continue
                    if not (getattr(member, "__doc__", "") or "").strip():
                        missing.append(f"{name}.{attr}")
    assert missing == []


def test_abi_mode_through_environment_variable(shared_lib: Path) -> None:
    r = run_python(
        "import resilience as r\n"
        "assert r.mode == 'abi', r.mode\n"
        "c = r.Cache(max_entries=8); c['k'] = b'v'; assert c.get_many(['k', 'x']) == [b'v', None]\n"
        "b = r.CircuitBreaker(); b.record(b.try_acquire())\n"
        "f = b(lambda x: x + 1); assert f(1) == 2 and b.metrics().calls == 2\n"
        "t = r.TokenBucket(1, per=3600, burst=1); assert t.try_acquire() and not t.try_acquire()\n"
        "k = r.KeyedLimiter(1, per=3600, burst=1)\n"
        "assert k.try_acquire_many(['a', 'a', 'b']) == [True, False, True] and not k.try_acquire('b')\n"
        "q = r.MpmcQueue(4); q.push_many([1, 2]); assert q.pop_many(4) == [1, 2]\n"
        "print('ok')\n",
        env={"RESILIENCE_LIBRARY": str(shared_lib)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_missing_library_is_a_clear_import_error(tmp_path: Path) -> None:
    r = run_python("import resilience", env={"RESILIENCE_LIBRARY": str(tmp_path / "nope.so")})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "RESILIENCE_LIBRARY" in r.stderr


def test_abi_mismatch_is_a_clear_import_error(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a fake library")
    src = tmp_path / "fake.c"
    src.write_text("#include <stdint.h>\n"
                   "uint32_t rsl_abi_version(void) { return 999; }\n"
                   "const char *rsl_version(void) { return \"9.9.9\"; }\n")
    so = tmp_path / "libfake.so"
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(so)], check=True)
    r = run_python("import resilience", env={"RESILIENCE_LIBRARY": str(so)})
    assert r.returncode != 0
    assert "ABI version mismatch" in r.stderr and "999" in r.stderr
    assert f"RSL_ABI_VERSION {HEADER_ABI_VERSION}" in r.stderr


def _progress_during(call) -> int:  # type: ignore[no-untyped-def]
    """How far a spinning Python thread gets while `call()` runs, with the
    switch interval so long that it only runs if `call` releases the GIL."""
    counter = [0]
    stop = threading.Event()
    running = threading.Event()

    def spin() -> None:
        running.set()
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)  # hand the GIL back: only a GIL-free `call` lets us run

    old = sys.getswitchinterval()
    t = threading.Thread(target=spin)
    t.start()
    running.wait()
    try:
        sys.setswitchinterval(30.0)
        time.sleep(0.01)
        before = counter[0]
        call()
        after = counter[0]
    finally:
        sys.setswitchinterval(old)
        stop.set()
        t.join()
    return after - before


def test_c_calls_release_the_gil() -> None:
    n = 1 << 22
    q = MpmcQueue(n)
    vals = ffi.new("uint64_t[]", n)
    out = ffi.new("size_t *")
    holding = _progress_during(lambda: sum(range(4_000_000)))  # C code holding the GIL
    releasing = _progress_during(lambda: lib.rsl_mpmc_push_many(q._ptr, vals, n, out))
    assert out[0] == n
    assert holding == 0, "the harness must see no progress while the GIL is held"
    assert releasing > 0, "the spinning thread never ran during a long C call: the GIL was held"
