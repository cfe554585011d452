"""app.engine.allocator: glibc's thresholds are set once, and the user's own setting wins."""

import ctypes
import ctypes.util
import sys

import pytest

from app.engine import allocator

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not ctypes.util.find_library("c"), reason="glibc's mallopt"
)


@pytest.fixture
def fresh(monkeypatch):
    """The module as in a new process (nothing set yet), without the user's MALLOC_ settings."""
    monkeypatch.setattr(allocator, "_applied", None)
    for key in (*allocator.ENVIRONMENT_KEYS, "GLIBC_TUNABLES"):
        monkeypatch.delenv(key, raising=False)
    return allocator


@glibc_only
def test_the_thresholds_are_set_once_per_process(fresh, monkeypatch):
    calls = []
    real = ctypes.CDLL

    class CountingLibc:
        def __init__(self, name):
            self._libc = real(name)

        @property
        def mallopt(self):
            function = self._libc.mallopt

            def counted(parameter, value):
                calls.append((parameter, value))
                return function(parameter, value)

            return counted

    monkeypatch.setattr(allocator.ctypes, "CDLL", CountingLibc)
    assert fresh.keep_freed_memory() is True
    assert fresh.keep_freed_memory() is True  # the second call changes nothing
    assert calls[:2] == [
        (allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD),
        (allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD),
    ]
    assert len(calls) in (2, 3)  # a third call only where glibc refused the first mmap threshold


@pytest.mark.parametrize(
    "key, value", [("MALLOC_TRIM_THRESHOLD_", "131072"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")]
)
def test_a_malloc_setting_in_the_environment_is_left_alone(fresh, monkeypatch, key, value):
    monkeypatch.setenv(key, value)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: pytest.fail("mallopt must not be called"))
    assert fresh.keep_freed_memory() is False


def test_without_glibc_nothing_is_set_and_nothing_fails(fresh, monkeypatch):
    def missing(name):
        raise OSError("no libc here")

    monkeypatch.setattr(allocator.ctypes, "CDLL", missing)
    assert fresh.keep_freed_memory() is False


@glibc_only
def test_glibc_accepts_the_thresholds():
    """mallopt answers 0 for a value it refuses; the module's values are ones this glibc takes."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    assert libc.mallopt(allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD) == 1
    assert libc.mallopt(allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD) == 1 or (
        libc.mallopt(allocator.M_MMAP_THRESHOLD, allocator.OLD_GLIBC_MMAP_THRESHOLD) == 1
    )
