"""The emulated plugs' clock: wall time plus an offset a test can move.

Moving it forward is the plug living through that time: its meters count the energy of the
skipped span and its day and month figures reset at the plug's local midnight and month
start, so a test crosses midnight or month end in seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone


class PlugClock:
    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        """Epoch seconds as the plugs see them."""
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds

    def set_local(self, when: datetime, utc_offset_s: int) -> None:
        """Make ``now()`` the moment that reads ``when`` (naive) at ``utc_offset_s``."""
        aware = when.replace(tzinfo=timezone(timedelta(seconds=utc_offset_s)))
        self.offset_s = aware.timestamp() - time.time()


def local(epoch: float, utc_offset_s: int) -> datetime:
    """Naive local wall-clock time of ``epoch`` at ``utc_offset_s``."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None) + timedelta(seconds=utc_offset_s)


def local_epoch(wall: datetime, utc_offset_s: int) -> float:
    """Epoch seconds of the naive local ``wall`` time at ``utc_offset_s``."""
    return (wall - timedelta(seconds=utc_offset_s)).replace(tzinfo=UTC).timestamp()
