"""Keep freed memory in the process on glibc, so a training step does not fault its pages again.

PyTorch's CPU tensors come from the C library's malloc. glibc hands the free top of its heap
back to the system once it exceeds a trim threshold (128 KiB, raised dynamically), and a guided
step, which allocates and frees more transient tensors than a plain one, then faults the same
pages in again on its next step (docs/step_cost.md: 11,000 minor page faults per guided step
against 500 per plain one). Raising the trim threshold and the mmap threshold (1 GiB; glibc before
2.35 refuses more than 32 MiB, which is used there) keeps those blocks in the heap; the process keeps its
peak size instead of shrinking between steps, which is what a training process reaches anyway.
PyTorch's CPU tuning guide suggests jemalloc or tcmalloc for the same reason; those need a
preload at launch, this needs nothing. Measured by `bench/allocator_cost.py`.

No effect (and no error) off glibc: macOS, Windows, musl.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB, i.e. never trim the heap's top
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB (a 64 x 64 x 224 x 224 activation is 822 MB) stay in the heap
OLD_GLIBC_MMAP_THRESHOLD = 32 << 20  # older glibc refuse more than half their 64 MiB heap size
ENVIRONMENT_KEYS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")  # the user's own setting wins

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds once per process. Returns whether they are set
    (False off glibc, or when the user set malloc's behaviour through the environment:
    MALLOC_*_ variables or GLIBC_TUNABLES glibc.malloc.*)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if not sys.platform.startswith("linux") or any(key in os.environ for key in ENVIRONMENT_KEYS) or "malloc." in tunables:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trimmed = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    mapped = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(M_MMAP_THRESHOLD, OLD_GLIBC_MMAP_THRESHOLD)
    _applied = bool(trimmed and mapped)
    logger.debug("glibc malloc thresholds set: %s", _applied)
    return _applied
