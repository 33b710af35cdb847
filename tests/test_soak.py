"""Compressed soak: many plugs, faults injected at random, the collector down throughout.

``OTELPOWER_SOAK_CYCLES`` poll cycles (default 120: 30 minutes of operation at the default
15 s interval, run at 0.5 s) over ``OTELPOWER_SOAK_PLUGS`` plugs (default 100; they share
this process and its event loop with the reader, so more would measure an overloaded
emulator). ``make soak`` is the longer opt-in run. Faults are cleared after a warm-up and
at the end, and the process is measured both times: memory, file descriptors, threads and
tasks must be flat, every plug must be up and report on /metrics, and nothing crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import resource
import socket
import threading
import time

import pytest

from harness.promtext import find, scrape_fresh
from harness.wait import wait_for
from otelpower import app
from otelpower.sim import Fault, PlugOptions, builtin_profiles
from tests.conftest import make_config

CYCLES = int(os.environ.get("OTELPOWER_SOAK_CYCLES", "120"))
PLUGS = int(os.environ.get("OTELPOWER_SOAK_PLUGS", "100"))
INTERVAL_S = 0.5
WARM_CYCLES = 20

PROFILES = {p.stem: p for p in builtin_profiles()}
MIX = ["p110_klap"] * 6 + ["p110_aes", "kp115_xor", "hs300_xor", "p304m_klap"]
# OVERSIZED is left out: 4 MB replies at random would measure allocator high water marks
FAULTS = [Fault.OFFLINE, Fault.SLOW, Fault.GARBAGE, Fault.MALFORMED, Fault.TRUNCATED]
FAULTS += [Fault.WRONG_KEY]
NONSENSE = [-5000, 1e30, "x", math.nan, [1]]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


# Tasks of the emulated plugs (their connection handlers and discovery replies, in flight at
# any moment): they share this event loop but are not otelpower's.
EMULATOR_CODE = ("/otelpower/sim/", "/aiohttp/web_protocol.py")


def otelpower_tasks() -> int:
    def emulator(task: asyncio.Task) -> bool:
        code = getattr(task.get_coro(), "cr_code", None)
        return code is not None and any(part in code.co_filename for part in EMULATOR_CODE)

    return sum(1 for task in asyncio.all_tasks() if not emulator(task))


def usage() -> dict[str, float]:
    return {
        "rss_mb": rss_mb(),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "tasks": otelpower_tasks(),
    }


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def polls_per_plug(series: dict, macs: list[str]) -> float:
    counts = find(series, "otelpower_poll_duration_seconds_count")
    per = {}
    for labels, value in counts.items():
        per[dict(labels)["device_id"]] = per.get(dict(labels)["device_id"], 0) + value
    return min(per.get(mac, 0) for mac in macs)


async def chaos(plugs: list, rng: random.Random, stop: asyncio.Event) -> int:
    """Every 50 ms one random plug gets a fault, a reboot, nonsense values, or heals."""
    actions = 0
    while not stop.is_set():
        plug = rng.choice(plugs)
        roll = rng.random()
        if roll < 0.45:
            plug.fault = Fault.NONE
            plug.device.overrides = {}
        elif roll < 0.75:
            plug.fault = rng.choice(FAULTS)
        elif roll < 0.9:
            plug.drop_sessions()  # a reboot: the KLAP/AES session is gone
        else:
            key = "power_mw" if plug.transport != "XOR" else "power"
            plug.device.overrides = {key: rng.choice(NONSENSE)}
        actions += 1
        await asyncio.sleep(0.05)
    return actions


@pytest.mark.timeout(60 + CYCLES * 4)
async def test_soak(simulator, monkeypatch, caplog) -> None:
    # as `otelpower run` does: python-kasa's per-poll warnings are off. pytest keeps every
    # captured record, and one with a traceback keeps that poll's frames (and replies) alive:
    # ~100 MB over the soak, which is the test's memory, not otelpower's
    caplog.set_level(logging.ERROR, logger="kasa")
    caplog.set_level(logging.CRITICAL, logger="opentelemetry.exporter")
    assert PLUGS <= 254, "one emulator block holds at most 254 plugs"
    rng = random.Random(20261128)
    plugs = await simulator.start([PlugOptions(PROFILES[MIX[i % len(MIX)]]) for i in range(PLUGS)])
    for plug in plugs:
        plug.slow_s = 5.0  # past the 3 s poll timeout
    macs = [p.mac for p in plugs]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1000")
    config = make_config(
        simulator.config_dict(),
        poll={"interval": INTERVAL_S, "timeout": 3, "backoff_max": 1, "concurrency": 64},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    running = contextlib.AsyncExitStack()
    runtime = await running.enter_async_context(app.Runtime(config, "native"))
    telemetry, reader, reader_task = runtime.telemetry, runtime.reader(), runtime.tasks[0]
    stop = asyncio.Event()
    chaos_task: asyncio.Task[int] | None = None
    try:

        def polls() -> float:
            return polls_per_plug(scrape_fresh(telemetry), macs)

        def all_report() -> bool:
            s = scrape_fresh(telemetry)
            up = {dict(k)["device_id"] for k, v in find(s, "tplink_native_up").items() if v == 1}
            power = {dict(k)["device_id"] for k in find(s, "tplink_native_power_watts")}
            missing = set(macs) - (up & power)
            if missing and os.environ.get("SOAK_DEBUG"):
                from collections import Counter

                by = Counter(
                    (reader.store.get(m).status, next(p.model for p in plugs if p.mac == m))
                    for m in missing
                )
                print("missing", len(missing), by)
            return not missing

        async def heal() -> dict[str, float]:
            """Clear every fault, wait until every plug reports; the process's usage then."""
            for plug in plugs:
                plug.device.overrides = {}
                await plug.set_fault(Fault.NONE)
            await wait_for(all_report, timeout=60, interval=0.5)
            return usage()

        await wait_for(all_report, timeout=60, interval=0.5)
        chaos_task = asyncio.create_task(chaos(plugs, rng, stop))
        await wait_for(lambda: polls() >= WARM_CYCLES, timeout=WARM_CYCLES * 3, interval=1)
        stop.set()
        actions = await chaos_task
        warm = await heal()  # warmed up through every kind of fault, then all healthy
        stop.clear()
        chaos_task = asyncio.create_task(chaos(plugs, rng, stop))
        started = time.monotonic()
        await wait_for(lambda: polls() >= CYCLES, timeout=CYCLES * 3, interval=1)
        stop.set()
        actions += await chaos_task
        end = await heal()
        assert not reader_task.done(), reader_task
        s = scrape_fresh(telemetry)
        dropped = sum(find(s, "otelpower_values_dropped_total").values())
        errors = sum(find(s, "otelpower_poll_errors_total").values())
        failed_exports = sum(find(s, "otelpower_exports_total", result="failure").values())
        print(
            f"\nsoak: {PLUGS} plugs, {CYCLES} cycles in {time.monotonic() - started:.0f}s,"
            f" {actions} chaos actions, {errors:.0f} failed polls, {dropped:.0f} dropped"
            f" values, {failed_exports:.0f} failed exports; warm {warm} -> end {end}"
        )
        assert errors > 0 and dropped > 0 and failed_exports > 0  # the faults did happen
        assert end["rss_mb"] - warm["rss_mb"] < 25, (warm, end)
        assert end["fds"] <= warm["fds"] + 10, (warm, end)
        assert end["threads"] <= warm["threads"] + 2, (warm, end)
        assert end["tasks"] <= warm["tasks"] + 2, (warm, end)
    finally:
        stop.set()
        if chaos_task is not None:
            await asyncio.gather(chaos_task, return_exceptions=True)
        await running.aclose()
