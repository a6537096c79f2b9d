"""Loads the C library and checks its ABI version.

By default the compiled cffi extension ``resilience._ffi`` is used (API mode:
``libresilience.a`` is linked into it, so nothing else is loaded). When the
environment variable ``RESILIENCE_LIBRARY`` names a shared library
(``libresilience.so``), that library is loaded instead with cffi's ABI mode
(``dlopen``), using the declarations generated from the same header at build
time (``resilience._ffi_abi``). ABI mode costs roughly twice as much per call;
use it to try another build of the library without rebuilding the package.
"""

from __future__ import annotations

import os
from typing import Any

#: Environment variable naming a libresilience shared library to load instead
#: of the one linked into the extension.
LIBRARY_ENV = "RESILIENCE_LIBRARY"

ffi: Any
lib: Any
#: "api" (compiled extension, static library inside) or "abi" (dlopen).
MODE: str
#: The library file in use ("" for the library linked into the extension).
LIBRARY_PATH: str

_path = os.environ.get(LIBRARY_ENV, "")
if _path:
    try:
        from ._ffi_abi import ffi  # type: ignore[no-redef]
    except ImportError as e:  # pragma: no cover - only without a build
        raise ImportError(f"resilience: {LIBRARY_ENV} is set but the package was built without "
                          f"its ABI-mode declarations ({e}); reinstall it with pip") from e
    try:
        lib = ffi.dlopen(_path)
    except OSError as e:
        raise ImportError(f"resilience: cannot load {LIBRARY_ENV}={_path!r}: {e}. Point it at a "
                          "libresilience.so (e.g. target/release/libresilience.so after "
                          "`cargo build --release -p resilience-ffi`) or unset it.") from e
    MODE, LIBRARY_PATH = "abi", _path
else:
    try:
        from ._ffi import ffi, lib  # type: ignore[no-redef]
    except ImportError as e:
        raise ImportError(
            "resilience: the compiled extension resilience._ffi is missing or broken "
            f"({e}). Install the package with `pip install ./bindings/python` from the "
            "libresilience repository (needs cargo), or from a wheel built by "
            f"`pip wheel ./bindings/python`; or set {LIBRARY_ENV}=/path/to/libresilience.so.") from e
    MODE, LIBRARY_PATH = "api", ""

#: RSL_ABI_VERSION of the header this package was built from.
HEADER_ABI_VERSION: int = int(lib.RSL_ABI_VERSION)
try:
    #: rsl_abi_version() of the library actually loaded.
    LIBRARY_ABI_VERSION: int = int(lib.rsl_abi_version())
except AttributeError as e:  # a library too old to have it
    raise ImportError(f"resilience: {LIBRARY_PATH or 'the linked library'} has no "
                      "rsl_abi_version(): it is not a libresilience build this package can use") from e

if LIBRARY_ABI_VERSION != HEADER_ABI_VERSION:
    where = f"{LIBRARY_ENV}={LIBRARY_PATH!r}" if LIBRARY_PATH else "the library linked into resilience._ffi"
    raise ImportError(
        f"resilience: ABI version mismatch: {where} implements ABI {LIBRARY_ABI_VERSION}, but this "
        f"package was built against include/resilience.h with RSL_ABI_VERSION {HEADER_ABI_VERSION}. "
        + (f"Unset {LIBRARY_ENV} or point it at a library built from the same checkout "
           "(`cargo build --release -p resilience-ffi`)." if LIBRARY_PATH else
           "Reinstall the package from the same checkout: `pip install --force-reinstall "
           "./bindings/python`."))

#: The library version string, e.g. "0.1.0".
LIBRARY_VERSION: str = ffi.string(lib.rsl_version()).decode()
