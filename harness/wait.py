"""Bounded waits on a condition: poll it until it holds, fail after a timeout.

Never a wait on the clock alone: the timeout only bounds how long a condition may take.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any


async def wait_for(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
    *,
    in_thread: bool = False,
) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that.

    ``in_thread`` runs a blocking check (an HTTP query, say) in a thread, so the readers
    sharing this event loop keep running meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(condition) if in_thread else condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout:g}s")
        await asyncio.sleep(interval)


def wait_for_sync(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """``wait_for`` for code without an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout:g}s")
        time.sleep(interval)


async def wait_progress(
    measure: Callable[[], float],
    target: float,
    stall_s: float,
    interval: float = 1.0,
    what: str = "progress",
    *,
    in_thread: bool = False,
) -> float:
    """Poll ``measure`` until it reaches ``target``; fail only when it has not grown for
    ``stall_s``: a busy machine may be slow, but what is measured must not stop."""
    best, since = -math.inf, time.monotonic()
    while True:
        value = await asyncio.to_thread(measure) if in_thread else measure()
        if value >= target:
            return value
        if value > best:
            best, since = value, time.monotonic()
        elif time.monotonic() - since > stall_s:
            raise AssertionError(f"{what}: stuck at {best:g} (of {target:g}) for {stall_s:g}s")
        await asyncio.sleep(interval)
