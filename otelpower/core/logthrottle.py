"""Rate limit for per-device state-change log lines (a flapping plug must not flood the log).

Each key may log ``burst`` lines per ``window_s``. A reader asks again on every poll, so the
device's current state is logged as soon as the window allows, with how many changes were
held back meanwhile: the last line in the log always ends up being the current state.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LogThrottle:
    def __init__(
        self, burst: int = 3, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._sent: dict[str, list[float]] = {}  # a list: a deque costs 600 B per key

    def allow(self, key: str, now: float | None = None) -> bool:
        """True (and counted) when ``key`` may log a line now."""
        now = self._clock() if now is None else now
        sent = self._sent.setdefault(key, [])
        while sent and now - sent[0] >= self.window_s:
            del sent[0]
        if len(sent) >= self.burst:
            return False
        sent.append(now)
        return True
