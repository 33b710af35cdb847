"""A virtual Matter plug: matter.js (``matter_plug/plug.mjs``) fed with readings by this process.

The Node process is a commissionable Matter device (OnOff plug-in unit + electrical sensor with
ElectricalPowerMeasurement / ElectricalEnergyMeasurement). It reads JSON lines with the current
``Sample`` on stdin and reports relay switches made by a controller as JSON lines on stdout.
Its Node dependencies come from ``make setup`` (``npm ci`` in ``matter_plug/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from otelpower.sim.process import terminate

from .loadcurve import Sample

if TYPE_CHECKING:
    from .server import EmulatedPlug

log = logging.getLogger(__name__)

PLUG_DIR = Path(__file__).resolve().parent / "matter_plug"
PLUG_SCRIPT = PLUG_DIR / "plug.mjs"
PAA_SCRIPT = PLUG_DIR / "export-paa.mjs"
FEED_INTERVAL_S = 0.5
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0

# A reading: a Sample, or a mapping with the same keys (values may be None -> attribute null).
Reading = Sample | Mapping[str, Any]
SampleSource = Callable[[], Reading]


class MatterBedError(RuntimeError):
    """The Matter test bed is missing a piece or a process misbehaved."""


def ensure_node_modules() -> str:
    """Path of ``node``; raise with a hint when Node or ``matter_plug/node_modules`` is missing."""
    node = shutil.which("node")
    if node is None:
        raise MatterBedError(
            "node (Node.js >= 20.19) is not on PATH; install it, then run `make matter-deps`"
        )
    if not (PLUG_DIR / "node_modules" / "@matter" / "main" / "package.json").is_file():
        raise MatterBedError(
            f"{PLUG_DIR / 'node_modules'} is missing: run `make matter-deps`"
            f" (or `npm ci` in {PLUG_DIR})"
        )
    return node


def export_test_paa(dest_dir: Path) -> Path:
    """Write the Matter Test PAA certificate (DER) and an empty ``.version`` into ``dest_dir``.

    The certificate comes from the installed ``@matter/protocol`` (what matter.js test devices
    chain to); the empty ``.version`` stops python-matter-server's certificate download.
    Returns the certificate's path.
    """
    node = ensure_node_modules()
    out = subprocess.run(
        [node, str(PAA_SCRIPT), str(Path(dest_dir).resolve())],
        cwd=PLUG_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise MatterBedError(f"export-paa.mjs failed: {out.stderr.strip()}")
    return Path(out.stdout.strip())


def reading_json(reading: Reading) -> dict[str, Any]:
    """The stdin line for ``reading``: power_w, voltage_v, current_a, energy_wh, on."""
    data: Mapping[str, Any] = (
        asdict(reading) if is_dataclass(reading) and not isinstance(reading, type) else reading
    )  # type: ignore[assignment]
    out: dict[str, Any] = {}
    for key in ("power_w", "voltage_v", "current_a", "energy_wh"):
        if key in data:
            value = data[key]
            out[key] = None if value is None or not math.isfinite(value) else float(value)
    if data.get("on") is not None:
        out["on"] = bool(data["on"])
    return out


def mirror_sample(emulated_plug: EmulatedPlug) -> Callable[[], Sample]:
    """A sample source reading what an emulated native plug's meter(s) read right now.

    Strips are summed like ``EmulatedPlug.readings()`` does (relay on if any outlet is on).
    """

    def sample() -> Sample:
        r = emulated_plug.readings()
        return Sample(
            power_w=float(r["power_w"]),
            voltage_v=float(r["voltage_v"]),
            current_a=float(r["current_a"]),
            energy_wh=float(r["energy_total_kwh"]) * 1000.0,
            on=bool(r["relay_on"]),
        )

    return sample


def mirror_relay(emulated_plug: EmulatedPlug) -> Callable[[bool], None]:
    """An ``on_relay`` callback that switches every outlet of an emulated native plug."""

    def on_relay(on: bool) -> None:
        for outlet in emulated_plug.device.outlets:
            outlet.meter.set_on(on)

    return on_relay


def child_prefix(netns: str | None = None) -> list[str]:
    """Command prefix: run in network namespace ``netns``; die with us (setpriv --pdeathsig).

    The plug also exits when its stdin closes; the death signal covers a stuck process too.
    """
    prefix = ["ip", "netns", "exec", netns] if netns else []
    setpriv = shutil.which("setpriv")
    if setpriv and os.uname().sysname == "Linux":
        prefix += [setpriv, "--pdeathsig", "TERM", "--"]
    return prefix


class VirtualMatterPlug:
    """One matter.js plug process, fed by ``sample()`` every 0.5 s.

    ``storage_dir`` keeps the node's fabric, so a restarted plug is the same Matter node.
    The process's stderr (matter.js log) goes to ``storage_dir / "plug.log"``.
    """

    def __init__(
        self,
        *,
        mac: str,
        sample: SampleSource,
        storage_dir: Path,
        port: int = 5540,
        passcode: int = 20202021,
        discriminator: int = 3840,
        serial: str | None = None,
        name: str = "P110M",
        netns: str | None = None,
        on_relay: Callable[[bool], None] | None = None,
        listen_ipv6: str | None = None,
        interface: str | None = None,
        layout: str = "separate",
        vendor_name: str = "TP-Link",
        software_version: str = "1.0.0",
        log_level: str = "warn",
        feed_interval: float = FEED_INTERVAL_S,
    ) -> None:
        self.mac = mac.lower()
        self.sample = sample
        self.storage_dir = Path(storage_dir)
        self.port = port
        self.passcode = passcode
        self.discriminator = discriminator
        self.serial = serial
        self.name = name
        self.netns = netns
        self.on_relay = on_relay
        self.listen_ipv6 = listen_ipv6
        self.interface = interface
        self.layout = layout
        self.vendor_name = vendor_name
        self.software_version = software_version
        self.log_level = log_level
        self.feed_interval = feed_interval
        self.commissioned = False
        self.ready_info: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []  # every JSON line the plug printed
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<VirtualMatterPlug {self.mac} port {self.port} {state}>"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        return self.storage_dir / "plug.log"

    def command(self) -> list[str]:
        """The command line that starts the plug."""
        node = ensure_node_modules()
        cmd = [
            *child_prefix(self.netns),
            node,
            str(PLUG_SCRIPT),
            "--mac",
            self.mac,
            "--port",
            str(self.port),
            "--passcode",
            str(self.passcode),
            "--discriminator",
            str(self.discriminator),
            "--storage",
            str(self.storage_dir),
            "--name",
            self.name,
            "--vendor-name",
            self.vendor_name,
            "--software-version",
            self.software_version,
            "--layout",
            self.layout,
            "--log-level",
            self.log_level,
        ]
        if self.serial:
            cmd += ["--serial", self.serial]
        if self.listen_ipv6:
            cmd += ["--listen-ipv6", self.listen_ipv6]
        if self.interface:
            cmd += ["--interface", self.interface]
        return cmd

    async def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start the process, wait for its ready line, then feed readings every 0.5 s."""
        if self.running:
            return
        cmd = self.command()
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        self._log.flush()
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=PLUG_DIR,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self._tasks = [
            loop.create_task(self._read_stdout(self._proc), name=f"matter-plug-out-{self.mac}"),
            loop.create_task(self._feed(self._proc), name=f"matter-plug-feed-{self.mac}"),
        ]
        try:
            async with asyncio.timeout(timeout):
                info = await self._ready
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise MatterBedError(
                    f"virtual plug {self.mac} not ready within {timeout}s; see {self.log_path}"
                ) from None
            raise
        self.ready_info = info
        self.commissioned = bool(info.get("commissioned"))

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (the node closes cleanly), SIGKILL after ``timeout``; returns the exit code."""
        proc, self._proc = self._proc, None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            if task.get_name().startswith("matter-plug-feed"):
                task.cancel()
        code = None
        if proc is not None:
            code = await terminate(proc, timeout, f"virtual plug {self.mac}")
            if proc.stdin is not None:
                proc.stdin.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    async def kill(self) -> None:
        """SIGKILL without a clean shutdown (the controller only notices after its timeouts)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        await self.stop()

    async def restart(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Stop and start again with the same storage (same fabric, same node id)."""
        await self.stop()
        await self.start(timeout)

    def feed_now(self) -> None:
        """Send the current reading at once instead of at the next 0.5 s tick."""
        self._wake.set()

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait until the process ends by itself (e.g. stdin closed)."""
        if self._proc is None:
            return None
        async with asyncio.timeout(timeout):
            return await self._proc.wait()

    # -- internals ---------------------------------------------------------------------------

    async def _feed(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None
        last_error = None
        while proc.returncode is None:
            try:
                line = json.dumps(reading_json(self.sample())) + "\n"
            except Exception as exc:  # a broken source must not kill the feeder
                if repr(exc) != last_error:
                    log.exception("virtual plug %s: sample() failed", self.mac)
                    last_error = repr(exc)
            else:
                try:
                    proc.stdin.write(line.encode())
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.feed_interval):
                    await self._wake.wait()

    async def _read_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                log.debug("virtual plug %s: %s", self.mac, line.decode(errors="replace").rstrip())
                continue
            if not isinstance(event, dict):
                continue
            self.events.append(event)
            kind = event.get("event")
            if kind == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(event)
            elif kind == "commissioned":
                self.commissioned = True
            elif kind == "decommissioned":
                self.commissioned = False
            elif kind == "onoff" and self.on_relay is not None:
                try:
                    self.on_relay(bool(event["on"]))
                except Exception:
                    log.exception("virtual plug %s: on_relay callback failed", self.mac)
                self.feed_now()
        if self._ready is not None and not self._ready.done():
            code = await proc.wait()
            self._ready.set_exception(
                MatterBedError(
                    f"virtual plug {self.mac} exited with {code} before it was ready; "
                    f"see {self.log_path}"
                )
            )


class PlugNetwork:
    """Network namespaces for several virtual plugs at once (root / CAP_NET_ADMIN only).

    CHIP commissions by IP on port 5540 only, so each plug needs its own address. This makes a
    bridge in the current namespace (``fdXX::1/64``) and per plug a namespace whose ``eth0``
    (a veth on the bridge, carrying the plug's MAC) has ``fdXX::N/64``. mDNS works across the
    bridge, so the server (in the current namespace) finds the plugs operationally too.
    Create it before starting the Matter server, so the server's mDNS sees the bridge.
    """

    def __init__(self, tag: str | None = None) -> None:
        tag = tag or f"{os.getpid() % 100000}"
        self.tag = tag
        self.bridge = f"otp{tag}br"
        self.prefix = f"fd5a:11ce:{int(tag) % 0xFFFF:x}:1"
        self.host_ip = f"{self.prefix}::1"
        self.namespaces: dict[str, str] = {}  # netns -> plug address
        self._bridge_made = False

    @staticmethod
    def available() -> bool:
        """Whether we may create namespaces here (root with ``ip``)."""
        return os.geteuid() == 0 and shutil.which("ip") is not None

    async def _ip(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise MatterBedError(f"ip {' '.join(args)}: {err.decode().strip()}")

    async def setup(self) -> None:
        """Create the bridge (idempotent)."""
        if self._bridge_made:
            return
        # no multicast snooping: mDNS goes to every port of the bridge
        await self._ip("link", "add", self.bridge, "type", "bridge", "mcast_snooping", "0")
        self._bridge_made = True
        await self._ip("addr", "add", f"{self.host_ip}/64", "dev", self.bridge, "nodad")
        await self._ip("link", "set", self.bridge, "up")

    async def add(self, index: int, mac: str) -> tuple[str, str]:
        """A namespace for plug ``index`` (2..9999) with ``mac``; returns (netns, address)."""
        await self.setup()
        netns = f"otp{self.tag}-{index}"
        veth = f"otp{self.tag}v{index}"
        address = f"{self.prefix}::{index:x}"
        await self._ip("netns", "add", netns)
        self.namespaces[netns] = address
        await self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        await self._ip("link", "set", veth, "master", self.bridge, "up")
        await self._ip("-n", netns, "link", "set", "lo", "up")
        await self._ip("-n", netns, "link", "set", "eth0", "address", mac)
        await self._ip("-n", netns, "addr", "add", f"{address}/64", "dev", "eth0", "nodad")
        await self._ip("-n", netns, "link", "set", "eth0", "up")
        return netns, address

    async def teardown(self) -> None:
        """Delete the namespaces (their veths go with them) and the bridge."""
        for netns in list(self.namespaces):
            with contextlib.suppress(MatterBedError):
                await self._ip("netns", "del", netns)
            del self.namespaces[netns]
        if self._bridge_made:
            with contextlib.suppress(MatterBedError):
                await self._ip("link", "del", self.bridge)
            self._bridge_made = False
