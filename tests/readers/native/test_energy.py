"""Energy the native reader reports: counters for every metered plug, plug-local dates."""

from __future__ import annotations

from datetime import datetime

import pytest

from otelpower.core.model import DeviceStatus
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import PlugOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
TODAY = "energy_today_kilowatt_hours"
MONTH = "energy_month_kilowatt_hours"
COUNTER = "energy_kilowatt_hours"


async def poll_once(simulator) -> NativeReader:
    reader = NativeReader(make_config(simulator.config_dict()))
    try:
        await reader.poll_all()
    finally:
        await reader.close()
    return reader


async def test_every_metered_plug_and_outlet_has_a_counter(simulator) -> None:
    plugs = await simulator.start([PlugOptions(p) for p in PROFILES.values()])
    reader = await poll_once(simulator)
    for plug in plugs:
        snap = reader.store.get(plug.mac)
        assert snap.status is DeviceStatus.OK, plug
        metered = [r for r in snap.readings if "power_watts" in r.values]
        assert metered, plug
        for reading in metered:
            if plug.transport == "TPAP" and reading.outlet:
                continue  # TPAP strip outlets: no energy figures through the client
            assert COUNTER in reading.values, (plug, reading.outlet)
            if plug.profile.family == "smart":  # the month figure is the counter
                assert reading.values[COUNTER] == reading.values[MONTH]


async def test_kasa_today_is_the_plugs_day_not_the_hosts(simulator) -> None:
    # the plug's clock reads 00:30 on 1 December (UTC+2) while the host is on another day:
    # python-kasa picks "today" by the host's date and would read 0.0
    simulator.clock.set_local(datetime(2026, 12, 1, 0, 30), 7200)
    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"], utc_offset_min=120)])
    simulator.clock.advance(3600)  # an hour of use: 01:30 on the plug
    (reading,) = (await poll_once(simulator)).store.get(plug.mac).readings
    today_wh, _ = plug.device.outlets[0].figures(simulator.clock.now(), 7200)
    assert reading.values[TODAY] == pytest.approx(round(today_wh) / 1000, abs=0.002)
    assert reading.values[TODAY] > 0


async def test_counter_jitter_is_held_and_a_real_reset_goes_through(simulator) -> None:
    """A Kasa plug whose lifetime total reads 1 Wh lower once (seen: 0.060 -> 0.059)."""
    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"], static=True)])
    reader = NativeReader(make_config(simulator.config_dict()))

    async def counter() -> float:
        await reader.poll_all()
        (reading,) = reader.store.get(plug.mac).readings
        return reading.values[COUNTER]

    try:
        first = await counter()
        lower = round(first - 0.001, 3)  # the plug's own jitter
        plug.device.overrides = {"total": lower, "total_wh": round(lower * 1000)}
        assert await counter() == first
        plug.device.overrides = {"total": 0.0, "total_wh": 0}  # the meter was erased
        assert await counter() == 0.0
        plug.device.overrides = {"total": 0.002, "total_wh": 2}
        assert await counter() == 0.002
    finally:
        await reader.close()
