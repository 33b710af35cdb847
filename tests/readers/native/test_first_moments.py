"""The first seconds of a run, as a user watching the log and /metrics sees them."""

from __future__ import annotations

import logging

import pytest

from harness.promtext import find, scrape
from harness.wait import wait_for
from otelpower import app
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import Fault, PlugOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
LOCAL = {"host": "127.0.0.1", "port": 0}


async def test_pending_is_on_metrics_before_the_first_poll_ends(simulator) -> None:
    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"])])
    plug.fault = Fault.SLOW  # the first poll takes 30 s
    # the production interval: /metrics is re-rendered at most every 10 s unless told
    poll = {"interval": 15, "timeout": 60}
    config = make_config(simulator.config_dict(), prometheus=LOCAL, poll=poll)
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port

        def pending() -> bool:
            status = find(scrape(port), "tplink_native_device_status", device_id=plug.mac)
            return {dict(k)["status"] for k in status} == {"pending"}

        await wait_for(pending, timeout=5, what="status pending on /metrics")
        assert not find(scrape(port), "tplink_native_power_watts", device_id=plug.mac)


async def test_no_warning_for_a_plug_discovery_has_yet_to_find(
    simulator, caplog: pytest.LogCaptureFixture
) -> None:
    (plug,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    data = simulator.config_dict()
    data["devices"][0]["native"] = {"port": plug.port}  # no host: discovery finds it
    reader = NativeReader(make_config(data))
    with caplog.at_level(logging.INFO, logger="otelpower.readers.native"):
        import asyncio

        task = asyncio.create_task(reader.run())
        try:
            await wait_for(lambda: reader.store.get(plug.mac).up, timeout=20)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings
