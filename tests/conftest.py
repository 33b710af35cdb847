"""Shared fixtures: emulated plugs on loopback and a config pointing at them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from otelpower.config import Config
from otelpower.config import parse_config as _parse
from otelpower.yamlsource import YamlDoc

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "python-kasa"


@pytest.fixture
async def simulator() -> AsyncIterator[Any]:
    from otelpower.sim import Simulator

    sim = Simulator()
    try:
        yield sim
    finally:
        await sim.stop()


def make_config(data: dict[str, Any], env: dict[str, str] | None = None, **settings: Any) -> Config:
    """A Config from a dict (as the sim writes it), with test-friendly poll settings.

    Credentials come from ``env`` (KASA_USERNAME / KASA_PASSWORD), as in production.
    """
    merged = {
        **data,
        "poll": {"interval": 0.3, "timeout": 2, "backoff_max": 1, **settings.pop("poll", {})},
        **settings,
    }
    doc = YamlDoc(source="<test>", data=merged)
    return _parse(doc, env or {})


async def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
