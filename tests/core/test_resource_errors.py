"""otelpower's own resource errors (EMFILE at /metrics' accept) are one line with the remedy,
never a traceback, and not one per failed accept."""

from __future__ import annotations

import asyncio
import errno
import logging

from otelpower.eventloop import ResourceErrors


async def test_out_of_descriptors_is_one_line_without_traceback(caplog) -> None:
    loop = asyncio.get_running_loop()
    handler = ResourceErrors()
    caplog.set_level(logging.WARNING)
    context = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(errno.EMFILE, "Too many open files"),
    }
    for _ in range(50):
        handler(loop, context)
    lines = [r for r in caplog.records if "too many open files" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "ulimit -n" in lines[0].getMessage() and handler.held == 49
    handler(loop, {"message": "something else", "exception": ValueError("x")})
    assert any("something else" in r.getMessage() for r in caplog.records)  # asyncio's own
