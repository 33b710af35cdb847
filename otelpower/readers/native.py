"""Native reader: polls TP-Link plugs on the LAN with python-kasa (one Device per plug).

Coordinator pattern: one task per plug keeps a connected ``Device``, polls it on the interval
under a per-device deadline and a shared concurrency limit, and publishes a snapshot. A
failure publishes ``up=0`` at once (stale policy), drops the Device and retries with capped
exponential backoff. A discovery task follows plugs by MAC when their IP changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from kasa import Credentials, Device, Discover
from kasa.deviceconfig import DeviceConfig as KasaDeviceConfig
from kasa.deviceconfig import DeviceConnectionParameters
from kasa.exceptions import AuthenticationError, KasaException, UnsupportedDeviceError

from otelpower.config import Config, DeviceConfig
from otelpower.logthrottle import LogThrottle
from otelpower.metrics import NATIVE_QUANTITIES, Quantity
from otelpower.model import DeviceSnapshot, DeviceStatus, SnapshotStore
from otelpower.readers import kasa_discovery
from otelpower.readers.kasa_values import device_info, device_mac, device_readings
from otelpower.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

REMEDIES: dict[DeviceStatus, str] = {
    DeviceStatus.AUTH_FAILED: (
        "check KASA_USERNAME/KASA_PASSWORD: they must be the TP-Link account that owns the plug"
        " (a plug bound to another account needs that account)"
    ),
    DeviceStatus.UNSUPPORTED: (
        "this firmware speaks a transport python-kasa cannot (e.g. TPAP);"
        " read the plug over Matter instead (--protocol matter)"
    ),
    DeviceStatus.OFFLINE: "check that the plug is powered and on the network, and its host",
    DeviceStatus.TIMEOUT: "the plug did not answer in time; check Wi-Fi signal and poll.timeout",
    DeviceStatus.ERROR: "the plug answered something unexpected; see the detail",
}


class _NotFound(Exception):
    """The plug has no known address yet (no host configured, not seen by discovery)."""


class _WrongDevice(Exception):
    """The address answered, but with another MAC than the config's device_id."""


@dataclass
class _Plug:
    cfg: DeviceConfig
    host: str | None
    port: int | None
    device: Device | None = None
    connection: DeviceConnectionParameters | None = None
    failures: int = 0
    status: DeviceStatus = DeviceStatus.PENDING
    logged: DeviceStatus = DeviceStatus.PENDING  # the state the log last showed
    held: int = 0  # state changes not logged since (rate limit)
    info: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class NativeReader:
    vendor = "tplink"
    protocol = "native"
    quantities: tuple[Quantity, ...] = NATIVE_QUANTITIES

    def __init__(
        self,
        config: Config,
        store: SnapshotStore | None = None,
        *,
        devices: tuple[DeviceConfig, ...] | None = None,
    ) -> None:
        self.config = config
        self.store = store or SnapshotStore()
        self.self_metrics = SelfMetrics()  # replaced by the app's when metrics are on
        self.log_throttle = LogThrottle()
        creds = config.credentials
        self._credentials = Credentials(creds.username, creds.password) if creds.present else None
        self._sem = asyncio.Semaphore(config.concurrency)
        self._discovery_wanted = asyncio.Event()
        self._plugs = [
            _Plug(d, d.native.host if d.native else None, d.native.port if d.native else None)
            for d in (config.owned_devices() if devices is None else devices)
        ]
        for plug in self._plugs:
            self._publish(plug, DeviceStatus.PENDING)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every plug until cancelled; closes every connection on the way out."""
        try:
            async with asyncio.TaskGroup() as tg:
                for plug in self._plugs:
                    tg.create_task(self._plug_loop(plug), name=f"poll {plug.cfg.device_id}")
                if self.config.discovery_enabled:
                    tg.create_task(self._discovery_loop(), name="discovery")
        finally:
            await asyncio.shield(self.close())

    async def poll_all(self) -> None:
        """One poll of every plug, concurrently (for one-shot use and benchmarks)."""
        await asyncio.gather(*(self._poll(p) for p in self._plugs))

    async def close(self) -> None:
        await asyncio.gather(*(self._drop(p) for p in self._plugs))

    def _delay(self, plug: _Plug) -> float:
        interval = self.config.poll_interval
        if plug.failures == 0:
            return interval
        return min(interval * 2 ** (plug.failures - 1), max(interval, self.config.backoff_max))

    async def _plug_loop(self, plug: _Plug) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self._poll(plug)
            plug.wake.clear()
            remaining = self._delay(plug) - (loop.time() - started)
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await plug.wake.wait()

    async def _discovery_loop(self) -> None:
        """Probe now, then every discovery.interval, or sooner when a plug goes missing."""
        min_gap = max(self.config.poll_interval, 5.0)
        while True:
            await self._discover_once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.discovery_interval):
                    await asyncio.sleep(min_gap)
                    await self._discovery_wanted.wait()
            self._discovery_wanted.clear()

    async def _discover_once(self) -> None:
        hosts = [p.host for p in self._plugs if p.host]
        found = await kasa_discovery.probe(
            [*self.config.discovery_targets, *hosts],
            wait_s=min(3.0, self.config.poll_timeout),
        )
        for plug in self._plugs:
            seen = found.get(plug.cfg.device_id)
            if seen is None or seen.ip == plug.host:
                continue
            log.info(
                "%s (%s) found at %s (was %s)",
                plug.cfg.device,
                plug.cfg.device_id,
                seen.ip,
                plug.host or "unknown",
            )
            plug.host = seen.ip
            await self._drop(plug)
            plug.failures = 0
            plug.wake.set()

    # -- one poll ---------------------------------------------------------------------------

    async def _poll(self, plug: _Plug) -> None:
        loop = asyncio.get_running_loop()
        async with self._sem:
            started = loop.time()
            try:
                async with asyncio.timeout(self.config.poll_timeout):
                    dev = await self._connected(plug)
                    info, readings = device_info(dev), device_readings(dev)
                    mac = device_mac(dev)
                    if mac and mac != plug.cfg.device_id:
                        raise _WrongDevice(f"{plug.host} answers as {mac}")
            except Exception as exc:  # every failure becomes a per-device status, never a crash
                await self._fail(plug, exc)
            else:
                plug.failures = 0
                plug.info = info
                self._publish(plug, DeviceStatus.OK, readings=readings)
                self.self_metrics.dropped(
                    self.protocol, plug.cfg.device_id, plug.cfg.device, readings
                )
                if any(d.reason == "unreadable" for r in readings for d in r.dropped):
                    # python-kasa backs off a failed module and disables it after 10 errors:
                    # a fresh Device next poll reads it again as soon as the plug recovers
                    await self._drop(plug)
            self.self_metrics.poll(
                self.protocol,
                plug.cfg.device_id,
                plug.cfg.device,
                loop.time() - started,
                plug.status,
            )

    async def _connected(self, plug: _Plug) -> Device:
        """The plug's Device, updated: reuse it, reconnect it, or discover it first."""
        if plug.device is not None:
            await plug.device.update()
            return plug.device
        if plug.host is None:
            raise _NotFound("not found by discovery yet")
        timeout = max(1, round(self.config.poll_timeout / 2))
        if plug.connection is None:
            dev = await self._discover_host(plug.host, plug.port, timeout)
            plug.device = dev
            plug.connection = dev.config.connection_type
            await dev.update()
            return dev
        config = KasaDeviceConfig(
            host=plug.host,
            port_override=plug.port,
            credentials=self._credentials,
            timeout=timeout,
            connection_type=plug.connection,
        )
        plug.device = await Device.connect(config=config)  # connects and updates
        return plug.device

    async def _discover_host(self, host: str, port: int | None, wait_s: int) -> Device:
        """Learn the plug's transport: UDP discovery, else try every transport over TCP."""
        try:
            dev = await Discover.discover_single(
                host,
                port=port,
                credentials=self._credentials,
                timeout=wait_s,
                discovery_timeout=wait_s,
            )
        except TimeoutError as exc:
            if isinstance(exc, KasaException):
                raise
            dev = await Discover.try_connect_all(
                host, port=port, timeout=wait_s, credentials=self._credentials
            )
            if dev is None:
                raise _NotFound(f"no discovery reply and no transport answered at {host}") from None
        if dev is None:  # pragma: no cover - only with on_unsupported
            raise UnsupportedDeviceError("unsupported device")
        return dev

    async def _drop(self, plug: _Plug) -> None:
        dev, plug.device = plug.device, None
        if dev is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await dev.disconnect()

    async def _fail(self, plug: _Plug, exc: BaseException) -> None:
        status, detail = classify(exc, self.config.poll_timeout)
        if status is DeviceStatus.UNSUPPORTED or isinstance(exc, _WrongDevice):
            plug.connection = None  # re-learn the transport next time (firmware may change)
        plug.failures += 1
        await self._drop(plug)
        self._publish(plug, status, detail=detail)
        if status in (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT) and self.config.discovery_enabled:
            self._discovery_wanted.set()

    def _publish(
        self,
        plug: _Plug,
        status: DeviceStatus,
        *,
        readings: tuple = (),
        detail: str = "",
    ) -> None:
        previous, plug.status = plug.status, status
        labels = plug.cfg.labels(self.config.house)
        self.store.put(
            DeviceSnapshot(plug.cfg.device_id, labels, status, plug.info, readings, detail)
        )
        if status is not previous:
            plug.held += 1
        if status is plug.logged or not self.log_throttle.allow(plug.cfg.device_id):
            return
        plug.logged, held, plug.held = status, plug.held - 1, 0
        name = f"{plug.cfg.device} ({plug.cfg.device_id}, {plug.host or 'no address'})"
        if held > 0:
            name += f" [{held} state changes not logged: flapping]"
        if status is DeviceStatus.OK:
            log.info("%s: up (%s)", name, plug.info.get("transport", "?"))
        elif status is not DeviceStatus.PENDING:
            log.warning("%s: %s: %s; %s", name, status, detail, REMEDIES[status])


def classify(exc: BaseException, timeout: float) -> tuple[DeviceStatus, str]:
    """Map any poll failure to a status and a one-line detail (never with credentials)."""
    if isinstance(exc, AuthenticationError):
        return DeviceStatus.AUTH_FAILED, "authentication failed"
    if isinstance(exc, UnsupportedDeviceError):
        return DeviceStatus.UNSUPPORTED, _short(exc)
    if isinstance(exc, _NotFound):
        return DeviceStatus.OFFLINE, str(exc)
    if isinstance(exc, _WrongDevice):
        return DeviceStatus.ERROR, f"wrong device: {exc}"
    if isinstance(exc, TimeoutError):  # our deadline, or python-kasa's per-request timeout
        return DeviceStatus.TIMEOUT, f"no answer within {timeout:g}s"
    if isinstance(exc, OSError | KasaException) and _looks_offline(exc):
        return DeviceStatus.OFFLINE, _short(exc)
    return DeviceStatus.ERROR, _short(exc)


def _looks_offline(exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, OSError | TimeoutError):
            return True
        chain = chain.__cause__ or chain.__context__
    text = str(exc).lower()
    return any(s in text for s in ("connect", "refused", "unreachable", "timed out", "timeout"))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
