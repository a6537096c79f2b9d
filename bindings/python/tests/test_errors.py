"""Every status code maps to its own exception class under ResilienceError."""

from __future__ import annotations

import pytest

import resilience
from resilience import errors
from resilience._native import lib

ALL_CODES = {
    1: errors.NullArgument, 2: errors.InvalidArgument, 3: errors.BufferTooSmall, 4: errors.TooLarge,
    100: errors.Full, 101: errors.Empty, 102: errors.NotFound, 103: errors.Rejected,
    104: errors.Timeout, 105: errors.NotOwner, 106: errors.Mismatch, 107: errors.Stale,
    108: errors.Closed, 200: errors.IoError, 201: errors.IoUringUnavailable, 202: errors.EngineState,
    900: errors.Panic, 901: errors.AllocError, 902: errors.InternalError,
}


def header_status_codes() -> dict:
    """RSL_ERR_* codes as the compiled header declares them."""
    return {name: getattr(lib, name) for name in dir(lib) if name.startswith("RSL_ERR_")}


def test_every_header_code_has_a_class() -> None:
    codes = header_status_codes()
    assert len(codes) == len(ALL_CODES)
    for name, code in codes.items():
        assert code in ALL_CODES, name


@pytest.mark.parametrize("code,cls", sorted(ALL_CODES.items()))
def test_check_maps_each_code(code: int, cls: type) -> None:
    with pytest.raises(cls) as info:
        resilience.check(code)
    assert type(info.value) is cls
    assert isinstance(info.value, resilience.ResilienceError)
    assert info.value.status == code
    assert cls.code == code
    assert info.value.message  # names the code at least


def test_check_ok_and_unknown() -> None:
    resilience.check(0)
    with pytest.raises(resilience.ResilienceError) as info:
        resilience.check(12345)
    assert type(info.value) is resilience.ResilienceError
    assert info.value.status == 12345
    assert "unknown" in str(info.value)


def test_builtin_bases() -> None:
    assert issubclass(resilience.NotFound, KeyError)
    assert issubclass(resilience.InvalidArgument, ValueError)
    assert issubclass(resilience.TooLarge, ValueError)
    assert issubclass(resilience.Timeout, TimeoutError)
    assert issubclass(resilience.IoError, OSError)
    assert issubclass(resilience.AllocError, MemoryError)
    for sub in (resilience.CircuitOpen, resilience.RateLimited, resilience.BulkheadFull,
                resilience.InProgress):
        assert issubclass(sub, resilience.Rejected)


def test_rejected_carries_retry_after() -> None:
    e = resilience.RateLimited("slow down", retry_after=1.5)
    assert e.retry_after == 1.5 and e.status == 103


def test_panic_never_crosses_the_boundary() -> None:
    with pytest.raises(resilience.Panic) as info:
        resilience.check(lib.rsl_selftest_panic())
    assert "panic" in str(info.value).lower()


def test_last_error_detail_is_in_the_message() -> None:
    with pytest.raises(resilience.InvalidArgument) as info:
        resilience.Cache(max_entries=0, max_weight=0)  # no limit at all
    assert ":" in str(info.value)  # "<code name>: <detail from rsl_last_error>"
