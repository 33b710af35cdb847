"""What a process costs, read from /proc."""

from __future__ import annotations

import contextlib
import os


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of ``pid`` (this process by default), in MB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def live_rss_mb() -> float:
    """Resident memory of this process once garbage is collected and glibc has returned its
    free pages (every arena's, holes included): what live objects hold, not the high-water
    marks a churning buffer leaves behind. Plain ``rss_mb`` where the C library has no
    ``malloc_trim`` (musl)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    return rss_mb()
