"""Plugs that misbehave: nonsense values, spoiled replies. Real python-kasa, real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import math

import pytest

from harness.promtext import find, one, scrape
from harness.wait import wait_for
from otelpower import app
from otelpower.core.logthrottle import LogThrottle
from otelpower.core.model import DeviceStatus
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import Fault, PlugOptions, TpapOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
SPOILED = [Fault.GARBAGE, Fault.MALFORMED, Fault.TRUNCATED, Fault.WRONG_KEY]

# value the plug sends as get_emeter_data.power_mw (p110_klap; python-kasa divides it by
# 1000) -> why power is dropped, and whether the plug's other energy values are still read.
# A value python-kasa cannot process fails its whole Energy module (it would keep serving
# the previous power: a frozen value), so every energy value of that poll is unreadable.
NONSENSE = [
    (-5000, "negative", True),
    (1e30, "out_of_range", True),
    ("12", "unreadable", False),
    ([1, 2], "unreadable", False),
    ({"mw": 1}, "unreadable", False),
    (math.nan, "unreadable", False),  # NaN is not JSON: python-kasa rejects the reply
    (math.inf, "unreadable", False),
]


@pytest.mark.parametrize(("value", "reason", "rest_read"), NONSENSE)
async def test_nonsense_values_are_dropped_and_counted(
    simulator, value, reason, rest_read, caplog
) -> None:
    bad, good = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"]), PlugOptions(PROFILES["p110_klap"])]
    )
    reader = NativeReader(make_config(simulator.config_dict()))
    caplog.set_level(logging.WARNING, logger="otelpower")
    try:
        await reader.poll_all()
        assert "power_watts" in reader.store.get(bad.mac).readings[0].values
        bad.device.overrides = {"power_mw": value}
        for _ in range(3):
            await reader.poll_all()
    finally:
        await reader.close()
    snap = reader.store.get(bad.mac)
    assert snap is not None and snap.status is DeviceStatus.OK  # the plug is up ...
    (reading,) = snap.readings
    assert "power_watts" not in reading.values  # ... but its nonsense is not data
    assert ("voltage_volts" in reading.values) is rest_read
    assert "relay_on" in reading.values  # other replies are still read
    assert ("power_watts", reason) in [(d.key, d.reason) for d in reading.dropped]
    assert "power_watts" in reader.store.get(good.mac).readings[0].values
    lines = [r.getMessage() for r in caplog.records if "power_watts value" in r.getMessage()]
    assert len(lines) == 1 and f"({reason})" in lines[0], lines


async def test_dropped_values_on_metrics(simulator) -> None:
    bad, good = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"]), PlugOptions(PROFILES["p110_klap"])]
    )
    bad.device.overrides = {"power_mw": -1, "voltage_mv": 10**12}
    config = make_config(simulator.config_dict(), prometheus={"host": "127.0.0.1", "port": 0})
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port
        dropped = "otelpower_values_dropped_total"

        def ready() -> dict:
            s = scrape(port)
            good_power = find(s, "tplink_native_power_watts", device_id=good.mac)
            return s if good_power and len(find(s, dropped, device_id=bad.mac)) == 2 else {}

        s = await wait_for(ready)
        assert one(s, dropped, device_id=bad.mac, quantity="power_watts", reason="negative") >= 1
        assert one(s, dropped, device_id=bad.mac, reason="out_of_range") >= 1
        assert not find(s, dropped, device_id=good.mac)
        assert not find(s, "tplink_native_power_watts", device_id=bad.mac)
        assert not find(s, "tplink_native_voltage_volts", device_id=bad.mac)
        assert one(s, "tplink_native_current_amperes", device_id=bad.mac) >= 0
        assert one(s, "tplink_native_up", device_id=bad.mac) == 1
        assert find(s, "tplink_native_power_watts", device_id=good.mac)


@pytest.mark.parametrize("profile", ["p110_klap", "p110_aes", "kp115_xor"])
async def test_spoiled_replies_are_a_state_and_recover(simulator, profile, caplog) -> None:
    """Garbage, non-JSON, truncated and wrongly encrypted replies: an error state, one log
    line per change, the other plug unaffected, and the plug back once it answers properly."""
    bad, good = await simulator.start(
        [PlugOptions(PROFILES[profile]), PlugOptions(PROFILES[profile])]
    )
    reader = NativeReader(make_config(simulator.config_dict(), poll={"timeout": 2}))
    caplog.set_level(logging.INFO, logger="otelpower")
    try:
        await reader.poll_all()
        assert reader.store.get(bad.mac).up
        for fault in SPOILED:
            await bad.set_fault(fault)
            for _ in range(2):
                await reader.poll_all()
            snap = reader.store.get(bad.mac)
            assert not snap.up and not snap.readings, (fault, snap)
            assert snap.status in (DeviceStatus.ERROR, DeviceStatus.TIMEOUT), (fault, snap)
            assert reader.store.get(good.mac).up, fault
            await bad.set_fault(Fault.NONE)
            for _ in range(20):  # backoff is capped at 1 s in tests
                await reader.poll_all()
                if reader.store.get(bad.mac).up:
                    break
                await asyncio.sleep(0.1)
            assert reader.store.get(bad.mac).up, fault
    finally:
        await reader.close()
    name = f"({bad.mac},"
    changes = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert len(changes) <= 2 * len(SPOILED) + 1, changes  # a line per change, not per poll


@pytest.mark.parametrize(
    ("profile", "size"),
    # 8x the limit: the emulator builds its reply on the test's own loop (XOR in pure Python)
    [("kp115_xor", 8 << 20), ("p110_klap", 8 << 20), ("p110_aes", 8 << 20)],
)
async def test_a_huge_reply_is_refused_before_it_is_read(simulator, profile, size) -> None:
    """A reply of megabytes (a hostile host; a plug's is a few kB) is refused at its length, not
    read, decrypted and parsed on the event loop: the poll ends well inside poll.timeout as
    an error that says so, and the other plug in the same poll is read."""
    big, small = await simulator.start(
        [PlugOptions(PROFILES[profile]), PlugOptions(PROFILES["p110_klap"])]
    )
    reader = NativeReader(make_config(simulator.config_dict(), poll={"timeout": 4}))
    loop = asyncio.get_running_loop()
    try:
        await reader.poll_all()  # logged in, read normally
        assert reader.store.get(big.mac).up
        big.oversize_bytes = size
        await big.set_fault(Fault.OVERSIZED)
        started = loop.time()
        await reader.poll_all()
        took = loop.time() - started
    finally:
        await reader.close()
    assert reader.store.get(small.mac).up
    snap = reader.store.get(big.mac)
    assert snap.status is DeviceStatus.ERROR and "refused" in snap.detail, snap
    assert took < 4, took  # refused at the length, not after reading it all


async def test_flapping_plug_does_not_flood_the_log(simulator, caplog) -> None:
    """A plug that fails every other poll logs a few lines, then its current state with how
    many changes were held back, once the rate limit's window allows."""
    flapper, steady = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"]), PlugOptions(PROFILES["p110_klap"])]
    )
    reader = NativeReader(make_config(simulator.config_dict()))
    now = [0.0]
    reader.publisher.log_throttle = LogThrottle(burst=3, window_s=300, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="otelpower")
    name = f"({flapper.mac},"
    try:
        for i in range(20):
            await flapper.set_fault(Fault.GARBAGE if i % 2 else Fault.NONE)
            await reader.poll_all()
            assert reader.store.get(steady.mac).up
        assert reader.store.get(flapper.mac).status is DeviceStatus.ERROR  # i = 19
        lines = [r.getMessage() for r in caplog.records if name in r.getMessage()]
        assert len(lines) == 3, lines  # the burst, not 20
        now[0] += 300
        await reader.poll_all()
    finally:
        await reader.close()
    last = [r.getMessage() for r in caplog.records if name in r.getMessage()][-1]
    assert "[16 state changes not logged: flapping]: error" in last, last


async def test_strip_with_a_huge_number_of_outlets(simulator, tmp_path) -> None:
    """A strip claiming 200 outlets: read per outlet (or failed cleanly), in bounded time,
    without holding up the plug beside it."""
    dump = json.loads(PROFILES["hs300_xor"].read_text())
    info = dump["system"]["get_sysinfo"]
    first = info["children"][0]
    info["children"] = [
        {**first, "alias": f"Outlet {i + 1}", "id": f"{i:02d}"} for i in range(OUTLETS)
    ]
    info["child_num"] = OUTLETS
    path = tmp_path / "hs300_huge.json"
    path.write_text(json.dumps(dump))
    strip, plug = await simulator.start([PlugOptions(path), PlugOptions(PROFILES["p110_klap"])])
    reader = NativeReader(make_config(simulator.config_dict(), poll={"timeout": 10}))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await reader.poll_all()
        await reader.poll_all()
    finally:
        await reader.close()
    assert loop.time() - started < 20
    assert reader.store.get(plug.mac).up
    snap = reader.store.get(strip.mac)
    if snap.up:
        outlets = [r for r in snap.readings if r.outlet]
        assert len(outlets) == OUTLETS
        assert all("power_watts" in r.values for r in outlets)
    else:
        assert snap.status in (DeviceStatus.ERROR, DeviceStatus.TIMEOUT) and snap.detail


OUTLETS = 200


@pytest.mark.parametrize("profile", ["p110_klap", "kp115_xor", "p110_tpap"])
async def test_a_vanished_plug_is_offline_at_the_first_failed_poll(simulator, profile: str) -> None:
    """Offline at once on every transport (python-kasa reports the vanished KLAP plug as failed
    queries: the reader's connect check says why), the detail in words: no object reprs."""
    login = {"username": "owner@example.com", "password": "pw"}
    tpap = {"transport": "TPAP", "tpap": TpapOptions()} if "tpap" in profile else {}
    (plug,) = await simulator.start([PlugOptions(PROFILES[profile], **login, **tpap)])
    env = {"KASA_USERNAME": login["username"], "KASA_PASSWORD": login["password"]}
    reader = NativeReader(make_config(simulator.config_dict(), env, poll={"timeout": 10}))
    try:
        await reader.poll_all()
        assert reader.store.get(plug.mac).up
        await plug.stop()
        await reader.poll_all()
        snap = reader.store.get(plug.mac)
        assert snap.status is DeviceStatus.OFFLINE, (snap.status, snap.detail)
        assert "object at 0x" not in snap.detail and "(" not in snap.detail, snap.detail
    finally:
        await reader.close()
