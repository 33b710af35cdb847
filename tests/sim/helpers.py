"""Client-side helpers: drive the unmodified python-kasa client against emulated plugs, and
capture what ``otelpower sim`` prints."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from kasa import Credentials, Device, Discover, Module
from kasa.interfaces.energy import Energy

from otelpower.sim import EmulatedPlug
from otelpower.sim.serve import serve


@asynccontextmanager
async def discovered(
    plug: EmulatedPlug, credentials: Credentials | None = None, *, update: bool = True
) -> AsyncIterator[Device]:
    """discover_single on the plug's host/port (+ first update); always disconnects."""
    dev = await Discover.discover_single(
        plug.host, port=plug.port, discovery_timeout=2, credentials=credentials, timeout=3
    )
    assert dev is not None
    try:
        if update:
            async with asyncio.timeout(10):
                await dev.update()
        yield dev
    finally:
        await dev.disconnect()


def energy(dev: Device) -> Energy:
    mod = dev.modules.get(Module.Energy)
    assert mod is not None, f"{dev} has no Energy module"
    return mod


def has_vi(e: Energy) -> bool:
    return e.supports(Energy.ModuleFeature.VOLTAGE_CURRENT)


class _Out(io.StringIO):
    """Captures serve()'s output and signals once the YAML config is complete."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = asyncio.Event()

    def flush(self) -> None:
        super().flush()
        if "devices:" in self.getvalue():
            self.ready.set()


async def served(*args: Any, **kwargs: Any) -> str:
    """What ``serve(*args, **kwargs)`` prints until its config is complete (then cancelled)."""
    out = _Out()
    task = asyncio.create_task(serve(*args, **kwargs, out=out))
    try:
        async with asyncio.timeout(10):
            await out.ready.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return out.getvalue()
