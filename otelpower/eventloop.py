"""The event loop long-running commands use: uvloop when installed, else asyncio's own.

uvloop cuts the reader's CPU per poll by about a quarter (see bench/README.md).
``OTELPOWER_EVENT_LOOP=asyncio`` forces the standard loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any


def run[T](main: Coroutine[Any, Any, T]) -> T:
    if os.environ.get("OTELPOWER_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
