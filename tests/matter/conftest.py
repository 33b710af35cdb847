"""Matter test bed: the real python-matter-server and virtual matter.js plugs.

``matter_server`` (session) runs ``.tools/matter-server`` once; ``virtual_plug`` (per test)
starts a fresh virtual plug on [::1]:5540, commissions it and removes it again afterwards.
Tests here share one event loop (``loop_scope="session"``) with the session server.

Without Node or the server venv the tests skip, unless ``CI`` is set: then they fail.
Run ``make setup`` to install both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from matter_server.client import MatterClient

from harness.wait import wait_for
from otelpower.sim.matter import PLUG_DIR, PlugNetwork, VirtualMatterPlug
from otelpower.sim.matter_server import (
    PAA_DIR,
    SERVER_BIN,
    MatterServerProcess,
    commission,
    listening_client,
)

TIMINGS: dict[str, list[float]] = {}
TIMINGS_FILE = Path(__file__).resolve().parents[2] / ".run" / "matter-timings.json"


def _missing() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not (PLUG_DIR / "node_modules" / "@matter" / "main").is_dir():
        missing.append(f"{PLUG_DIR}/node_modules")
    if not SERVER_BIN.is_file():
        missing.append(str(SERVER_BIN))
    if not any(PAA_DIR.glob("*.der")):
        missing.append(f"{PAA_DIR}/*.der")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing()
    if not missing or os.environ.get("CI"):
        return  # in CI a missing piece makes the fixtures fail loudly
    skip = pytest.mark.skip(
        reason=f"Matter test bed not installed ({', '.join(missing)}): make setup"
    )
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS:
        return
    terminalreporter.write_sep("-", "Matter test bed timings (s)")
    for name, values in TIMINGS.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        terminalreporter.write_line(f"{name:<46} {shown}")
    with contextlib.suppress(OSError):
        TIMINGS_FILE.parent.mkdir(exist_ok=True)
        TIMINGS_FILE.write_text(json.dumps(TIMINGS, indent=2) + "\n")


def record(name: str, seconds: float) -> None:
    """Keep a measured duration for the end-of-run summary (and .run/matter-timings.json)."""
    TIMINGS.setdefault(name, []).append(round(seconds, 3))


async def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> float:
    """harness.wait.wait_for, timed: the seconds the condition took (for ``record``)."""
    t0 = time.monotonic()
    await wait_for(condition, timeout, interval, what)
    return time.monotonic() - t0


@dataclass
class FeedValues:
    """A controllable reading source for a virtual plug (None -> attribute null)."""

    power_w: float | None = 12.345
    voltage_v: float | None = 230.1
    current_a: float | None = 0.054  # whole mA: Matter reports current in mA
    energy_wh: float | None = 1500.25
    on: bool = True
    relay_changes: list[bool] = field(default_factory=list)

    def __call__(self) -> dict[str, Any]:
        return {
            "power_w": self.power_w,
            "voltage_v": self.voltage_v,
            "current_a": self.current_a,
            "energy_wh": self.energy_wh,
            "on": self.on,
        }

    def on_relay(self, on: bool) -> None:
        """What a real plug does: the relay follows the controller (and power drops when off)."""
        self.relay_changes.append(on)
        self.on = on


@dataclass
class BedPlug:
    """A commissioned virtual plug: ``values`` feed it, ``node_id`` is its Matter node."""

    plug: VirtualMatterPlug
    node_id: int
    values: FeedValues
    server: MatterServerProcess

    @property
    def mac(self) -> str:
        return self.plug.mac


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def plug_network() -> AsyncIterator[PlugNetwork | None]:
    """Namespaces + bridge for several plugs at once; None unless root (``ip`` needed)."""
    if not PlugNetwork.available():
        yield None
        return
    net = PlugNetwork()
    await net.setup()
    try:
        yield net
    finally:
        await net.teardown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def matter_server(
    tmp_path_factory: pytest.TempPathFactory, plug_network: PlugNetwork | None
) -> AsyncIterator[MatterServerProcess]:
    # plug_network first: the server's mDNS should see the bridge from the start
    server = MatterServerProcess(tmp_path_factory.mktemp("matter-server"))
    t0 = time.monotonic()
    await server.start()
    record("server start", time.monotonic() - t0)
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def matter_client(matter_server: MatterServerProcess) -> AsyncIterator[MatterClient]:
    """A MatterClient listening to the session server (node events, commands)."""
    async with (
        aiohttp.ClientSession() as session,
        listening_client(matter_server.url, session) as client,
    ):
        yield client


_mac_counter = iter(range(1, 0xFFFF))


def next_mac() -> str:
    n = next(_mac_counter)
    return f"48:22:54:aa:{n >> 8:02x}:{n & 0xFF:02x}"


@pytest_asyncio.fixture(loop_scope="session")
async def virtual_plug(
    matter_server: MatterServerProcess, tmp_path: Path
) -> AsyncIterator[BedPlug]:
    values = FeedValues()
    plug = VirtualMatterPlug(
        mac=next_mac(),
        sample=values,
        storage_dir=tmp_path / "plug",
        on_relay=values.on_relay,
    )
    t0 = time.monotonic()
    await plug.start()
    record("plug start (node process ready)", time.monotonic() - t0)
    node_id = None
    try:
        t0 = time.monotonic()
        node_id = await commission(matter_server.url, plug.passcode, "::1")
        record("commission_on_network (::1)", time.monotonic() - t0)
        yield BedPlug(plug=plug, node_id=node_id, values=values, server=matter_server)
    finally:
        if node_id is not None:
            if not plug.running:
                with contextlib.suppress(Exception):
                    await plug.start()
            t0 = time.monotonic()
            with contextlib.suppress(Exception):
                async with (
                    aiohttp.ClientSession() as session,
                    listening_client(matter_server.url, session) as client,
                ):
                    async with asyncio.timeout(15):
                        await client.remove_node(node_id)
            record("remove_node (teardown)", time.monotonic() - t0)
        await plug.stop()


@pytest.fixture
def timings() -> Iterator[Callable[[str, float], None]]:
    yield record
