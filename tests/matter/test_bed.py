"""The Matter test bed end to end: real python-matter-server + virtual matter.js plug."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from chip.clusters import Objects as Clusters
from chip.clusters.Types import NullValue
from matter_server.client import MatterClient
from matter_server.common.models import EventType

from otelpower.sim import PlugOptions, Simulator, builtin_profiles
from otelpower.sim.matter import PlugNetwork, VirtualMatterPlug, mirror_relay, mirror_sample
from otelpower.sim.matter_server import MatterServerProcess, commission

from .conftest import BedPlug, FeedValues, next_mac, record, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

EPM = Clusters.ElectricalPowerMeasurement.Attributes
EEM = Clusters.ElectricalEnergyMeasurement.Attributes
METER_EP = 2  # electrical sensor endpoint (the relay is endpoint 1)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class AttributeWatch:
    """Records ``attribute_updated`` events of some attribute paths of one node, with arrival time.

    The client calls back with ``(event, new_value)`` only, so each path gets its own subscription.
    """

    def __init__(self, client: MatterClient, node_id: int, paths: list[str]) -> None:
        self.seen: list[tuple[float, str, Any]] = []
        self._unsubs = [
            client.subscribe_events(
                lambda _event, value, path=path: self.seen.append((time.monotonic(), path, value)),
                EventType.ATTRIBUTE_UPDATED,
                node_filter=node_id,
                attr_path_filter=path,
            )
            for path in paths
        ]

    async def wait_for(self, path: str, value: Any, since: float, timeout: float = 5.0) -> float:
        """Seconds from ``since`` until ``path`` was reported with ``value``."""

        def arrived() -> float | None:
            for t, p, v in self.seen:
                if t >= since and p == path and v == value:
                    return t
            return None

        await wait_until(arrived, timeout, f"{path} == {value!r}")
        t = arrived()
        assert t is not None
        return t - since

    def close(self) -> None:
        for unsub in self._unsubs:
            unsub()


async def test_commissioned_node_carries_identity_and_fed_values(
    virtual_plug: BedPlug, matter_client: MatterClient
) -> None:
    node = matter_client.get_node(virtual_plug.node_id)
    assert node.available
    info = node.device_info
    assert info.vendorName == "TP-Link"
    assert info.vendorID == 0xFFF1
    assert info.productID == 0x8000
    assert info.productName == "P110M"
    assert info.serialNumber == virtual_plug.mac.replace(":", "").upper()
    assert info.softwareVersionString == "1.0.0"

    # 12.345 W / 230.1 V / 0.054 A / 1500.25 Wh in Matter units (mW, mV, mA, mWh)
    assert node.get_attribute_value(METER_EP, None, EPM.ActivePower) == 12345
    assert node.get_attribute_value(METER_EP, None, EPM.Voltage) == 230100
    assert node.get_attribute_value(METER_EP, None, EPM.ActiveCurrent) == 54
    assert node.get_attribute_value(METER_EP, None, EPM.RMSVoltage) == 230100
    assert node.get_attribute_value(METER_EP, None, EPM.RMSCurrent) == 54
    energy = node.get_attribute_value(METER_EP, None, EEM.CumulativeEnergyImported)
    assert energy.energy == 1500250
    assert node.get_attribute_value(1, None, Clusters.OnOff.Attributes.OnOff) is True
    # raw paths, as the reader sees them
    raw = node.node_data.attributes
    assert raw["2/144/8"] == 12345
    assert raw["2/145/1"] == {"0": 1500250}
    assert 0x0510 in [d["0"] for d in raw["2/29/0"]]  # Electrical Sensor device type
    assert 0x010A in [d["0"] for d in raw["1/29/0"]]  # On/Off Plug-in Unit
    assert raw["2/156/65532"] & 0x1  # PowerTopology NodeTopology


async def test_network_interfaces_report_our_mac(
    virtual_plug: BedPlug, matter_client: MatterClient
) -> None:
    node = matter_client.get_node(virtual_plug.node_id)
    interfaces = node.get_attribute_value(
        0, None, Clusters.GeneralDiagnostics.Attributes.NetworkInterfaces
    )
    assert [bytes(i.hardwareAddress) for i in interfaces] == [mac_bytes(virtual_plug.mac)]
    assert interfaces[0].isOperational


async def test_changed_readings_arrive_within_seconds(
    virtual_plug: BedPlug, matter_client: MatterClient
) -> None:
    node_id = virtual_plug.node_id
    watch = AttributeWatch(matter_client, node_id, ["2/144/8", "2/144/4", "2/145/1"])
    try:
        t0 = time.monotonic()
        virtual_plug.values.power_w = 20.5
        virtual_plug.values.energy_wh = 1501.0
        latency = await watch.wait_for("2/144/8", 20500, t0)
        record("attribute update latency (0.5 s feed)", latency)
        await watch.wait_for("2/145/1", {"0": 1501000}, t0)

        # pushed at once instead of at the next feed tick: the Matter path alone
        t0 = time.monotonic()
        virtual_plug.values.power_w = 33.0
        virtual_plug.plug.feed_now()
        record("attribute update latency (fed at once)", await watch.wait_for("2/144/8", 33000, t0))

        # unknown reading -> null
        t0 = time.monotonic()
        virtual_plug.values.power_w = None
        virtual_plug.values.voltage_v = None
        await watch.wait_for("2/144/8", None, t0)
        await watch.wait_for("2/144/4", None, t0)
        node = matter_client.get_node(node_id)
        # typed accessors give the SDK's NullValue, raw values and events give None
        assert node.get_attribute_value(METER_EP, None, EPM.ActivePower) is NullValue
    finally:
        watch.close()


async def test_onoff_from_controller_reaches_on_relay(
    virtual_plug: BedPlug, matter_client: MatterClient
) -> None:
    node_id, values = virtual_plug.node_id, virtual_plug.values
    node = matter_client.get_node(node_id)

    def relay() -> bool:
        return node.get_attribute_value(1, None, Clusters.OnOff.Attributes.OnOff)

    t0 = time.monotonic()
    await matter_client.send_device_command(node_id, 1, Clusters.OnOff.Commands.Off())
    await wait_until(lambda: values.relay_changes == [False], 5, "on_relay(False)")
    record("OnOff command -> on_relay", time.monotonic() - t0)
    await wait_until(lambda: relay() is False, 5, "OnOff reported off")
    await asyncio.sleep(1.0)  # a few feed ticks: the relay stays where the controller put it
    assert relay() is False
    assert values.relay_changes == [False]

    await matter_client.send_device_command(node_id, 1, Clusters.OnOff.Commands.On())
    await wait_until(lambda: values.relay_changes == [False, True], 5, "on_relay(True)")
    await wait_until(lambda: relay() is True, 5, "OnOff reported on")

    # switched by the parent (e.g. the mirrored native plug): reported, but no on_relay call
    values.on = False
    await wait_until(lambda: relay() is False, 5, "OnOff follows the feed")
    assert values.relay_changes == [False, True]


async def test_stop_makes_node_unavailable_and_restart_brings_it_back(
    virtual_plug: BedPlug, matter_client: MatterClient
) -> None:
    node_id, plug = virtual_plug.node_id, virtual_plug.plug

    def node_available() -> bool:
        return matter_client.get_node(node_id).available

    assert node_available()
    t0 = time.monotonic()
    assert await plug.stop() == 0
    record("plug stop (SIGTERM -> exit)", time.monotonic() - t0)
    await wait_until(lambda: not node_available(), 15, "unavailable")
    record("unavailable after SIGTERM", time.monotonic() - t0)

    t0 = time.monotonic()
    await plug.start()
    assert plug.commissioned  # its storage kept the fabric
    t_ready = time.monotonic()
    await wait_until(node_available, 30, "available again")
    record("available after restart: process ready", t_ready - t0)
    record("available after restart: ready -> available", time.monotonic() - t_ready)

    # the same node, live again
    watch = AttributeWatch(matter_client, node_id, ["2/144/8"])
    try:
        t0 = time.monotonic()
        virtual_plug.values.power_w = 7.5
        await watch.wait_for("2/144/8", 7500, t0)
    finally:
        watch.close()


async def test_mirror_sample_follows_an_emulated_native_plug() -> None:
    async with Simulator() as sim:
        profile = next(p for p in builtin_profiles() if p.stem == "p110_klap")
        (emulated,) = await sim.start([PlugOptions(profile=profile)])
        sample = mirror_sample(emulated)
        s = sample()
        truth = emulated.readings()
        assert s.power_w == pytest.approx(truth["power_w"], rel=0.05)
        assert s.voltage_v == pytest.approx(truth["voltage_v"], rel=0.01)
        assert s.energy_wh == pytest.approx(truth["energy_total_kwh"] * 1000, rel=0.01)
        assert s.on is truth["relay_on"]
        mirror_relay(emulated)(not s.on)
        assert sample().on is (not s.on)
        assert emulated.readings()["relay_on"] is (not s.on)


async def test_two_plugs_at_once_in_network_namespaces(
    matter_server: MatterServerProcess,
    matter_client: MatterClient,
    plug_network: PlugNetwork | None,
    tmp_path: Path,
) -> None:
    if plug_network is None:
        if os.environ.get("CI"):
            pytest.fail("network namespaces need root (CI runs as root)")
        pytest.skip("network namespaces need root")
    macs = [next_mac(), next_mac()]
    feeds = [FeedValues(power_w=101.0), FeedValues(power_w=202.0)]
    plugs: list[VirtualMatterPlug] = []
    addresses: list[str] = []
    for i, (mac, feed) in enumerate(zip(macs, feeds, strict=True)):
        netns, address = await plug_network.add(10 + i, mac)
        addresses.append(address)
        plugs.append(
            VirtualMatterPlug(mac=mac, sample=feed, storage_dir=tmp_path / f"plug{i}", netns=netns)
        )
    node_ids: list[int] = []
    try:
        await asyncio.gather(*(p.start() for p in plugs))
        for plug, address in zip(plugs, addresses, strict=True):
            t0 = time.monotonic()
            node_ids.append(await commission(matter_server.url, plug.passcode, address))
            record("commission_on_network (namespace)", time.monotonic() - t0)
        for node_id, mac, feed in zip(node_ids, macs, feeds, strict=True):
            node = matter_client.get_node(node_id)
            await wait_until(lambda n=node: n.available, 10, "available")
            assert node.node_data.attributes["2/144/8"] == round(feed.power_w * 1000)
            interfaces = node.get_attribute_value(
                0, None, Clusters.GeneralDiagnostics.Attributes.NetworkInterfaces
            )
            assert [bytes(i.hardwareAddress) for i in interfaces] == [mac_bytes(mac)]
        # both live: a change on the second reaches its node only
        watch = AttributeWatch(matter_client, node_ids[1], ["2/144/8"])
        try:
            t0 = time.monotonic()
            feeds[1].power_w = 250.0
            await watch.wait_for("2/144/8", 250000, t0)
        finally:
            watch.close()
        assert matter_client.get_node(node_ids[0]).node_data.attributes["2/144/8"] == 101000
    finally:
        for node_id in node_ids:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(15):
                    await matter_client.remove_node(node_id)
        await asyncio.gather(*(p.stop() for p in plugs))
