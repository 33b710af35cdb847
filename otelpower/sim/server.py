"""Public API: emulated plugs on loopback, their sockets, faults and the generated config."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otelpower.config import normalize_mac

from .aes import AesServer
from .clock import PlugClock
from .device import DeviceModel
from .discovery import LEGACY_PORT, DiscoveryResponder
from .faults import OVERSIZE_BYTES, Fault
from .klap import KlapServer
from .profile import TRANSPORTS, Profile, load_profile
from .shelly import ShellyDevice, ShellyFault, ShellyOptions
from .tpap import TpapOptions, TpapServer
from .xor import XorServer

__all__ = [
    "EmulatedPlug",
    "Fault",
    "PlugClock",
    "PlugOptions",
    "ShellyDevice",
    "ShellyFault",
    "ShellyOptions",
    "Simulator",
    "TpapOptions",
    "builtin_profiles",
]

_LOG = logging.getLogger(__name__)
PROFILE_DIR = Path(__file__).parent / "profiles"
DEFAULT_MAC_PREFIX = "48:22:54"
SHELLY_MAC_PREFIX = "08:3a:f2"  # an Espressif OUI, as Shelly Gen2+ devices have


def builtin_profiles() -> list[Path]:
    """The profiles shipped with the package, sorted by name."""
    return sorted(PROFILE_DIR.glob("*.json"))


@dataclass
class PlugOptions:
    """How to emulate one plug."""

    profile: Path  # JSON dump
    username: str = ""  # owner credentials; blank owner accepts every client
    password: str = ""
    latency_s: float = 0.0  # added before every reply
    static: bool = False  # serve the dump's own readings unchanged
    host: str | None = None  # 127.x.y.z; None = allocate a free one
    port: int | None = None  # TCP (XOR) / HTTP (KLAP, AES) port; None = a free port
    mac: str | None = None  # override MAC
    transport: str | None = None  # serve a SMART dump over another transport ("TPAP")
    tpap: TpapOptions | None = None  # TPAP variant and lock-out (with transport "TPAP")
    discoverable: bool = True  # answer UDP discovery (off: a plug on another VLAN)
    utc_offset_min: int | None = None  # the plug's time zone; None: the dump's (SMART) or UTC


class EmulatedPlug:
    """One plug: its own loopback address, a TCP/HTTP port and its UDP discovery sockets."""

    def __init__(
        self,
        options: PlugOptions,
        profile: Profile,
        *,
        host: str,
        mac: str,
        index: int,
        clock: PlugClock | None = None,
    ) -> None:
        self.options = options
        self.profile = profile
        self.index = index
        self.host = host
        self.port = options.port or 0
        self.mac = mac
        self.model = profile.model
        self.transport = options.transport or profile.transport
        self.username = options.username
        self.password = options.password
        self.latency_s = options.latency_s
        self.slow_s = 30.0
        self.oversize_bytes = OVERSIZE_BYTES  # the padding Fault.OVERSIZED adds to a reply
        self.logins = 0
        self._fault = Fault.NONE
        self.device = DeviceModel(
            profile,
            mac=mac,
            host=host,
            index=index,
            static=options.static,
            username=options.username,
            clock=(clock or PlugClock()).now,
            utc_offset_s=None if options.utc_offset_min is None else options.utc_offset_min * 60,
        )
        self.alias = self.device.alias
        self.children: list[dict[str, str]] = [
            {"alias": o.alias, "id": o.child_id or ""}
            for o in self.device.outlets
            if self.device.is_strip
        ]
        self._server = self._make_server(self.transport)
        self._discovery = DiscoveryResponder(self)
        self._listening = False
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def _make_server(self, transport: str) -> KlapServer | AesServer | XorServer | TpapServer:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}; one of {', '.join(TRANSPORTS)}")
        needs = {"XOR": "iot", "TPAP": "smart", "AES": "smart", "KLAP v2": "smart"}
        if needs.get(transport, self.profile.family) != self.profile.family:
            family = self.profile.family
            raise ValueError(f"{self.profile.path.name}: a {family} dump over {transport}")
        self.device.transport = transport
        if transport == "TPAP":
            return TpapServer(self, self.options.tpap)
        if transport == "XOR":
            return XorServer(self)
        if transport == "AES":
            return AesServer(self)
        return KlapServer(self, 1 if transport == "KLAP v1" else 2)

    @property
    def server(self) -> KlapServer | AesServer | XorServer | TpapServer:
        """The transport's server (``TpapServer`` has the lock-out state and sessions)."""
        return self._server

    async def switch_transport(self, transport: str) -> None:
        """A firmware update or the app's Third-Party Compatibility toggle: same address,
        same port, another transport (sessions are lost)."""
        async with self._lock:
            await self._close()
            self._server = self._make_server(transport)
            self.transport = transport
            if self._fault is not Fault.OFFLINE:
                await self._open()

    def __repr__(self) -> str:
        return f"<EmulatedPlug {self.model} {self.transport} {self.host}:{self.port} {self.mac}>"

    # -- behaviour consulted by the transports ----------------------------------------

    def reply_delay(self) -> float:
        """Seconds to wait before the next reply."""
        return self.latency_s + (self.slow_s if self._fault is Fault.SLOW else 0.0)

    @property
    def fault(self) -> Fault:
        return self._fault

    @fault.setter
    def fault(self, value: Fault | str) -> None:
        """Applies to the next request at once; sockets close/reopen in the background.

        Use ``await plug.set_fault(...)`` to also wait until the sockets follow.
        """
        self._fault = Fault(value)
        task = asyncio.get_running_loop().create_task(self._sync_sockets())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def set_fault(self, value: Fault | str) -> None:
        """Set the fault and wait until the sockets match it."""
        self._fault = Fault(value)
        await self._sync_sockets()

    async def settle(self) -> None:
        """Wait for background socket changes started by the ``fault`` setter."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def set_credentials(self, username: str, password: str) -> None:
        """Change the owner account (takes effect at the next handshake / login)."""
        self.username = username
        self.password = password
        self.device.username = username

    def drop_sessions(self) -> None:
        """Reboot: forget KLAP/AES sessions and drop open XOR connections."""
        self._server.drop_sessions()

    def erase_energy(self) -> None:
        """Erase the meter's statistics (a real counter reset, as the Kasa app's "erase")."""
        self.device.erase_energy()

    def readings(self) -> dict[str, Any]:
        """Current truth: power_w, voltage_v, current_a, energy_total_kwh, relay_on (+outlets)."""
        return self.device.readings()

    async def move_to(self, host: str) -> None:
        """Change IP: rebind every socket on ``host`` with the same port."""
        async with self._lock:
            await self._close()
            self.host = host
            self.device.host = host
            if self._fault is not Fault.OFFLINE:
                await self._open()

    # -- socket lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            await self._open()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._lock:
            await self._close()

    async def _sync_sockets(self) -> None:
        async with self._lock:
            want = self._fault is not Fault.OFFLINE
            if want and not self._listening:
                await self._open()
            elif not want and self._listening:
                await self._close()

    async def _open(self) -> None:
        try:
            self.port = await self._server.start(self.host, self.port)
            if isinstance(self._server, TpapServer):
                self.device.tpap = self._server.announce()
            legacy: list[int] = []
            if isinstance(self._server, XorServer):
                # discover_single(host, port=P) sends the legacy probe to UDP P.
                legacy.append(self.port)
                if self.port != LEGACY_PORT:
                    legacy.append(LEGACY_PORT)
                    # Also serve TCP 9999 so discovery without a port can connect.
                    with contextlib.suppress(OSError):
                        await self._server.start(self.host, LEGACY_PORT)
            if self.options.discoverable:
                await self._discovery.start(
                    self.host,
                    legacy,
                    tdp=not isinstance(self._server, XorServer),
                    http_port=self.port,
                )
        except BaseException:
            await self._close()
            raise
        self._listening = True

    async def _close(self) -> None:
        self._listening = False
        await self._discovery.stop()
        await self._server.stop()


def _parse_block(base_host: str) -> tuple[int, int]:
    parts = base_host.split(".")
    if len(parts) < 3 or parts[0] != "127":
        raise ValueError(f"base_host must look like 127.A.B[.0], got {base_host!r}")
    return int(parts[1]), int(parts[2])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "plug"


class Simulator:
    """A set of emulated plugs in one 127.A.B.0/24 block."""

    def __init__(
        self,
        base_host: str | None = None,
        *,
        mac_prefix: str = DEFAULT_MAC_PREFIX,
        clock: PlugClock | None = None,
    ):
        if base_host:
            self._a, self._b = _parse_block(base_host)
        else:
            rng = random.SystemRandom()
            self._a, self._b = rng.randint(1, 254), rng.randint(0, 255)
        self.mac_prefix = mac_prefix.lower()
        self.clock = clock or PlugClock()  # the plugs' clock (tests move it across midnight)
        self.plugs: list[EmulatedPlug] = []
        self.shellies: list[ShellyDevice] = []  # Shelly Gen2+ devices (start_shelly)
        self._next_n = 1

    @property
    def block(self) -> str:
        return f"127.{self._a}.{self._b}"

    def _next_host(self) -> str:
        used = {p.host for p in self.plugs} | {d.host for d in self.shellies}
        while self._next_n < 255:
            host = f"{self.block}.{self._next_n}"
            self._next_n += 1
            if host not in used:
                return host
        raise RuntimeError(f"no free address left in {self.block}.0/24")

    def _mac_for(self, host: str, prefix: str | None = None) -> str:
        octets = [int(x) for x in host.split(".")[1:]]
        return normalize_mac((prefix or self.mac_prefix) + "".join(f":{o:02x}" for o in octets))

    async def start(self, options: list[PlugOptions]) -> list[EmulatedPlug]:
        """Start one plug per options entry; returns them in order."""
        started: list[EmulatedPlug] = []
        try:
            for opt in options:
                started.append(await self._start_one(opt))
        except BaseException:
            for plug in started:
                await plug.stop()
                self.plugs.remove(plug)
            raise
        return started

    async def _start_one(self, opt: PlugOptions) -> EmulatedPlug:
        profile = load_profile(opt.profile)
        for _attempt in range(16):
            host = opt.host or self._next_host()
            mac = normalize_mac(opt.mac) if opt.mac else self._mac_for(host)
            plug = EmulatedPlug(
                opt, profile, host=host, mac=mac, index=len(self.plugs) + 1, clock=self.clock
            )
            try:
                await plug.start()
            except OSError as ex:
                if opt.host or ex.errno != errno.EADDRINUSE:
                    raise
                continue  # that address is taken by someone else; try the next one
            self.plugs.append(plug)
            return plug
        raise RuntimeError(f"could not find a free loopback address in {self.block}.0/24")

    async def start_shelly(self, options: list[ShellyOptions]) -> list[ShellyDevice]:
        """Start one Shelly Gen2+ device per options entry (otelpower.sim.shelly), each on its
        own loopback address; returns them in order. ``config_dict()`` then lists them."""
        started: list[ShellyDevice] = []
        try:
            for opt in options:
                started.append(await self._start_shelly(opt))
        except BaseException:
            for dev in started:
                await dev.stop()
                self.shellies.remove(dev)
            raise
        return started

    async def _start_shelly(self, opt: ShellyOptions) -> ShellyDevice:
        for _attempt in range(16):
            host = opt.host or self._next_host()
            mac = normalize_mac(opt.mac) if opt.mac else self._mac_for(host, SHELLY_MAC_PREFIX)
            index = len(self.plugs) + len(self.shellies) + 1
            dev = ShellyDevice(opt, host=host, mac=mac, index=index, clock=self.clock)
            try:
                await dev.start()
            except OSError as ex:
                if opt.host or ex.errno != errno.EADDRINUSE:
                    raise
                continue
            self.shellies.append(dev)
            return dev
        raise RuntimeError(f"could not find a free loopback address in {self.block}.0/24")

    async def stop(self) -> None:
        """Close every socket and task of every plug."""
        plugs, self.plugs = self.plugs, []
        for plug in plugs:
            await plug.stop()
        shellies, self.shellies = self.shellies, []
        for dev in shellies:
            await dev.stop()

    def config_dict(self, house: str = "sim") -> dict[str, Any]:
        """otelpower configuration for exactly these plugs."""
        devices = []
        for n, plug in enumerate(self.plugs, start=1):
            name = plug.profile.alias or plug.profile.model_base
            devices.append(
                {
                    "device_id": plug.mac,
                    "room": "lab",
                    "shelf": "sim",
                    "device": f"{_slug(name)}-{n}",
                    "native": {
                        "host": plug.host,
                        "port": plug.port,
                        # AES sends the password to whatever answers: read only when pinned
                        **({"transport": "AES"} if plug.transport == "AES" else {}),
                    },
                }
            )
        # Shelly devices only when some were started: the config schema knows the `shelly`
        # section once the Shelly reader is registered
        for n, dev in enumerate(self.shellies, start=len(devices) + 1):
            devices.append(
                {
                    "device_id": dev.mac,
                    "room": "lab",
                    "shelf": "sim",
                    "device": f"{_slug(dev.spec.key)}-{n}",
                    "vendor": "shelly",
                    "shelly": {"host": f"{dev.host}:{dev.port}"},
                }
            )
        return {
            "house": house,
            "devices": devices,
            "discovery": {"targets": [p.host for p in self.plugs]},
        }

    async def __aenter__(self) -> Simulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
