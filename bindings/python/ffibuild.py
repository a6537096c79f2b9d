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


def make_ffibuilder(root: Path, cdef: str):
    """The cffi builder for the API-mode extension `resilience._ffi`."""
    from cffi import FFI

    ffib = FFI()
    ffib.cdef(cdef)
    extra_link = []
    if sys.platform.startswith("linux"):
        # Keep Rust's std symbols (and the rsl_ ones) private to the extension.
        extra_link.append("-Wl,--exclude-libs,ALL")
    # The header itself, made valid C (see c_compatible_header), inlined.
    header = c_compatible_header((root / HEADER).read_text(encoding="utf-8"))
    ffib.set_source(
        "resilience._ffi",
        header,
        extra_objects=[str(static_library(root))],
        libraries=native_libs(),
        extra_link_args=extra_link,
    )
    return ffib
