"""Keeping a long run's resident memory to what it uses, on glibc.

glibc's malloc serves blocks above a threshold with their own memory maps, returned to the system
when freed, and smaller ones from the heap, whose freed pages mostly stay with the process. The
threshold moves up to the size of the largest mapped block freed so far (up to 32 MB), so after a
few freed buffers of a megabyte (a segment's audio, its PCM bytes) every such buffer comes from the
heap, and an hour of forced alignment leaves the heap fragmented and large: resident memory that
grows with the recording although nothing in it is still used (EXPERIMENTS.md, issue 22). Both
functions are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
_MAP_FROM = 256 * 1024  # bytes: blocks from this size on get their own maps


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def fix_mmap_threshold(nbytes: int = _MAP_FROM) -> bool:
    """Serve every block of at least ``nbytes`` from its own memory map from now on (and stop
    glibc from raising that threshold), so big temporary buffers go back to the system when freed.
    Returns whether the C library took it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, int(nbytes)) == 1)


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (``malloc_trim(0)``); returns whether any was."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
