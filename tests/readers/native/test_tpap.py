"""The native reader on TPAP plugs: end to end, lock-out safety, sessions, switching."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from harness.promtext import find, one, scrape
from harness.wait import wait_for
from otelpower import app
from otelpower.core.model import DeviceStatus
from otelpower.readers.native.errors import LOCKED_DETAIL
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import PlugOptions, TpapOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
PASSWORD = "right-pass"
ENV = {"KASA_USERNAME": "owner@example.com", "KASA_PASSWORD": PASSWORD}


def tpap(profile: str = "p110_tpap", **options) -> PlugOptions:
    return PlugOptions(
        PROFILES[profile],
        username=ENV["KASA_USERNAME"],
        password=PASSWORD,
        transport="TPAP",
        tpap=TpapOptions(**options),
    )


# -- the reader ---------------------------------------------------------------------------


async def test_tpap_plug_and_strip_end_to_end_to_metrics(simulator) -> None:
    plug, strip = await simulator.start([tpap(), tpap("p304m_klap")])
    config = make_config(simulator.config_dict(), ENV, prometheus={"host": "127.0.0.1", "port": 0})
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port
        await wait_for(
            lambda: len(find(scrape(port), "tplink_native_power_watts")) == 1 + len(strip.children)
        )
        s = scrape(port)
    truth = plug.readings()
    assert one(s, "tplink_native_power_watts", device_id=plug.mac) == pytest.approx(
        truth["power_w"], rel=0.05
    )
    for name in ("energy_today_kilowatt_hours", "energy_month_kilowatt_hours", "rssi_dbm"):
        assert one(s, f"tplink_native_{name}", device_id=plug.mac) is not None, name
    assert one(s, "tplink_native_relay_on", device_id=plug.mac) == 1
    for absent in ("voltage_volts", "current_amperes"):  # the client cannot ask for them
        assert not find(s, f"tplink_native_{absent}", device_id=plug.mac)
    (info,) = find(s, "tplink_native_device_info", device_id=plug.mac)
    assert {k: v for k, v in info if k in ("transport", "model", "firmware", "alias")} == {
        "transport": "TPAP",
        "model": "P110",
        "firmware": "1.4.6",
        "alias": plug.alias,  # the app's name, base64 on the wire
    }
    outlets = {
        dict(k)["outlet"]: v
        for k, v in find(s, "tplink_native_power_watts", device_id=strip.mac).items()
    }
    assert set(outlets) == {"1", "2", "3"}
    relays = find(s, "tplink_native_relay_on", device_id=strip.mac)
    expected = [o["relay_on"] for o in strip.readings()["outlets"]]
    assert [relays[k] for k in sorted(relays, key=lambda k: dict(k)["outlet"])] == [
        float(on) for on in expected
    ]


async def test_wrong_password_is_never_a_retry_loop(simulator, caplog) -> None:
    """Over several poll intervals, each plug sees one login; the TPAP plug never locks."""
    plugs = await simulator.start(
        [
            tpap(lock_after=3),
            PlugOptions(PROFILES["p110_klap"], username=ENV["KASA_USERNAME"], password=PASSWORD),
            PlugOptions(PROFILES["p110_aes"], username=ENV["KASA_USERNAME"], password=PASSWORD),
            PlugOptions(PROFILES["kp115_xor"]),  # no login: its polls are the clock
        ]
    )
    *guarded, clock = plugs
    caplog.set_level(logging.WARNING, logger="otelpower")
    env = {**ENV, "KASA_PASSWORD": "wrong-pass"}
    config = make_config(simulator.config_dict(), env, poll={"interval": 0.2, "backoff_max": 1})
    polls = []

    class Count:
        def poll(self, _protocol, device_id, *_):
            polls.append(device_id)

        def dropped(self, *_):
            pass

    reader = NativeReader(config, recorder=Count())
    task = asyncio.create_task(reader.run())
    try:
        await wait_for(lambda: polls.count(clock.mac) >= 8, timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    for plug in guarded:
        assert reader.store.get(plug.mac).status is DeviceStatus.AUTH_FAILED, plug
        assert 1 <= plug.logins <= 2, (plug.transport, plug.logins)
    assert not guarded[0].server.locked
    lines = [r.getMessage() for r in caplog.records if "auth_failed" in r.getMessage()]
    assert len(lines) == 3 and all("every 30 minutes" in line for line in lines), lines
    assert "wrong-pass" not in caplog.text


async def test_lock_out_is_its_own_detail(simulator, caplog) -> None:
    (plug,) = await simulator.start([tpap()])
    plug.server.locked_until = time.monotonic() + 600  # locked by someone else's tries
    caplog.set_level(logging.WARNING, logger="otelpower")
    reader = NativeReader(make_config(simulator.config_dict(), ENV))
    try:
        await reader.poll_all()
        await reader.poll_all()  # no second attempt: the lock is a standing fault
    finally:
        await reader.close()
    snap = reader.store.get(plug.mac)
    assert (snap.status, snap.detail) == (DeviceStatus.AUTH_FAILED, LOCKED_DETAIL)
    assert plug.logins == 0  # locked plugs refuse the discover probe already
    assert LOCKED_DETAIL in caplog.text


async def test_lost_session_logs_in_again_within_the_poll(simulator) -> None:
    (plug,) = await simulator.start([tpap()])
    reader = NativeReader(make_config(simulator.config_dict(), ENV))
    try:
        await reader.poll_all()
        plug.drop_sessions()  # the plug rebooted, or forgot us
        await reader.poll_all()
        assert reader.store.get(plug.mac).up and plug.logins == 2
        await reader.poll_all()
    finally:
        await reader.close()
    assert plug.logins == 2  # the new session is kept


async def test_a_session_lost_twice_in_a_row_is_a_failure(simulator) -> None:
    (plug,) = await simulator.start([tpap(session_ttl_s=0)])  # every session expires at once
    reader = NativeReader(make_config(simulator.config_dict(), ENV))
    try:
        await reader.poll_all()
    finally:
        await reader.close()
    snap = reader.store.get(plug.mac)
    assert (snap.status, snap.detail) == (
        DeviceStatus.ERROR,
        "session lost again right after a new login",
    )
    assert plug.logins == 2  # the login, and the one new login


async def test_a_plug_switching_klap_and_tpap_is_followed(simulator) -> None:
    (plug,) = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"], username=ENV["KASA_USERNAME"], password=PASSWORD)]
    )
    reader = NativeReader(make_config(simulator.config_dict(), ENV))

    async def transport_after_polls() -> str:
        for _ in range(3):  # the old session fails once, then the transport is learned again
            await reader.poll_all()
            snap = reader.store.get(plug.mac)
            if snap.up and snap.info["transport"] == plug.transport:
                break
        return snap.info["transport"]

    try:
        assert await transport_after_polls() == "KLAP v2"
        await plug.switch_transport("TPAP")  # Third-Party Compatibility switched off
        assert await transport_after_polls() == "TPAP"
        await plug.switch_transport("KLAP v2")  # and on again
        assert await transport_after_polls() == "KLAP v2"
    finally:
        await reader.close()


async def test_tpap_plug_without_discovery_reply_is_found_by_the_probe(simulator) -> None:
    (plug,) = await simulator.start([PlugOptions(**{**tpap().__dict__, "discoverable": False})])
    # discovery waits half the poll timeout, python-kasa's transports ~2 s, then the probe
    reader = NativeReader(make_config(simulator.config_dict(), ENV, poll={"timeout": 10}))
    try:
        await reader.poll_all()
    finally:
        await reader.close()
    snap = reader.store.get(plug.mac)
    assert snap.up and snap.info["transport"] == "TPAP", snap


async def test_tpap_behind_a_firewall_that_drops_udp(simulator) -> None:
    """TCP to the plug passes, UDP discovery does not (a common IoT-VLAN rule): the plug is
    read with poll.timeout 4, every poll (the transport learned once is kept), and the login
    waits for discovery only a small part of the budget."""
    options = tpap()
    options.discoverable = False
    (plug,) = await simulator.start([options])
    data = simulator.config_dict()
    data["discovery"] = {"enabled": False}
    reader = NativeReader(make_config(data, ENV, poll={"interval": 0.3, "timeout": 4}))
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await reader.poll_all()
        first = loop.time() - started
        assert reader.store.get(plug.mac).up, reader.store.get(plug.mac)
        for _ in range(3):
            await reader.poll_all()
            assert reader.store.get(plug.mac).up
    finally:
        await reader.close()
    assert first < 4, first
    assert plug.logins == 1, "logged in once, read on that route"
    print(f"TPAP without a discovery reply: first poll (learn + login) {first:.2f}s")
