"""Host names where users write them (DHCP reservations, ``plug-tv.lan``): ``native.host`` and
discovery targets are resolved, a name that does not resolve is one line, never the end of the
reader. No query leaves the machine: ``localhost`` comes from /etc/hosts, and the one name that
must not resolve is failed by the event loop's resolver as a DNS server would."""

from __future__ import annotations

import asyncio
import asyncio.base_events
import logging
import socket

import pytest

from harness.wait import wait_for
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import PlugOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
UNRESOLVABLE = "plug-tv.lan"


@pytest.fixture(autouse=True)
def no_such_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """UNRESOLVABLE fails as an unknown name does (EAI_NONAME), without asking any server."""
    real = asyncio.base_events.BaseEventLoop.getaddrinfo

    async def getaddrinfo(self, host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == UNRESOLVABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(self, host, *args, **kwargs)

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "getaddrinfo", getaddrinfo)


async def test_names_for_hosts_and_discovery_targets(
    simulator, caplog: pytest.LogCaptureFixture
) -> None:
    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"])])
    await plug.move_to("127.0.0.1")  # where localhost resolves
    data = simulator.config_dict()
    data["devices"][0]["native"] = {"host": "localhost", "port": plug.port}
    data["discovery"] = {"targets": ["localhost", UNRESOLVABLE], "interval": 1}
    reader = NativeReader(make_config(data))
    with caplog.at_level(logging.WARNING, logger="otelpower.readers.native"):
        task = asyncio.create_task(reader.run())
        try:
            await wait_for(lambda: reader.store.get(plug.mac).up, timeout=20)
            # discovery rounds keep going (interval 1 s): the reader lives on
            await wait_for(lambda: len(_unresolved(caplog)) >= 1, timeout=20)
            await asyncio.sleep(0)  # no wall-clock margin: only that it is still running
            assert not task.done(), task
            assert reader.store.get(plug.mac).up
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert len(_unresolved(caplog)) == 1, "said once, not every round"


async def test_a_plug_name_that_does_not_resolve_is_offline_in_words(simulator) -> None:
    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"])])
    data = simulator.config_dict()
    data["devices"][0]["native"] = {"host": UNRESOLVABLE}
    data["discovery"] = {"enabled": False}
    reader = NativeReader(make_config(data))
    await reader.poll_all()
    snap = reader.store.get(plug.mac)
    assert snap.status == "offline" and "does not resolve" in snap.detail, snap.detail
    await reader.close()


def _unresolved(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "does not resolve" in r.getMessage()]


def test_check_refuses_what_is_not_a_host() -> None:
    from otelpower.config import ConfigError

    device = {"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s"}
    bad = {
        "devices": [{**device, "native": {"host": "plug tv"}}],
        "discovery": {"targets": ["a..b"]},
    }
    with pytest.raises(ConfigError) as info:
        make_config(bad)
    text = str(info.value)
    assert "devices[0].native.host" in text and "'plug tv' is neither" in text
    assert "discovery.targets[0]" in text and "'a..b' is neither" in text
    good = {"devices": [{**device, "native": {"host": "plug-tv.lan"}}]}
    assert make_config({**good, "discovery": {"targets": ["192.168.1.255", "fe80::1"]}})
