"""Freed memory kept for the next request: ``sfmock serve`` tunes glibc's allocator.

Each 1 MB request body passes through a few buffers of its size (the body, its text, the
data URL). With glibc's defaults the heap above 2 MB or so is handed back to the kernel
as soon as it is free, and the next request's buffers fault it in again, a page at a
time: 930 page faults and 2 ms of system time a 1 MB request, as much as all the rest of
its handling. Keeping up to 64 MB of freed heap (and making buffers under 32 MB from the
heap, not from a mapping of their own) ends that; the process's peak memory is what it
was. Only the server process does this (a pytest session's fakes share the user's
process and leave its allocator alone); elsewhere than glibc it is a no-op.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 64 * 2**20
MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for the threshold it adjusts itself


def keep_freed_memory() -> bool:
    """Tune glibc's allocator (see the module); whether it was tuned."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's; musl has none
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
