"""A virtual Matter plug that mirrors an emulated native plug (same MAC, same load curve).

With it, one "physical" plug is readable both ways, so ``--protocol all`` compares paths.
Without a server URL, a local python-matter-server (the test bed's) is started too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from otelpower.sim.loadcurve import Sample
from otelpower.sim.matter import VirtualMatterPlug, mirror_relay, mirror_sample
from otelpower.sim.matter_server import MatterServerProcess, commission
from otelpower.sim.server import EmulatedPlug


@dataclass
class MatterMirror:
    url: str
    node_id: int
    plug: VirtualMatterPlug
    server: MatterServerProcess | None  # the one started here (None: given by URL)
    #: the Matter path reads the native plug's power times this (1: a true mirror; else a
    #: miscalibrated path, for tests of native/Matter disagreement)
    power_factor: float = 1.0


@contextlib.asynccontextmanager
async def matter_mirror(
    native: EmulatedPlug, workdir: Path, server_url: str | None = None
) -> AsyncIterator[MatterMirror]:
    """Start (server and) virtual plug, commission it; stop all on exit."""
    async with contextlib.AsyncExitStack() as stack:
        server = None
        if server_url is None:
            server = MatterServerProcess(workdir / "matter-server")
            await server.start()
            stack.push_async_callback(server.stop)
            server_url = server.url
        read_native, mirror = mirror_sample(native), None

        def sample() -> Sample:
            s = read_native()
            factor = 1.0 if mirror is None else mirror.power_factor
            return s if factor == 1.0 else replace(s, power_w=s.power_w * factor)

        plug = VirtualMatterPlug(
            mac=native.mac,
            sample=sample,
            storage_dir=workdir / "matter-plug",
            on_relay=mirror_relay(native),
        )
        await plug.start()
        stack.push_async_callback(plug.stop)
        node_id = await commission(server_url, plug.passcode, "::1")
        mirror = MatterMirror(server_url, node_id, plug, server)
        yield mirror
