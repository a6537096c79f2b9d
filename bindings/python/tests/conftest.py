"""Shared helpers for the resilience test suite."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Coroutine, Dict, Optional

import pytest

#: The repository root (bindings/python/tests -> ../../..).
ROOT = Path(__file__).resolve().parents[3]
SHARED_LIB = ROOT / "target" / "release" / "libresilience.so"


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, so the suite needs no pytest-asyncio."""
    return asyncio.run(coro)


def run_python(code: str, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (the same venv); returns the result."""
    full_env = dict(os.environ)
    full_env.pop("RESILIENCE_LIBRARY", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=full_env, cwd=cwd or "/",
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def shared_lib() -> Path:
    """target/release/libresilience.so (skips when it was not built)."""
    if not SHARED_LIB.is_file():
        pytest.skip(f"{SHARED_LIB} not built (cargo build --release -p resilience-ffi)")
    return SHARED_LIB
