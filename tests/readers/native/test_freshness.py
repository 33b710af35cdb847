"""Freshness of the running reader: a returning plug is seen at once, a dead one holds up no
other, and a rejected login stays a standing fault. Real python-kasa, real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from harness.wait import wait_for
from otelpower.core.model import DeviceStatus
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import Fault, PlugOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
LOGIN = {"username": "owner@example.com", "password": "right-pass"}
ENV = {"KASA_USERNAME": LOGIN["username"], "KASA_PASSWORD": LOGIN["password"]}


class Polls:
    """A PollRecorder that keeps the device id of every poll."""

    def __init__(self) -> None:
        self.of: list[str] = []

    def poll(self, _protocol: str, device_id: str, *_: object) -> None:
        self.of.append(device_id)

    def dropped(self, *_: object) -> None:
        pass


@asynccontextmanager
async def running(reader: NativeReader) -> AsyncIterator[NativeReader]:
    task = asyncio.create_task(reader.run())
    try:
        yield reader
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def no_discovery(data: dict[str, Any]) -> dict[str, Any]:
    """Only the reader's own polls and probes: discovery wakes no plug."""
    return {**data, "discovery": {"enabled": False}}


async def test_a_plug_back_from_a_long_outage_is_polled_within_an_interval(simulator) -> None:
    interval = 0.4
    (plug,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    config = make_config(
        no_discovery(simulator.config_dict()),
        poll={"interval": interval, "timeout": 2, "backoff_max": 60},
    )
    reader = NativeReader(config)
    (state,) = reader.devices
    async with running(reader):
        await wait_for(lambda: reader.store.get(plug.mac).up)
        await plug.set_fault(Fault.OFFLINE)
        await wait_for(lambda: state.failures >= 5, timeout=30, what="five failed polls")
        assert reader.store.get(plug.mac).status is DeviceStatus.OFFLINE
        backoff = reader.delay(state)
        assert backoff >= 16 * interval  # without the probe, the next poll is this far off
        await plug.set_fault(Fault.NONE)
        started = time.monotonic()
        await wait_for(lambda: reader.store.get(plug.mac).up, timeout=backoff / 2, what="back")
        assert time.monotonic() - started < interval + 2.0  # a probe, a login and a poll


async def test_a_rejected_login_is_not_tried_again_when_the_socket_accepts(simulator) -> None:
    """The plug comes back with another password: the probe wakes it once (a login was
    allowed), the login is rejected, and then no probe or poll logs in before auth_retry_s,
    however often its socket closes and accepts again."""
    retry_s = 6.0
    plug, clock = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"], **LOGIN), PlugOptions(PROFILES["kp115_xor"])]
    )
    polls = Polls()
    config = make_config(
        no_discovery(simulator.config_dict()),
        ENV,
        poll={"interval": 0.2, "timeout": 2, "backoff_max": 60},
    )
    reader = NativeReader(config, recorder=polls, auth_retry_s=retry_s)
    (state, _) = reader.devices
    async with running(reader):
        await wait_for(lambda: reader.store.get(plug.mac).up)
        await plug.set_fault(Fault.OFFLINE)
        await wait_for(lambda: state.failures >= 3, timeout=30, what="backing off")
        plug.set_credentials(LOGIN["username"], "changed-in-the-app")
        await plug.set_fault(Fault.NONE)
        await wait_for(lambda: reader.store.get(plug.mac).status is DeviceStatus.AUTH_FAILED)
        rejected, logins = time.monotonic(), plug.logins

        for _ in range(3):  # the socket goes away and accepts again, for intervals each time
            for fault in (Fault.OFFLINE, Fault.NONE):
                await plug.set_fault(fault)
                seen = polls.of.count(clock.mac)
                await wait_for(lambda seen=seen: polls.of.count(clock.mac) >= seen + 2)
        assert time.monotonic() - rejected < retry_s
        assert plug.logins == logins
        assert reader.store.get(plug.mac).status is DeviceStatus.AUTH_FAILED

        await wait_for(lambda: plug.logins > logins, timeout=retry_s + 10, what="the retry")
        assert time.monotonic() - rejected >= retry_s - 0.1


async def test_dead_plugs_do_not_delay_the_down_status_of_others(simulator) -> None:
    """Six plugs that accept connections and never answer, two places in the limit: a plug
    that goes away is still down within interval + timeout (+ slack)."""
    interval, timeout = 0.5, 2.0
    *dead, victim = await simulator.start([PlugOptions(PROFILES["p110_klap"]) for _ in range(7)])
    config = make_config(
        no_discovery(simulator.config_dict()),
        poll={"interval": interval, "timeout": timeout, "backoff_max": 1, "concurrency": 2},
    )
    reader = NativeReader(config)
    async with running(reader):
        await wait_for(lambda: all(reader.store.get(p.mac).up for p in [*dead, victim]))
        for plug in dead:
            plug.slow_s = 60
            await plug.set_fault(Fault.SLOW)
        await wait_for(
            lambda: all(reader.store.get(p.mac).status is DeviceStatus.TIMEOUT for p in dead),
            timeout=30,
        )
        assert reader.store.get(victim.mac).up
        await victim.set_fault(Fault.OFFLINE)
        await wait_for(
            lambda: not reader.store.get(victim.mac).up,
            timeout=interval + timeout + 2.0,
            what="the victim down",
        )


async def test_a_vanished_plug_fails_at_the_refusal_not_after_the_retries(simulator) -> None:
    """python-kasa retries a vanished KLAP plug's modules one by one (~8 s); the reader asks
    the endpoint once the poll is slow (a tenth of the timeout) and ends it there."""
    (plug,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    reader = NativeReader(make_config(simulator.config_dict(), poll={"timeout": 10}))
    loop = asyncio.get_running_loop()
    try:
        await reader.poll_all()
        assert reader.store.get(plug.mac).up
        await plug.set_fault(Fault.OFFLINE)
        started = loop.time()
        await reader.poll_all()
        elapsed = loop.time() - started
    finally:
        await reader.close()
    snap = reader.store.get(plug.mac)
    assert (snap.status, snap.detail) == (DeviceStatus.OFFLINE, "connection refused")
    assert elapsed < 3, elapsed
