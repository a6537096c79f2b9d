"""Builds the `resilience` package: cargo builds libresilience.a, cffi compiles
the API-mode extension `resilience._ffi` with it linked in, and the ABI-mode
declarations `resilience._ffi_abi` (for $RESILIENCE_LIBRARY) are generated
from the same header. Everything else is in pyproject.toml."""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ffibuild  # noqa: E402  (the build helper next to this file)


class BuildResilience(build_ext):
    """Runs cargo, then compiles the cffi extension against the static library."""

    def run(self):
        try:
            root = ffibuild.find_workspace()
            ffibuild.build_rust(root)
            cdef, _consts = ffibuild.read_cdef(root)
        except ffibuild.BuildError as e:
            sys.exit(f"error: building resilience: {e}")
        builder = ffibuild.make_ffibuilder(root, cdef)
        os.makedirs(self.build_temp, exist_ok=True)
        c_file = os.path.join(self.build_temp, "_resilience_ffi.c")
        builder.emit_c_code(c_file)
        _name, _src, _ext, kwds = builder._assigned_source
        for ext in self.extensions:
            if ext.name == "resilience._ffi":
                ext.sources = [c_file]
                for attr, value in kwds.items():
                    getattr(ext, attr).extend(value)
        # Out-of-line ABI mode module: pre-parsed declarations, used only when
        # $RESILIENCE_LIBRARY names a shared library to dlopen.
        from cffi import FFI

        abi = FFI()
        abi.cdef(cdef)
        abi.set_source("resilience._ffi_abi", None)
        for base in {self.build_lib} | ({"src"} if self.inplace else set()):
            out_dir = os.path.join(base, "resilience")
            os.makedirs(out_dir, exist_ok=True)
            abi.emit_python_code(os.path.join(out_dir, "_ffi_abi.py"))
        super().run()


setup(
    ext_modules=[
        Extension("resilience._ffi", sources=["_placeholder.c"]),
        # The @breaker per-call path in C (optional: breaker.py falls back to cffi).
        Extension("resilience._speedups", sources=["src/resilience/_speedups.c"], optional=True),
    ],
    cmdclass={"build_ext": BuildResilience},
)
