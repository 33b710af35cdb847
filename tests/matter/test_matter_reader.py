"""The Matter reader against the real python-matter-server and a virtual matter.js plug."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from harness.promtext import find, one, scrape
from otelpower import app
from otelpower.config import Config
from otelpower.sim import PlugOptions, Simulator, builtin_profiles
from otelpower.sim.matter import VirtualMatterPlug, mirror_relay, mirror_sample
from otelpower.sim.matter_server import commission, listening_client
from tests.conftest import make_config

from .conftest import BedPlug, record, wait_until
from .wsproxy import FaultProxy

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONTRACT = {"house", "room", "shelf", "device", "device_id", "protocol"}


def config_for(bed: BedPlug, **device: Any) -> Config:
    entry = {"device_id": bed.mac, "room": "living", "shelf": "tv-rack", "device": "tv", **device}
    return make_config(
        {"house": "home", "devices": [entry], "matter": {"url": bed.server.url}},
        poll={"interval": 1, "timeout": 5},
        prometheus={"host": "127.0.0.1", "port": 0},
    )


@asynccontextmanager
async def running(config: Config, protocol: str = "matter") -> AsyncIterator[int]:
    """Readers + telemetry as `otelpower run` builds them; yields the /metrics port."""
    async with app.Runtime(config, protocol) as runtime:
        assert runtime.prometheus_port is not None
        yield runtime.prometheus_port


def series(port: int, name: str, **labels: str) -> dict:
    try:
        return find(scrape(port), name, **labels)
    except OSError:
        return {}


def value(port: int, name: str, **labels: str) -> float | None:
    found = series(port, name, **labels)
    return next(iter(found.values())) if len(found) == 1 else None


async def test_values_units_changes_and_identity(virtual_plug: BedPlug, caplog) -> None:
    bed, mac = virtual_plug, virtual_plug.mac
    caplog.set_level(logging.INFO, logger="otelpower")
    async with running(config_for(bed)) as port:
        await wait_until(
            lambda: value(port, "tplink_matter_power_watts", device_id=mac) == 12.345,
            30,
            "first power value",
        )
        # the first state line is the node coming up, never a "flapping" note
        states = [r.getMessage() for r in caplog.records if "Matter node" in r.getMessage()]
        assert states and states[0].endswith(": up") and "flapping" not in states[0], states
        s = scrape(port)
        (labels,) = find(s, "tplink_matter_power_watts", device_id=mac)
        assert {k for k, _ in labels} == CONTRACT
        assert dict(labels) == {
            "house": "home",
            "room": "living",
            "shelf": "tv-rack",
            "device": "tv",
            "device_id": mac,
            "protocol": "matter",
        }
        assert one(s, "tplink_matter_voltage_volts", device_id=mac) == pytest.approx(230.1)
        assert one(s, "tplink_matter_current_amperes", device_id=mac) == pytest.approx(0.054)
        assert one(s, "tplink_matter_energy_kilowatt_hours_total", device_id=mac) == (
            pytest.approx(1.50025)
        )
        assert one(s, "tplink_matter_relay_on", device_id=mac) == 1
        assert one(s, "tplink_matter_up", device_id=mac) == 1
        info = dict(next(iter(find(s, "tplink_matter_device_info", device_id=mac))))
        assert info["vendor"] == "TP-Link" and info["product"] and info["serial"]
        assert one(s, "otelpower_matter_server_connected") == 1

        t0 = time.monotonic()
        bed.values.power_w = 20.5
        await wait_until(
            lambda: value(port, "tplink_matter_power_watts", device_id=mac) == 20.5,
            5,
            "changed power",
        )
        record("reader: value change on /metrics", time.monotonic() - t0)

        bed.values.current_a = None  # null in Matter -> absent, never 0
        await wait_until(
            lambda: not series(port, "tplink_matter_current_amperes", device_id=mac),
            5,
            "null current vanishes",
        )
        bed.values.on = False
        await wait_until(
            lambda: value(port, "tplink_matter_relay_on", device_id=mac) == 0, 5, "relay off"
        )


async def test_offline_then_back(virtual_plug: BedPlug) -> None:
    bed, mac = virtual_plug, virtual_plug.mac
    async with running(config_for(bed)) as port:
        await wait_until(
            lambda: series(port, "tplink_matter_power_watts", device_id=mac),
            30,
            "first power value",
        )
        t0 = time.monotonic()
        await bed.plug.stop()
        await wait_until(
            lambda: not series(port, "tplink_matter_power_watts", device_id=mac),
            30,
            "power vanishes after the plug stops",
        )
        record("reader: series gone after plug stop", time.monotonic() - t0)
        assert value(port, "tplink_matter_up", device_id=mac) == 0
        assert value(port, "tplink_matter_device_info", device_id=mac) == 1
        t0 = time.monotonic()
        await bed.plug.start()
        await wait_until(
            lambda: series(port, "tplink_matter_power_watts", device_id=mac),
            60,
            "power returns after restart",
        )
        record("reader: series back after plug restart", time.monotonic() - t0)


async def test_server_restart_is_survived(virtual_plug: BedPlug) -> None:
    bed, mac = virtual_plug, virtual_plug.mac
    async with running(config_for(bed)) as port:
        await wait_until(
            lambda: series(port, "tplink_matter_power_watts", device_id=mac),
            30,
            "first power value",
        )
        await bed.server.stop()
        await wait_until(
            lambda: value(port, "otelpower_matter_server_connected") == 0, 10, "disconnect noticed"
        )
        assert not series(port, "tplink_matter_power_watts", device_id=mac)
        assert value(port, "tplink_matter_up", device_id=mac) == 0
        t0 = time.monotonic()
        await bed.server.start()
        await wait_until(
            lambda: value(port, "tplink_matter_power_watts", device_id=mac),
            90,
            "values after the server restart",
        )
        record("reader: values back after server restart", time.monotonic() - t0)
        s = scrape(port)
        assert len(find(s, "tplink_matter_power_watts")) == 1  # no duplicate series
        assert len(find(s, "tplink_matter_up")) == 1
        assert one(s, "otelpower_matter_server_connected") == 1


async def test_node_id_fallback_and_unmatched_nodes(virtual_plug: BedPlug, caplog) -> None:
    bed = virtual_plug
    other_mac = "48:22:54:ff:ff:01"  # not the node's MAC: matched by node_id instead
    config = config_for(bed, device_id=other_mac, matter={"node_id": bed.node_id})
    async with running(config) as port:
        await wait_until(
            lambda: series(port, "tplink_matter_power_watts", device_id=other_mac),
            30,
            "matched by node id",
        )
    caplog.set_level(logging.WARNING, logger="otelpower")
    unconfigured = make_config(
        {"house": "home", "matter": {"url": bed.server.url}},
        poll={"interval": 1},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    async with running(unconfigured) as port:
        # the test bed's plug carries the CSA's test VendorID 0xFFF1, no maker's: not TP-Link
        name = f"matter-node-{bed.node_id}"
        await wait_until(
            lambda: series(port, "other_matter_power_watts", device=name),
            30,
            "unmatched node exported by node id",
        )
        text = scrape(port)
        (labels,) = find(text, "other_matter_power_watts", device=name)
        assert dict(labels)["device_id"] == bed.mac and dict(labels)["room"] == "unassigned"
        assert not find(text, "tplink_matter_power_watts")
    lines = [r.getMessage() for r in caplog.records if "not in" in r.getMessage()]
    assert len(lines) == 1 and str(bed.node_id) in lines[0] and "0xFFF1" in lines[0]


async def test_one_plug_two_paths_same_labels(matter_server, tmp_path) -> None:
    """An emulated native plug and a virtual Matter plug present one physical plug."""
    async with Simulator() as sim:
        (native,) = await sim.start(
            [PlugOptions(next(p for p in builtin_profiles() if p.stem == "p110_klap"))]
        )
        plug = VirtualMatterPlug(
            mac=native.mac,
            sample=mirror_sample(native),
            storage_dir=tmp_path / "plug",
            on_relay=mirror_relay(native),
        )
        await plug.start()
        node_id = None
        try:
            node_id = await commission(matter_server.url, plug.passcode, "::1")
            data = sim.config_dict(house="home")
            data["matter"] = {"url": matter_server.url}
            config = make_config(
                data,
                poll={"interval": 1, "timeout": 5},
                prometheus={"host": "127.0.0.1", "port": 0},
            )
            async with running(config, "all") as port:

                def both() -> bool:
                    s = scrape(port)
                    return bool(
                        find(s, "tplink_native_power_watts", device_id=native.mac)
                        and find(s, "tplink_matter_power_watts", device_id=native.mac)
                    )

                await wait_until(both, 30, "both paths read the plug")
                s = scrape(port)
                (n_labels,) = find(s, "tplink_native_power_watts", device_id=native.mac)
                (m_labels,) = find(s, "tplink_matter_power_watts", device_id=native.mac)
                assert dict(n_labels) | {"protocol": "x"} == dict(m_labels) | {"protocol": "x"}
                n = one(s, "tplink_native_power_watts", device_id=native.mac)
                m = one(s, "tplink_matter_power_watts", device_id=native.mac)
                assert abs(n - m) <= max(1.0, 0.2 * n)  # same load curve, read moments apart
        finally:
            if node_id is not None:
                async with (
                    aiohttp.ClientSession() as session,
                    listening_client(matter_server.url, session) as client,
                ):
                    await client.remove_node(node_id)
            await plug.stop()


async def test_unknown_malformed_and_slow_server_messages(virtual_plug: BedPlug, caplog) -> None:
    """Through a proxy: events this client does not know, messages that are not JSON or not
    objects, answers to requests nobody made, and a server that answers seconds late. The
    reader keeps (or regains) its connection and values keep flowing, without duplicates."""
    bed, mac = virtual_plug, virtual_plug.mac
    proxy = FaultProxy(bed.server.url)
    await proxy.start()
    config = make_config(
        {
            "house": "home",
            "devices": [{"device_id": mac, "room": "r", "shelf": "s", "device": "tv"}],
            "matter": {"url": proxy.url},
        },
        poll={"interval": 1, "timeout": 5},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    try:
        async with running(config) as port:

            def power() -> float | None:
                return value(port, "tplink_matter_power_watts", device_id=mac)

            await wait_until(lambda: power() is not None, 30, "first power value")
            junk = [
                '{"event": "a_future_event", "data": {"node_id": 1}}',
                '{"event": "attribute_updated", "data": [999, "1/2/3"]}',
                '{"message_id": "nobody-asked", "result": {"x": 1}}',
                '{"message_id": "nobody-asked", "error_code": 1, "details": "?"}',
                "[1, 2, 3]",
                "{not json",
            ]
            for n, text in enumerate(junk):
                assert await proxy.inject(text) in (0, 1)
                bed.values.power_w = 30.0 + n
                await wait_until(lambda n=n: power() == 30.0 + n, 30, f"values after {text!r}")
            proxy.delay_s = 2.0  # a slow server: every answer and event 2 s late
            bed.values.power_w = 41.5
            await wait_until(lambda: power() == 41.5, 30, "values from a slow server")
            proxy.delay_s = 0.0
            bed.values.power_w = 42.5
            await wait_until(lambda: power() == 42.5, 30, "values after the server sped up")
            s = scrape(port)
            assert len(find(s, "tplink_matter_power_watts")) == 1
            assert one(s, "otelpower_matter_server_connected") == 1
    finally:
        await proxy.stop()
    assert "Traceback" not in caplog.text
