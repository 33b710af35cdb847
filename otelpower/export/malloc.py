"""glibc's malloc: large blocks go back to the system as soon as they are freed.

glibc serves a block of 128 KiB or more with a mapping of its own, unmapped when freed, but
raises that threshold to the size of every such block freed (up to 32 MiB). Each /metrics
rendering, its gzip and each OTLP request are such blocks (~1 MB at 1,000 plugs), so after
the first few they come from the heap instead, and the heap stays as large as its high-water
mark, in holes between live blocks: at 1,000 plugs 25 of its 56 MB were free, and resident.
A fixed threshold keeps them mapped: -11 MB there (mallinfo2: 2 MB free), for one mmap and
munmap per large block. Both otelpower processes call ``return_large_blocks`` at start.
Other C libraries (musl) and systems do without; an explicit ``MALLOC_MMAP_THRESHOLD_`` wins.
"""

from __future__ import annotations

import os

#: mallopt's parameter number (malloc.h) and glibc's initial value of it
M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; whether it was set."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
