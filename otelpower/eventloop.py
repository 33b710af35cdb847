"""The event loop long-running commands use: uvloop when installed, else asyncio's own.

uvloop cuts the reader's CPU per poll by about a quarter (see bench/README.md).
``OTELPOWER_EVENT_LOOP=asyncio`` forces the standard loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any

from otelpower.core.fds import OWN_LIMITS

log = logging.getLogger("otelpower")

#: an accept (or any callback) failing on one of OWN_LIMITS is said in one line with the
#: remedy, at most this often, never as a traceback
SAY_EVERY_S = 60.0


def run[T](main: Coroutine[Any, Any, T]) -> T:
    if os.environ.get("OTELPOWER_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


class ResourceErrors:
    """A loop exception handler: otelpower's own resource errors in one line, with the
    remedy and no traceback (asyncio's accept loop reports EMFILE with one, and retries by
    itself a second later); everything else to the loop's default handler."""

    def __init__(self) -> None:
        self._said = -SAY_EVERY_S
        self.held = 0  # lines held back since the last one

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not isinstance(exc, OSError) or exc.errno not in OWN_LIMITS:
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._said < SAY_EVERY_S:
            self.held += 1
            return
        self._said, held, self.held = now, self.held, 0
        log.warning(
            "otelpower's host: %s: %s%s",
            OWN_LIMITS[exc.errno],
            context.get("message", "a callback failed"),
            f" ({held} more since the last line)" if held else "",
        )


def guard(loop: asyncio.AbstractEventLoop) -> None:
    """Install ResourceErrors on ``loop``."""
    loop.set_exception_handler(ResourceErrors())
