"""A virtual Matter plug that mirrors an emulated native plug (same MAC, same load curve).

With it, one "physical" plug is readable both ways, so ``--protocol all`` compares paths.
Without a server URL, a local python-matter-server (the test bed's) is started too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from otelpower.sim.matter import VirtualMatterPlug, mirror_relay, mirror_sample
from otelpower.sim.matter_server import MatterServerProcess, commission
from otelpower.sim.server import EmulatedPlug


@dataclass
class MatterMirror:
    url: str
    node_id: int
    plug: VirtualMatterPlug


@contextlib.asynccontextmanager
async def matter_mirror(
    native: EmulatedPlug, workdir: Path, server_url: str | None = None
) -> AsyncIterator[MatterMirror]:
    """Start (server and) virtual plug, commission it; stop all on exit."""
    async with contextlib.AsyncExitStack() as stack:
        if server_url is None:
            server = MatterServerProcess(workdir / "matter-server")
            await server.start()
            stack.push_async_callback(server.stop)
            server_url = server.url
        plug = VirtualMatterPlug(
            mac=native.mac,
            sample=mirror_sample(native),
            storage_dir=workdir / "matter-plug",
            on_relay=mirror_relay(native),
        )
        await plug.start()
        stack.push_async_callback(plug.stop)
        node_id = await commission(server_url, plug.passcode, "::1")
        yield MatterMirror(server_url, node_id, plug)
