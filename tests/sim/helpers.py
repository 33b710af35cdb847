"""Client-side helpers: drive the unmodified python-kasa client against emulated plugs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kasa import Credentials, Device, Discover, Module
from kasa.interfaces.energy import Energy

from otelpower.sim import EmulatedPlug


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
