"""Stale markers and outages, the whole way: emulator -> otelpower -> collector -> VM."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from harness.backends import Collector, VictoriaMetrics
from harness.promtext import find, scrape
from harness.wait import wait_for
from otelpower import app
from otelpower.sim import Fault, PlugOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
POWER = "tplink_native_power_watts"
POLL_S = 0.5
VM_OFFSET_S = 1.0  # the VictoriaMetrics fixture's -search.latencyOffset


@asynccontextmanager
async def otelpower(simulator) -> AsyncIterator[tuple]:
    """A KLAP plug and a XOR plug read by otelpower with OTLP to the collector."""
    plugs = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"]), PlugOptions(PROFILES["kp115_xor"])]
    )
    config = make_config(
        simulator.config_dict(),
        poll={"interval": POLL_S, "timeout": 2},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    async with app.Runtime(config, "native") as runtime:
        yield plugs, runtime.reader(), runtime.telemetry


def power_now(vm: VictoriaMetrics, mac: str) -> list[dict]:
    return vm.query(f'{POWER}{{device_id="{mac}"}}')


async def offline_scenario(simulator, vm: VictoriaMetrics, export_s: float) -> tuple[bool, float]:
    """Take the XOR plug offline; (power still at "now" after the bound, seconds waited)."""
    async with otelpower(simulator) as (plugs, _, _):
        victim = plugs[1]
        await wait_for(
            lambda: power_now(vm, victim.mac), 4 * export_s + 5, interval=0.2, in_thread=True
        )
        victim.fault = Fault.OFFLINE
        t0 = time.monotonic()
        bound = POLL_S + export_s + VM_OFFSET_S + 1.0  # +1 s: WAL flush, scheduling
        try:
            await wait_for(
                lambda: not power_now(vm, victim.mac), bound, interval=0.2, in_thread=True
            )
            gone = True
        except AssertionError:
            gone = False
        waited = time.monotonic() - t0
        up = vm.query(f'tplink_native_up{{device_id="{victim.mac}"}}')
        if gone:
            assert up and float(up[0]["value"][1]) == 0
        assert power_now(vm, plugs[0].mac)  # the other plug is untouched
        return not gone, waited


async def test_offline_plug_vanishes_from_vm_at_once(simulator, victoria_metrics, otlp_env):
    still_there, waited = await offline_scenario(simulator, victoria_metrics, otlp_env)
    assert not still_there, "power series still returned at 'now' after the bound"
    print(f"stale in VictoriaMetrics after {waited:.2f}s")


async def test_control_without_markers_keeps_the_frozen_value(
    simulator, victoria_metrics, otlp_env, monkeypatch
):
    monkeypatch.setenv("OTELPOWER_STALE_MARKERS", "false")
    still_there, _ = await offline_scenario(simulator, victoria_metrics, otlp_env)
    assert still_there, "without markers VictoriaMetrics should still show the last value"


async def test_collector_down_blocks_nothing(simulator, collector: Collector, otlp_env):
    async with otelpower(simulator) as (plugs, reader, telemetry):
        port = telemetry.prometheus_port
        await wait_for(
            lambda: len(find(scrape(port), POWER)) == 2, 10, interval=0.2, in_thread=True
        )
        await asyncio.to_thread(collector.stop)
        before = reader.store.get(plugs[0].mac).updated_at
        t0 = time.monotonic()
        for _ in range(int(3 * otlp_env / 0.5)):  # three export intervals without a collector
            started = time.monotonic()
            assert len(find(await asyncio.to_thread(scrape, port), POWER)) == 2
            assert time.monotonic() - started < 1.0  # the pull endpoint never waits
            await asyncio.sleep(0.5)
        assert reader.store.get(plugs[0].mac).updated_at > before  # polling went on
        assert time.monotonic() - t0 < 3 * otlp_env + 5
        await asyncio.to_thread(collector.start)


async def test_vm_outage_backlog_is_delivered(simulator, victoria_metrics, collector, otlp_env):
    async with otelpower(simulator) as (plugs, _, _):
        mac = plugs[0].mac
        await wait_for(
            lambda: power_now(victoria_metrics, mac), 4 * otlp_env + 5, interval=0.2, in_thread=True
        )
        await asyncio.to_thread(victoria_metrics.stop)
        outage_start = time.time()
        await asyncio.sleep(4 * otlp_env)
        outage_end = time.time()
        await asyncio.to_thread(victoria_metrics.start)

        def samples_in_outage() -> int:
            window = outage_end - outage_start
            result = victoria_metrics.query(
                f'count_over_time({POWER}{{device_id="{mac}"}}[{window:.0f}s])', at=outage_end
            )
            return int(float(result[0]["value"][1])) if result else 0

        expected = int((outage_end - outage_start) / otlp_env) - 1
        count = await wait_for(
            lambda: samples_in_outage() >= expected and samples_in_outage(),
            40,
            interval=0.2,
            in_thread=True,
        )
        assert count >= expected, (count, expected)


@pytest.fixture(autouse=True)
def _fast_exporter_timeout(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # bounded retries while down


async def test_restart_keeps_series_identity(simulator, victoria_metrics, otlp_env):
    """Two runs of otelpower (a restart) write into the very same series: no churn."""
    plugs = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    config = make_config(
        simulator.config_dict(),
        poll={"interval": POLL_S},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    t0 = time.time()
    for _ in range(2):
        async with app.Runtime(config, "native"):
            await wait_for(
                lambda: power_now(victoria_metrics, plugs[0].mac),
                4 * otlp_env + 5,
                interval=0.2,
                in_thread=True,
            )
    series = victoria_metrics.series(
        f'{{__name__=~"tplink_native_.*",device_id="{plugs[0].mac}"}}', start=t0
    )
    # one series per name across both runs (device_status has one per status it passed through)
    names = [s["__name__"] for s in series if s["__name__"] != "tplink_native_device_status"]
    assert len(names) == len(set(names)), names
    assert {s["instance"] for s in series} == {config.service_instance_id("native")}
