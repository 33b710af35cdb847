"""A discovery flood: every probe answered by thousands of legacy replies, each from its own
(spoofed) loopback address with its own MAC. Adoption is capped and said once, the listed
plugs stay fresh, adopted "plugs" that never answered are forgotten without a series or a
log line, and otelpower stops sending to the addresses they came from."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.wait import wait_for
from otelpower.readers.native.reader import NativeReader
from otelpower.readers.native.settings import MAX_ADOPTED
from otelpower.sim import EmulatedPlug, PlugOptions, builtin_profiles
from otelpower.sim.xor import xor_decrypt, xor_encrypt
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
ENV = {"KASA_USERNAME": "owner@example.com", "KASA_PASSWORD": "right"}
REPLIES = 2000  # per probe, each from its own address
WATCHED = 16  # spoofed addresses that count the discovery probes otelpower sends them
INTERVAL, TIMEOUT = 1.0, 2.0


class _Flooder(asyncio.DatagramProtocol):
    """Answers each legacy discovery probe with REPLIES spoofed replies."""

    def __init__(self, template: dict, sources: list[str]) -> None:
        self.template = template
        self.sources = sources
        self.on = True
        self.probes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            json.loads(xor_decrypt(data))
        except ValueError:
            return
        self.probes += 1
        if not self.on:
            return
        for n, source in enumerate(self.sources):
            mac = f"02:fa:{self.probes % 256:02x}:{n >> 8:02x}:{n & 255:02x}:01"
            info = {**self.template, "mac": mac.upper(), "deviceId": f"FLOOD{n}"}
            packet = xor_encrypt(json.dumps({"system": {"get_sysinfo": info}}).encode())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((source, 9999))  # python-kasa takes legacy replies from 9999
                sock.sendto(packet, addr)


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.count += 1


@contextmanager
def _no_cap_warning_twice(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    capped = [r for r in caplog.records if "max_adopted" in r.getMessage()]
    found = [r for r in caplog.records if "not in the config" in r.getMessage()]
    assert len(capped) == 1, (len(found), [r.getMessage() for r in capped])


async def test_a_discovery_flood_is_bounded(simulator, caplog) -> None:
    klap, xor = await simulator.start(
        [
            PlugOptions(PROFILES["p110_klap"], username=ENV["KASA_USERNAME"], password="right"),
            PlugOptions(PROFILES["kp115_xor"]),
        ]
    )
    block = random.SystemRandom().randint(1, 254)  # 127.<block>.x.y: the spoofed sources
    sources = [f"127.{block}.{1 + n // 250}.{1 + n % 250}" for n in range(REPLIES)]
    loop = asyncio.get_running_loop()
    flood_host = f"127.{block}.0.1"
    transport, flooder = await loop.create_datagram_endpoint(
        lambda: _Flooder(xor.device.sysinfo(), sources), local_addr=(flood_host, 9999)
    )
    watchers = []
    for source in sources[:WATCHED]:
        # a probe goes to both ports; 9999 is the flood's source port
        watchers.append(await loop.create_datagram_endpoint(_Counter, local_addr=(source, 20002)))
    data = simulator.config_dict()
    data["discovery"] = {"targets": [flood_host], "interval": 1, "adopt": True}
    config = make_config(data, ENV, poll={"interval": INTERVAL, "timeout": TIMEOUT})
    reader = NativeReader(config)
    caplog.set_level(logging.INFO, logger="otelpower")
    task = asyncio.create_task(reader.run())
    most = 0
    stalest = 0.0
    try:
        with _no_cap_warning_twice(caplog):
            await wait_for(lambda: all(_up(reader, p) for p in (klap, xor)), timeout=20)
            # five discovery rounds of flood
            await wait_for(lambda: flooder.probes >= 5, timeout=60)
            until = loop.time() + 10
            while loop.time() < until:  # keep sampling while the flood goes on
                most = max(most, _adopted(reader))
                stalest = max(stalest, *(_age(reader, p) for p in (klap, xor)))
                await asyncio.sleep(0.1)
            most = max(most, _adopted(reader))
            flooder.on = False
            # nothing there ever answered: every adopted "plug" is forgotten
            await wait_for(lambda: _adopted(reader) == 0, timeout=60, what="flood forgotten")
            sent = sum(w[1].count for w in watchers)
            assert sent > 0, "the adopted ones were tried (else the next check proves nothing)"
            rounds = flooder.probes
            await wait_for(lambda: flooder.probes >= rounds + 2, timeout=30)  # 2 more rounds
            assert sum(w[1].count for w in watchers) == sent, "still sending to spoofed ones"
            assert all(_up(reader, p) for p in (klap, xor))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        transport.close()
        for w in watchers:
            w[0].close()
    print(f"flood: most adopted {most}, listed plugs' oldest reading {stalest:.2f}s")
    assert 0 < most <= MAX_ADOPTED, most
    assert stalest <= INTERVAL + TIMEOUT, stalest  # the listed plugs were never held up
    flood_macs = [s for s in reader.store.all() if s.device_id.startswith("02:fa:")]
    assert not flood_macs, "a flood MAC was exported"
    lines = [r for r in caplog.records if r.name.startswith("otelpower")]
    # adoption lines (at most the cap per round) and the cap said once; no per-plug states
    assert len(lines) <= 2 + MAX_ADOPTED * (flooder.probes + 1), len(lines)
    assert not [r for r in lines if "02:fa:" in r.getMessage() and r.levelno > logging.INFO]


def _adopted(reader: NativeReader) -> int:
    return sum(1 for p in reader.devices if p.adopted)


def _up(reader: NativeReader, plug: EmulatedPlug) -> bool:
    snap = reader.store.get(plug.mac)
    return snap is not None and snap.up


def _age(reader: NativeReader, plug: EmulatedPlug) -> float:
    snap = reader.store.get(plug.mac)
    return time.time() - snap.updated_at if snap is not None else 0.0


async def test_sockets_stay_within_the_budget(simulator, monkeypatch) -> None:
    """More plugs than the descriptor budget allows sockets: polls wait for one, links keep
    no idle connection (XOR's stays open otherwise), and every plug is read."""
    from otelpower.core import fds

    budget = 8
    monkeypatch.setattr(fds, "socket_budget", lambda: budget)
    plugs = await simulator.start(
        [PlugOptions(PROFILES["kp115_xor" if n % 2 else "p110_klap"]) for n in range(24)]
    )
    data = simulator.config_dict()
    data["discovery"] = {"enabled": False}
    reader = NativeReader(make_config(data, poll={"interval": 0.5, "timeout": 4}))
    ends = {(p.host, p.port) for p in plugs}
    most = 0
    task = asyncio.create_task(reader.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not all(_up(reader, p) for p in plugs):
            most = max(most, _client_sockets(ends))
            assert asyncio.get_running_loop().time() < deadline, "not every plug was read"
            await asyncio.sleep(0.01)
        for _ in range(100):  # two more intervals
            most = max(most, _client_sockets(ends))
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    print(f"sockets to the plugs at most {most} (budget {budget}, {len(plugs)} plugs)")
    assert most <= budget, most


def _client_sockets(ends: set[tuple[str, int]]) -> int:
    """TCP sockets to one of ``ends`` that hold a descriptor (an inode: not TIME_WAIT or
    orphaned after close)."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            rem, state, inode = fields[2], fields[3], fields[9]
            if state == "0A" or inode == "0":  # listening, or no descriptor left
                continue
            ip_hex, port_hex = rem.split(":")
            ip = socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1])
            count += (ip, int(port_hex, 16)) in ends
    return count
