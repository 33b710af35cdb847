"""Stopping the child processes the emulator starts (Matter server, virtual plugs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

log = logging.getLogger(__name__)


async def terminate(proc: asyncio.subprocess.Process, timeout: float, what: str) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            log.warning("%s ignored SIGTERM for %ss; killing it", what, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return proc.returncode
