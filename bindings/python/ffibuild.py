"""Build helpers for the `resilience` package (used by setup.py only; not installed).

- ``find_workspace()`` locates the libresilience Cargo workspace.
- ``build_rust(root)`` runs ``cargo build --release -p resilience-ffi``.
- ``cdef_from_header(text)`` turns the generated include/resilience.h into a cffi
  cdef: comments, includes and C++ guards are dropped and every ``#define`` of
  an integer constant is evaluated to a literal, so the same cdef serves both
  cffi's API mode (the compiled extension) and its ABI mode (dlopen of
  ``RESILIENCE_LIBRARY``).
- ``make_ffibuilder(root, cdef)`` returns the cffi builder of ``resilience._ffi``
  that links the static ``libresilience.a``, so a wheel needs no Rust at run time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = Path("include") / "resilience.h"


class BuildError(RuntimeError):
    """A build step failed; the message says what to do."""


def _is_workspace(p: Path) -> bool:
    return (p / "Cargo.toml").is_file() and (p / "ffi" / "Cargo.toml").is_file() and (p / HEADER).is_file()


def find_workspace() -> Path:
    """The Cargo workspace root: $RESILIENCE_WORKSPACE, or the nearest parent of
    this directory holding Cargo.toml, ffi/Cargo.toml and include/resilience.h."""
    env = os.environ.get("RESILIENCE_WORKSPACE")
    if env:
        p = Path(env).resolve()
        if not _is_workspace(p):
            raise BuildError(f"RESILIENCE_WORKSPACE={env} is not the libresilience repository root "
                             f"(it needs Cargo.toml, ffi/Cargo.toml and {HEADER})")
        return p
    for p in [HERE, *HERE.parents]:
        if _is_workspace(p):
            return p
    raise BuildError(
        "cannot find the libresilience Cargo workspace above "
        f"{HERE} (looked for Cargo.toml, ffi/Cargo.toml and {HEADER}). "
        "The package builds the Rust library from the repository it lives in: run "
        "`pip install ./bindings/python` (or `pip wheel ./bindings/python`) from a checkout "
        "with pip >= 21.3 (which builds local directories in place), or set "
        "RESILIENCE_WORKSPACE=/path/to/libresilience.")


def target_dir(root: Path) -> Path:
    """Cargo's target directory ($CARGO_TARGET_DIR, else <root>/target)."""
    env = os.environ.get("CARGO_TARGET_DIR")
    if env:
        p = Path(env)
        return p if p.is_absolute() else (root / p)
    return root / "target"


def find_cargo() -> str:
    """The cargo executable: $CARGO, cargo on PATH, or ~/.cargo/bin/cargo."""
    for cand in (os.environ.get("CARGO"), shutil.which("cargo"),
                 str(Path.home() / ".cargo" / "bin" / "cargo")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    raise BuildError("cargo not found (looked at $CARGO, PATH and ~/.cargo/bin): building the "
                     "`resilience` package from source needs a Rust toolchain; install one with "
                     "rustup (https://rustup.rs), or install a prebuilt wheel made by "
                     "`pip wheel ./bindings/python`.")


def static_library(root: Path) -> Path:
    """Path of the release static library."""
    name = "resilience.lib" if sys.platform == "win32" else "libresilience.a"
    return target_dir(root) / "release" / name


def build_rust(root: Path) -> Path:
    """Builds the release static library with the machine's cargo; returns its path.
    Skipped when RESILIENCE_SKIP_CARGO=1 and the library already exists."""
    lib = static_library(root)
    if os.environ.get("RESILIENCE_SKIP_CARGO") == "1" and lib.is_file():
        return lib
    cmd = [find_cargo(), "build", "--release", "-p", "resilience-ffi"]
    print("resilience: running", " ".join(cmd), "in", root, flush=True)
    try:
        subprocess.run(cmd, cwd=root, check=True)
    except subprocess.CalledProcessError as e:
        raise BuildError(f"`{' '.join(cmd)}` failed with exit code {e.returncode} (see its output above)") from e
    if not lib.is_file():
        raise BuildError(f"cargo succeeded but {lib} does not exist")
    return lib


_DEFINE = re.compile(r"^#define\s+(RSL_\w+)\s+(.+?)\s*$")


def _eval_define(expr: str) -> int | None:
    expr = re.sub(r"\((?:u?int(?:8|16|32|64)_t|size_t)\)", "", expr)  # C casts
    expr = expr.replace("UINT64_MAX", str(2**64 - 1)).replace("UINT32_MAX", str(2**32 - 1))
    expr = expr.replace("SIZE_MAX", str(2**64 - 1))
    if not re.fullmatch(r"[0-9xXa-fA-FuUlL()<>|&+\-* ]+", expr):
        return None
    expr = re.sub(r"(?<=[0-9a-fA-F])[uUlL]+\b", "", expr)
    try:
        return int(eval(expr, {"__builtins__": {}}))  # digits and operators only (checked above)
    except Exception:
        return None


def c_compatible_header(text: str) -> str:
    """The header with every ``typedef struct X {...} X;`` alias dropped whose
    name X is also a function (``rsl_cache_stats`` is both in ABI 1): C, unlike
    C++, rejects that clash. The functions take ``struct X *``, so dropping the
    alias changes nothing else."""
    funcs = set(re.findall(r"^[\w \t*]*?\b(rsl_\w+)\s*\(", text, flags=re.M))
    def fix(m: re.Match) -> str:
        if m.group(1) != m.group(3) or m.group(1) not in funcs:
            return m.group(0)
        return f"struct {m.group(1)} {{{m.group(2)}}};"

    return re.sub(r"^typedef struct (\w+) \{([^{}]*)\} (\w+);", fix, text, flags=re.M)


def cdef_from_header(text: str) -> tuple[str, dict[str, int]]:
    """Returns (cdef source, integer constants) for cffi from the header text."""
    text = c_compatible_header(text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out: list[str] = []
    consts: dict[str, int] = {}
    stack: list[bool] = []  # whether the enclosing #if branch is kept
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            word = s[1:].split()[0] if len(s) > 1 else ""
            if word == "ifdef":
                stack.append("__cplusplus" not in s)
            elif word == "ifndef":
                stack.append(True)  # include guard, or "#ifndef __cplusplus"
            elif word == "if":
                stack.append(False)
            elif word == "else":
                stack[-1] = not stack[-1]
            elif word == "endif":
                stack.pop()
            elif word == "define" and all(stack):
                m = _DEFINE.match(s)
                if m:
                    value = _eval_define(m.group(2))
                    if value is None:
                        raise BuildError(f"cannot evaluate {s!r} for the cffi cdef")
                    consts[m.group(1)] = value
                    out.append(f"#define {m.group(1)} {value}")
            continue
        if all(stack) and s:
            out.append(line.rstrip())
    return "\n".join(out) + "\n", consts


def read_cdef(root: Path) -> tuple[str, dict[str, int]]:
    """cdef_from_header of the workspace's include/resilience.h."""
    return cdef_from_header((root / HEADER).read_text(encoding="utf-8"))


def native_libs() -> list[str]:
    """System libraries the Rust static library needs (rustc's native-static-libs)."""
    if sys.platform.startswith("linux"):
        return ["pthread", "dl", "m", "rt", "util", "gcc_s"]
    if sys.platform == "darwin":
        return ["System", "c", "m", "iconv"]
    return []


# Glue compiled into the extension (API mode only): each helper makes ONE
# call into the public C ABI where the Python side would otherwise make two
# or pass structs by value; cffi's per-call cost dominates these paths. The
# ABI-mode fallbacks with identical semantics are in resilience/_fast.py.
HELPERS_CDEF = """
int64_t rsl_py_breaker_enter(const struct rsl_breaker *breaker);
uint64_t rsl_py_last_retry_after(void);
int32_t rsl_py_breaker_exit(const struct rsl_breaker *breaker, int64_t generation, int32_t outcome,
                            uint64_t start_ns);
uint64_t rsl_py_now_ns(void);
int64_t rsl_py_call_enter(const struct rsl_breaker *breaker);
int32_t rsl_py_call_success(int64_t call);
int32_t rsl_py_call_failure(int64_t call);
int32_t rsl_py_call_ignored(int64_t call);
int32_t rsl_py_cache_get_many_packed(const struct rsl_cache *cache, const uint8_t *keys,
                                     const size_t *key_lens, size_t count, uint8_t *buf, size_t cap,
                                     size_t *value_offsets_out, size_t *value_lens_out,
                                     int32_t *statuses_out);
"""

HELPERS_C = r"""
#include <stdlib.h>
#include <time.h>

static __thread uint64_t rsl_py_retry_after_ns;

/* CLOCK_MONOTONIC in ns: the clock of Python's time.monotonic_ns() on Linux. */
static uint64_t rsl_py_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* rsl_breaker_try_acquire: >= 0 is the permit's generation; < 0 is minus
 * the status, with the retry-after in rsl_py_last_retry_after() (this
 * thread's). */
static int64_t rsl_py_breaker_enter(const struct rsl_breaker *breaker) {
    struct rsl_permit permit;
    uint64_t retry_after = 0;
    rsl_status st = rsl_breaker_try_acquire(breaker, &permit, &retry_after);
    if (st != RSL_OK) {
        rsl_py_retry_after_ns = retry_after;
        return -(int64_t)st;
    }
    if (permit.generation > (uint64_t)INT64_MAX) {
        return -(int64_t)RSL_ERR_INTERNAL;
    }
    return (int64_t)permit.generation;
}

static uint64_t rsl_py_last_retry_after(void) {
    return rsl_py_retry_after_ns;
}

/* rsl_breaker_record of the permit of `generation`, the call having started
 * at `start_ns` (CLOCK_MONOTONIC). */
static int32_t rsl_py_breaker_exit(const struct rsl_breaker *breaker, int64_t generation,
                                   int32_t outcome, uint64_t start_ns) {
    struct rsl_permit permit;
    uint64_t now = rsl_py_now_ns();
    permit.generation = (uint64_t)generation;
    return rsl_breaker_record(breaker, permit, outcome, now > start_ns ? now - start_ns : 0);
}

/* One guarded call (the @breaker decorator): rsl_py_call_enter acquires a
 * permit and stamps the start; one of rsl_py_call_success / _failure /
 * _ignored records it with the elapsed time and frees the record. A call is
 * an opaque token > 0 (a heap pointer) that the Python wrapper passes back
 * exactly once; <= 0 is minus the status. Two one-argument C calls per
 * guarded call instead of two four-argument calls plus a Python clock read:
 * cffi's per-call cost is most of a guarded call's overhead. */
struct rsl_py_call {
    const struct rsl_breaker *breaker;
    uint64_t generation;
    uint64_t start_ns;
};

static int64_t rsl_py_call_enter(const struct rsl_breaker *breaker) {
    struct rsl_permit permit;
    uint64_t retry_after = 0;
    struct rsl_py_call *call;
    rsl_status st = rsl_breaker_try_acquire(breaker, &permit, &retry_after);
    if (st != RSL_OK) {
        rsl_py_retry_after_ns = retry_after;
        return -(int64_t)st;
    }
    call = (struct rsl_py_call *)malloc(sizeof *call);
    if (call == NULL) {
        /* Give the permit back (an ignored outcome frees a half-open slot). */
        rsl_breaker_record(breaker, permit, RSL_OUTCOME_IGNORED, 0);
        return -(int64_t)RSL_ERR_ALLOC;
    }
    call->breaker = breaker;
    call->generation = permit.generation;
    call->start_ns = rsl_py_now_ns();
    return (int64_t)(intptr_t)call;
}

static int32_t rsl_py_call_exit(int64_t token, int32_t outcome) {
    struct rsl_py_call *call = (struct rsl_py_call *)(intptr_t)token;
    struct rsl_permit permit;
    uint64_t now = rsl_py_now_ns();
    int32_t st;
    permit.generation = call->generation;
    st = rsl_breaker_record(call->breaker, permit, outcome,
                            now > call->start_ns ? now - call->start_ns : 0);
    free(call);
    return st;
}

static int32_t rsl_py_call_success(int64_t call) { return rsl_py_call_exit(call, RSL_OUTCOME_SUCCESS); }
static int32_t rsl_py_call_failure(int64_t call) { return rsl_py_call_exit(call, RSL_OUTCOME_FAILURE); }
static int32_t rsl_py_call_ignored(int64_t call) { return rsl_py_call_exit(call, RSL_OUTCOME_IGNORED); }

/* rsl_cache_get_many with the keys packed one after another in `keys`
 * (Python joins them into one bytes object: one buffer instead of one per
 * key); builds the pointer array here. */
static int32_t rsl_py_cache_get_many_packed(const struct rsl_cache *cache, const uint8_t *keys,
                                            const size_t *key_lens, size_t count, uint8_t *buf,
                                            size_t cap, size_t *value_offsets_out,
                                            size_t *value_lens_out, int32_t *statuses_out) {
    const uint8_t *stack_ptrs[64];
    const uint8_t **ptrs = stack_ptrs;
    size_t i, off = 0;
    int32_t st;
    if (count > 64) {
        ptrs = (const uint8_t **)malloc(count * sizeof *ptrs);
        if (ptrs == NULL) {
            return RSL_ERR_ALLOC;
        }
    }
    for (i = 0; i < count; i++) {
        ptrs[i] = keys + off;
        off += key_lens[i];
    }
    st = rsl_cache_get_many(cache, ptrs, key_lens, count, buf, cap, value_offsets_out,
                            value_lens_out, statuses_out);
    if (ptrs != stack_ptrs) {
        free((void *)ptrs);
    }
    return st;
}
"""


LIMIT_HELPERS_CDEF = """
int64_t rsl_py_limiter_try(const struct rsl_limiter *limiter, uint64_t quantity);
int64_t rsl_py_keyed_try(const struct rsl_keyed_limiter *limiter, const uint8_t *key, size_t key_len,
                         uint64_t quantity);
int32_t rsl_py_keyed_acquire_many_packed(const struct rsl_keyed_limiter *limiter, const uint8_t *keys,
                                         const size_t *key_lens, size_t count, uint64_t quantity,
                                         struct rsl_decision *decisions_out);
"""

LIMIT_HELPERS_C = r"""
/* A decision as one integer, for try_acquire: 0 allowed; > 0 denied, the
 * retry-after in ns plus one (INT64_MAX when no wait can help); < 0 minus
 * the status. */
static int64_t rsl_py_decision_code(rsl_status st, const struct rsl_decision *d) {
    if (st != RSL_OK) {
        return -(int64_t)st;
    }
    if (d->allowed) {
        return 0;
    }
    if (d->retry_after_ns >= (uint64_t)INT64_MAX - 1) {
        return INT64_MAX;
    }
    return (int64_t)d->retry_after_ns + 1;
}

static int64_t rsl_py_limiter_try(const struct rsl_limiter *limiter, uint64_t quantity) {
    struct rsl_decision d;
    rsl_status st = rsl_limiter_acquire(limiter, quantity, &d);
    return rsl_py_decision_code(st, &d);
}

static int64_t rsl_py_keyed_try(const struct rsl_keyed_limiter *limiter, const uint8_t *key,
                                size_t key_len, uint64_t quantity) {
    struct rsl_decision d;
    rsl_status st = rsl_keyed_limiter_acquire(limiter, key, key_len, quantity, &d);
    return rsl_py_decision_code(st, &d);
}

/* rsl_keyed_limiter_acquire_many over keys packed one after another. */
static int32_t rsl_py_keyed_acquire_many_packed(const struct rsl_keyed_limiter *limiter,
                                                const uint8_t *keys, const size_t *key_lens,
                                                size_t count, uint64_t quantity,
                                                struct rsl_decision *decisions_out) {
    const uint8_t *stack_ptrs[64];
    const uint8_t **ptrs = stack_ptrs;
    size_t i, off = 0;
    int32_t st;
    if (count > 64) {
        ptrs = (const uint8_t **)malloc(count * sizeof *ptrs);
        if (ptrs == NULL) {
            return RSL_ERR_ALLOC;
        }
    }
    for (i = 0; i < count; i++) {
        ptrs[i] = keys + off;
        off += key_lens[i];
    }
    st = rsl_keyed_limiter_acquire_many(limiter, ptrs, key_lens, count, quantity, decisions_out);
    if (ptrs != stack_ptrs) {
        free((void *)ptrs);
    }
    return st;
}
"""


def make_ffibuilder(root: Path, cdef: str):
    """The cffi builder for the API-mode extension `resilience._ffi`."""
    from cffi import FFI

    ffib = FFI()
    has_limit = "rsl_keyed_limiter_acquire_many" in cdef  # the limiter ABI is there
    ffib.cdef(cdef + HELPERS_CDEF + (LIMIT_HELPERS_CDEF if has_limit else ""))
    extra_link = []
    if sys.platform.startswith("linux"):
        # Keep Rust's std symbols (and the rsl_ ones) private to the extension.
        extra_link.append("-Wl,--exclude-libs,ALL")
    # The header itself, made valid C (see c_compatible_header), inlined.
    header = c_compatible_header((root / HEADER).read_text(encoding="utf-8"))
    ffib.set_source(
        "resilience._ffi",
        header + HELPERS_C + (LIMIT_HELPERS_C if has_limit else ""),
        extra_objects=[str(static_library(root))],
        libraries=native_libs(),
        extra_link_args=extra_link,
    )
    return ffib
