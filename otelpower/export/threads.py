"""Background threads named for what they do, also for the OS (``top -H``, ``ps -L``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable


def start_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """Start a daemon thread running ``target``; its OS name is ``name`` (15 bytes at most)."""

    def run() -> None:
        # not Linux, or /proc is not mounted: unnamed
        with (
            contextlib.suppress(OSError),
            open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm,
        ):
            comm.write(name[:15])
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
