"""The plugs' clock: today and month restart at the plug's local midnight and month start."""

from __future__ import annotations

from datetime import datetime

import pytest

from otelpower.sim import PlugOptions, Simulator

from .conftest import PROFILES

UTC_PLUS_1 = 3600


def usage(plug) -> dict:
    reply = plug.device.handle({"method": "get_energy_usage", "params": None})
    return reply["result"]


async def test_tapo_figures_restart_at_local_midnight_and_month_start(sim: Simulator) -> None:
    sim.clock.set_local(datetime(2026, 11, 30, 23, 59, 0), UTC_PLUS_1)  # before the plugs start
    (plug,) = await sim.start([PlugOptions(PROFILES["p110_klap"], utc_offset_min=60)])
    before = usage(plug)
    assert before["today_energy"] > 0 and before["month_energy"] >= before["today_energy"]
    assert before["local_time"].startswith("2026-11-30 23:59")
    sim.clock.advance(120)  # 00:01 on 1 December
    after = usage(plug)
    assert after["local_time"].startswith("2026-12-01 00:01")
    assert after["today_energy"] == after["month_energy"] <= 2  # one minute at ~60 W
    total0 = plug.readings()["energy_total_kwh"]
    sim.clock.advance(3600)  # the plug lives through an hour
    later = usage(plug)
    recorded_wh = (plug.readings()["energy_total_kwh"] - total0) * 1000
    assert 30 < recorded_wh < 120
    assert later["month_energy"] == later["today_energy"]
    assert later["month_energy"] - after["month_energy"] == pytest.approx(recorded_wh, abs=1.01)


async def test_kasa_day_and_month_lists_follow_the_plug_date(sim: Simulator) -> None:
    sim.clock.set_local(datetime(2026, 12, 1, 0, 30, 0), 7200)  # 22:30 UTC on 30 November
    (plug,) = await sim.start([PlugOptions(PROFILES["kp115_xor"], utc_offset_min=120)])
    day = plug.device.handle({"emeter": {"get_daystat": {"year": 2026, "month": 12}}})
    (entry,) = day["emeter"]["get_daystat"]["day_list"]
    assert (entry["year"], entry["month"], entry["day"]) == (2026, 12, 1)
    host_month = plug.device.handle({"emeter": {"get_daystat": {"year": 2026, "month": 11}}})
    assert host_month["emeter"]["get_daystat"]["day_list"] == []  # no entry, not 0


async def test_erasing_the_meter_restarts_the_lifetime_counter(sim: Simulator) -> None:
    (plug,) = await sim.start([PlugOptions(PROFILES["kp115_xor"])])
    assert plug.readings()["energy_total_kwh"] > 0.01
    plug.erase_energy()
    assert plug.readings()["energy_total_kwh"] < 0.001
