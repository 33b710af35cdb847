"""What a process costs, read from /proc."""

from __future__ import annotations

import os


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of ``pid`` (this process by default), in MB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
