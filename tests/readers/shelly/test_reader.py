"""The Shelly reader with the unmodified aioshelly client against emulated Shelly Gen2+
devices (otelpower/sim/shelly.py) over real sockets, beside a TP-Link plug."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.promtext import find, one, scrape
from harness.wait import wait_for
from otelpower import app
from otelpower.readers import registry
from otelpower.sim import PlugOptions, ShellyFault, ShellyOptions, builtin_profiles
from tests.conftest import make_config

pytest.importorskip("aioshelly")

PROFILES = {p.stem: p for p in builtin_profiles()}
INTERVAL, TIMEOUT = 1.0, 2.0
PASSWORD = "shelly-pw"


def config_for(simulator, password: str = PASSWORD):
    data = simulator.config_dict()
    data["discovery"] = {"enabled": False}
    return make_config(
        data,
        {"SHELLY_PASSWORD": password},
        poll={"interval": INTERVAL, "timeout": TIMEOUT, "backoff_max": 60},
        prometheus={"host": "127.0.0.1", "port": 0},
    )


async def test_shelly_devices_beside_a_tplink_plug(simulator) -> None:
    """--protocol all: each maker's reader reads its own devices; a 4-channel device per
    outlet; an offline one goes up 0 in time and comes back by the probe; a silent one (the
    connection open, no answers) goes up 0 within interval + timeout + 2 s."""
    (tplink,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"])])
    plug, pro = await simulator.start_shelly(
        [ShellyOptions(model="plus-plug-s"), ShellyOptions(model="pro-4pm", password=PASSWORD)]
    )
    runtime = app.Runtime(config_for(simulator), "all")
    async with runtime:
        port = runtime.prometheus_port

        def ready() -> bool:
            s = scrape(port)
            return bool(
                find(s, "shelly_native_power_watts", device_id=plug.mac)
                and len(find(s, "shelly_native_power_watts", device_id=pro.mac)) == 4
                and find(s, "tplink_native_power_watts", device_id=tplink.mac)
            )

        await wait_for(ready, timeout=30, what="Shelly and TP-Link up", in_thread=True)
        s = scrape(port)
        outlets = {
            dict(k)["outlet"] for k in find(s, "shelly_native_power_watts", device_id=pro.mac)
        }
        assert outlets == {"1", "2", "3", "4"}
        assert one(s, "shelly_native_up", device_id=plug.mac) == 1
        assert find(s, "shelly_native_energy_kilowatt_hours_total", device_id=plug.mac)
        assert one(s, "shelly_native_device_info", device_id=pro.mac, model="SPSW-104PE16EU") == 1
        assert not [k for k in find(s, "tplink_native_up") if dict(k)["device_id"] != tplink.mac]
        assert not find(s, "shelly_native_up", device_id=tplink.mac)

        # offline: up 0 and no values within poll.interval + poll.timeout + 2 s; then back
        await plug.set_fault(ShellyFault.OFFLINE)
        started = time.monotonic()

        def down(mac: str) -> bool:
            s = scrape(port)
            return one(s, "shelly_native_up", device_id=mac) == 0 and not find(
                s, "shelly_native_power_watts", device_id=mac
            )

        await wait_for(lambda: down(plug.mac), timeout=30, what="plug down", in_thread=True)
        assert time.monotonic() - started < INTERVAL + TIMEOUT + 2
        await plug.set_fault(ShellyFault.NONE)
        await wait_for(
            lambda: find(scrape(port), "shelly_native_power_watts", device_id=plug.mac),
            timeout=30,
            what="plug back",
            in_thread=True,
        )

        # silent: the connection stays open, nothing answers
        await pro.set_fault(ShellyFault.SILENT)
        started = time.monotonic()
        await wait_for(lambda: down(pro.mac), timeout=30, what="pro silent", in_thread=True)
        assert time.monotonic() - started < INTERVAL + TIMEOUT + 2
        s = scrape(port)
        assert one(s, "shelly_native_device_status", device_id=pro.mac, status="timeout") == 1


async def test_a_wrong_password_is_one_login(simulator) -> None:
    """auth_failed with the remedy; the device sees one failed login, not one per poll."""
    (dev,) = await simulator.start_shelly([ShellyOptions(model="plug-s-gen3", password="right")])
    runtime = app.Runtime(config_for(simulator, password="wrong"), "shelly")
    async with runtime:
        port = runtime.prometheus_port
        await wait_for(
            lambda: find(
                scrape(port), "shelly_native_device_status", device_id=dev.mac, status="auth_failed"
            ),
            timeout=30,
            what="auth_failed",
            in_thread=True,
        )
        failed = dev.failed_logins
        reader = runtime.reader("shelly")
        await asyncio.sleep(4 * INTERVAL)  # four more intervals: no login may be tried
        assert reader.device(dev.mac).phase.value == "locked_out"
        assert dev.failed_logins == failed <= 2  # aioshelly's digest: one challenge, one try


async def test_a_frame_out_of_spec_is_a_state_not_a_crash(simulator) -> None:
    """aioshelly's receive task dies on a frame that is JSON but no object; closing that
    link re-raises it. The poll reports it, the reader goes on, the next poll logs in again."""
    from otelpower.readers.shelly.reader import ShellyReader

    (dev,) = await simulator.start_shelly([ShellyOptions(model="plus-plug-s")])
    config = config_for(simulator, password="")
    reader = ShellyReader(config, registry.get("shelly"))
    try:
        assert (await reader.poll(dev.mac)).up
        await dev.send_raw("[]")
        await dev.send_raw('{"id": [1]}')
        await asyncio.sleep(0.2)
        snap = await reader.poll(dev.mac)  # a status, never an exception out of the loop
        assert snap is not None
        for _ in range(3):
            if (await reader.poll(dev.mac)).up:
                break
        assert reader.store.get(dev.mac).up
    finally:
        await reader.close()


def test_protocol_all_leaves_out_only_what_nothing_asks_for(tmp_path) -> None:
    """A TP-Link house runs with --protocol all without a Matter server or a Shelly client;
    a device that asks for a reader (its section) keeps that reader in, to be refused."""
    base = {"house": "h", "discovery": {"enabled": False}}
    plug = {"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s", "device": "d"}
    run, left_out = registry.runnable("all", make_config({**base, "devices": [plug]}))
    assert "native" in {s.name for s in run} and {"matter", "shelly"} <= set(left_out)
    node = {**plug, "matter": {"node_id": 5}}
    run, left_out = registry.runnable("all", make_config({**base, "devices": [node]}))
    assert "matter" in {s.name for s in run} and "matter" not in left_out
