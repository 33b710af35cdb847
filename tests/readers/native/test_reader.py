"""Native path end to end: unmodified python-kasa <-> plug emulator over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from harness.promtext import find, one, scrape
from harness.wait import wait_for
from otelpower import app
from otelpower.core.model import DeviceStatus
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import Fault, PlugOptions, TpapOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
TRANSPORTS = {"KLAP v2", "KLAP v1", "AES", "XOR", "TPAP"}


def approx(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= max(1e-3, abs(b) * 1e-3)


async def test_every_transport_reads_exactly(simulator) -> None:
    plugs = await simulator.start([PlugOptions(p, static=True) for p in PROFILES.values()])
    assert {p.transport for p in plugs} >= TRANSPORTS
    reader = NativeReader(make_config(simulator.config_dict()))
    try:
        await reader.poll_all()
    finally:
        await reader.close()
    for plug in plugs:
        snap = reader.store.get(plug.mac)
        assert snap is not None and snap.status is DeviceStatus.OK, (plug.transport, snap)
        assert snap.info["transport"] == plug.transport
        truth = plug.readings()
        if "outlets" in truth:
            outlets = {r.outlet: r.values for r in snap.readings if r.outlet}
            assert len(outlets) == len(truth["outlets"])
            for i, expected in enumerate(truth["outlets"], start=1):
                assert approx(outlets[str(i)]["power_watts"], expected["power_w"])
            assert "power_watts" not in snap.readings[0].values  # no strip total
        else:
            (reading,) = snap.readings
            assert approx(reading.values["power_watts"], truth["power_w"]), plug.transport
            if truth.get("voltage_v") is not None and "voltage_volts" in reading.values:
                assert approx(reading.values["voltage_volts"], truth["voltage_v"])
            assert reading.values["relay_on"] == float(truth["relay_on"])


async def test_wrong_credentials_is_a_state_not_a_crash(simulator, caplog) -> None:
    klap, aes = await simulator.start(
        [
            PlugOptions(PROFILES["p110_klap"], username="owner@example.com", password="right"),
            PlugOptions(PROFILES["p110_aes"], username="owner@example.com", password="right"),
        ]
    )
    env = {"KASA_USERNAME": "owner@example.com", "KASA_PASSWORD": "wrong-pass"}
    reader = NativeReader(make_config(simulator.config_dict(), env))
    caplog.set_level(logging.WARNING, logger="otelpower")
    try:
        for _ in range(3):
            await reader.poll_all()
    finally:
        await reader.close()
    for plug in (klap, aes):
        snap = reader.store.get(plug.mac)
        assert snap.status is DeviceStatus.AUTH_FAILED and not snap.readings
    lines = [r.getMessage() for r in caplog.records if "auth_failed" in r.getMessage()]
    assert len(lines) == 2, lines  # one line per device, not one per poll
    assert all("KASA_USERNAME" in line for line in lines)
    assert "wrong-pass" not in caplog.text

    good = NativeReader(make_config(simulator.config_dict(), {**env, "KASA_PASSWORD": "right"}))
    try:
        await good.poll_all()
    finally:
        await good.close()
    assert all(good.store.get(p.mac).up for p in (klap, aes))


async def test_offline_vanishes_from_metrics_and_recovers(simulator) -> None:
    plugs = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"]), PlugOptions(PROFILES["kp115_xor"])]
    )
    config = make_config(simulator.config_dict(), prometheus={"host": "127.0.0.1", "port": 0})
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port

        def power(plug) -> dict:
            return find(scrape(port), "tplink_native_power_watts", device_id=plug.mac)

        await wait_for(lambda: all(power(p) for p in plugs))
        victim, other = plugs
        victim.fault = Fault.OFFLINE
        await wait_for(lambda: not power(victim))
        s = scrape(port)
        assert one(s, "tplink_native_up", device_id=victim.mac) == 0
        assert one(s, "tplink_native_device_info", device_id=victim.mac) == 1
        assert one(s, "tplink_native_up", device_id=other.mac) == 1
        assert power(other)
        # self-metrics: latency per device, errors by kind, last success; the histogram
        # counts failed polls too (a scrape may come before the healthy plug's second poll)
        await wait_for(
            lambda: (
                one(scrape(port), "otelpower_poll_duration_seconds_count", protocol="native") >= 4
            ),
            what="4 polls counted",
        )
        s = scrape(port)  # the counters as they stand after those polls
        assert one(s, "otelpower_last_poll_duration_seconds", device_id=victim.mac) > 0
        errors = find(s, "otelpower_poll_errors_total", device_id=victim.mac)
        assert errors and {dict(k)["kind"] for k in errors} <= {"offline", "timeout"}
        assert not find(s, "otelpower_poll_errors_total", device_id=other.mac)
        assert one(s, "otelpower_last_success_timestamp_seconds", device_id=other.mac) > 0
        victim.fault = Fault.NONE
        await wait_for(lambda: power(victim), timeout=15)
        assert one(scrape(port), "tplink_native_up", device_id=victim.mac) == 1


async def test_a_matter_only_plug_is_not_polled_natively(simulator) -> None:
    """``protocols: [matter]``: no native polls, no native series (so no PlugDown for it)."""
    read, skipped = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"]), PlugOptions(PROFILES["p110_klap"])]
    )
    data = simulator.config_dict()
    for device in data["devices"]:
        if device["device_id"] == skipped.mac:
            del device["native"]
            device["protocols"] = ["matter"]
    config = make_config(data, prometheus={"host": "127.0.0.1", "port": 0})
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port
        await wait_for(lambda: find(scrape(port), "tplink_native_power_watts", device_id=read.mac))
        s = scrape(port)
        assert not [k for k in s if dict(k[1]).get("device_id") == skipped.mac]
    assert read.logins >= 1 and skipped.logins == 0


async def test_slow_plug_does_not_delay_others(simulator) -> None:
    slow, fast = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"]), PlugOptions(PROFILES["p110_klap"])]
    )
    slow.slow_s = 30
    slow.fault = Fault.SLOW
    reader = NativeReader(make_config(simulator.config_dict(), poll={"timeout": 1}))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await reader.poll_all()
    finally:
        await reader.close()
    assert loop.time() - started < 3
    assert reader.store.get(fast.mac).up
    assert reader.store.get(slow.mac).status is DeviceStatus.TIMEOUT


async def test_found_by_mac_and_followed_to_new_ip(simulator) -> None:
    (plug,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    data = simulator.config_dict()
    data["devices"][0]["native"] = {"port": plug.port}  # no host: discovery must find it
    new_host = plug.host.rsplit(".", 1)[0] + ".200"  # same block, unused by the simulator
    data["discovery"] = {"targets": [plug.host, new_host], "interval": 1}
    reader = NativeReader(make_config(data))
    task = asyncio.create_task(reader.run())
    try:
        await wait_for(lambda: reader.store.get(plug.mac).up)
        old_host = plug.host
        await plug.move_to(new_host)
        await wait_for(lambda: not reader.store.get(plug.mac).up)
        await wait_for(lambda: reader.store.get(plug.mac).up, timeout=20)
        assert plug.host == new_host != old_host
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_read_command_json(simulator) -> None:
    plug, strip = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"], static=True), PlugOptions(PROFILES["hs300_xor"])]
    )

    async def read(target) -> dict:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "otelpower.cli",
            "read",
            f"{target.host}:{target.port}",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        return json.loads(out)

    result = await read(plug)
    assert result["mac"] == plug.mac and result["model"]
    assert approx(result["power_w"], plug.readings()["power_w"])
    for key in (
        "voltage_v",
        "current_a",
        "energy_today_kwh",
        "energy_month_kwh",
        "energy_total_kwh",
        "relay_on",
    ):
        assert key in result
    strip_result = await read(strip)
    assert len(strip_result["outlets"]) == 6
    assert set(strip_result["outlets"][0]) >= {"power_w", "relay_on"}


async def test_read_command_reports_offline(simulator) -> None:
    (plug,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    plug.fault = Fault.OFFLINE
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "otelpower.cli",
        "read",
        f"{plug.host}:{plug.port}",
        "--timeout",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "offline" in err.decode() or "timeout" in err.decode()
    assert "Traceback" not in err.decode()


async def test_reader_over_fixture_corpus(simulator) -> None:
    """Every real device dump, emulated as-is, comes out of our reader with its values."""
    from tests.conftest import SHARED_FIXTURES

    paths = sorted(SHARED_FIXTURES.rglob("*.json")) if SHARED_FIXTURES.is_dir() else []
    if not paths:
        pytest.skip(f"no fixture corpus at {SHARED_FIXTURES}")
    plugs = await simulator.start([PlugOptions(p, static=True) for p in paths])
    reader = NativeReader(make_config(simulator.config_dict(), poll={"timeout": 10}))
    try:
        await reader.poll_all()
    finally:
        await reader.close()
    for path, plug in zip(paths, plugs, strict=True):
        snap = reader.store.get(plug.mac)
        assert snap.up, (path.name, snap.status, snap.detail)
        truth = plug.readings()
        channels = truth.get("outlets", [truth])
        ours = [r for r in snap.readings if r.outlet] if "outlets" in truth else snap.readings
        assert len(ours) == len(channels), path.name
        for reading, expected in zip(ours, channels, strict=True):
            assert approx(reading.values["power_watts"], expected["power_w"]), path.name
            for key, field in (("voltage_volts", "voltage_v"), ("current_amperes", "current_a")):
                if key in reading.values:
                    assert approx(reading.values[key], expected[field]), (path.name, key)


def tpap(**options) -> PlugOptions:
    """A P110 on Tapo firmware 1.4.x with Third-Party Compatibility off (TPAP)."""
    return PlugOptions(PROFILES["p110_klap"], transport="TPAP", tpap=TpapOptions(**options))


async def test_unsupported_transport_is_a_state(simulator, caplog) -> None:
    cloud, ok = await simulator.start([tpap(tls=2), PlugOptions(PROFILES["kp115_xor"])])
    caplog.set_level(logging.WARNING, logger="otelpower")
    reader = NativeReader(make_config(simulator.config_dict()))
    try:
        await reader.poll_all()
        await reader.poll_all()
    finally:
        await reader.close()
    snap = reader.store.get(cloud.mac)
    assert snap.status is DeviceStatus.UNSUPPORTED
    assert snap.detail == "TPAP variant not supported (tls: 2)"
    assert reader.store.get(ok.mac).up
    (line,) = [r.getMessage() for r in caplog.records if "unsupported" in r.getMessage()]
    assert "Third-Party Compatibility" in line and "Matter" in line
    assert cloud.logins == 0  # refused before any login request


async def test_discover_command(simulator) -> None:
    plugs = await simulator.start(
        [
            PlugOptions(PROFILES["p110_klap"]),
            PlugOptions(PROFILES["hs300_xor"]),
            tpap(),
            tpap(tls=2),
        ]
    )
    targets = [arg for p in plugs for arg in ("--target", p.host)]

    async def discover(*extra: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "otelpower.cli",
            "discover",
            *targets,
            "--wait",
            "1",
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    rows = {r["mac"]: r for r in json.loads(await discover("--json"))}
    assert set(rows) == {p.mac for p in plugs}
    klap, strip, new, cloud = (rows[p.mac] for p in plugs)
    assert (klap["ip"], klap["transport"], klap["energy"]) == (plugs[0].host, "KLAP v2", "yes")
    assert klap["model"] == "P110" and klap["firmware"]
    assert strip["transport"] == "XOR" and strip["energy"] == "yes"
    assert (new["transport"], new["energy"], new["model"]) == ("TPAP", "yes", "P110")
    assert cloud["transport"] == "TPAP (unsupported)"
    assert (klap["alias"], strip["alias"], new["alias"]) == tuple(p.alias for p in plugs[:3])
    text = await discover()
    assert f'device: "{plugs[0].alias}"' in text  # the snippet names plugs by their alias
    assert "MAC" in text and "TRANSPORT" in text and f'device_id: "{plugs[0].mac}"' in text
    assert f"native: {{host: {plugs[0].host}}}" in text
