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
from kasa.exceptions import KasaException, UnsupportedDeviceError

from otelpower.config import Config, DeviceConfig
from otelpower.core.model import DeviceStatus, Reading, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader
from otelpower.readers.native import discovery as kasa_discovery
from otelpower.readers.native import settings
from otelpower.readers.native.errors import NotFound, WrongDevice, classify
from otelpower.readers.native.spec import SPEC
from otelpower.readers.native.values import device_info, device_mac, device_readings

log = logging.getLogger(__name__)


@dataclass
class _Plug:
    cfg: DeviceConfig
    host: str | None
    port: int | None
    device: Device | None = None
    connection: DeviceConnectionParameters | None = None
    failures: int = 0
    info: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class NativeReader(Reader):
    def __init__(
        self,
        config: Config,
        store: SnapshotStore | None = None,
        *,
        recorder: PollRecorder | None = None,
        devices: tuple[DeviceConfig, ...] | None = None,
    ) -> None:
        super().__init__(config, SPEC, store=store, recorder=recorder)
        creds = settings.credentials(config)
        self._credentials = Credentials(creds.username, creds.password) if creds.present else None
        self.discovery = settings.discovery(config)
        self._sem = asyncio.Semaphore(config.concurrency)
        self._discovery_wanted = asyncio.Event()
        self._plugs = []
        for d in config.owned_devices() if devices is None else devices:
            target = settings.target(d) or settings.NativeTarget()
            self._plugs.append(_Plug(d, target.host, target.port))
        for plug in self._plugs:
            self._publish(plug, DeviceStatus.PENDING)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every plug until cancelled; closes every connection on the way out."""
        try:
            async with asyncio.TaskGroup() as tg:
                for plug in self._plugs:
                    tg.create_task(self._plug_loop(plug), name=f"poll {plug.cfg.device_id}")
                if self.discovery.enabled:
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
                async with asyncio.timeout(self.discovery.interval):
                    await asyncio.sleep(min_gap)
                    await self._discovery_wanted.wait()
            self._discovery_wanted.clear()

    async def _discover_once(self) -> None:
        hosts = [p.host for p in self._plugs if p.host]
        found = await kasa_discovery.probe(
            [*self.discovery.targets, *hosts],
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
                        raise WrongDevice(f"{plug.host} answers as {mac}")
            except Exception as exc:  # every failure becomes a per-device status, never a crash
                await self._fail(plug, exc)
            else:
                plug.failures = 0
                plug.info = info
                self._publish(plug, DeviceStatus.OK, readings=readings)
                if any(d.reason == "unreadable" for r in readings for d in r.dropped):
                    # python-kasa backs off a failed module and disables it after 10 errors:
                    # a fresh Device next poll reads it again as soon as the plug recovers
                    await self._drop(plug)
            self.publisher.polled(
                plug.cfg.device_id,
                plug.cfg.device,
                loop.time() - started,
                self.publisher.status(plug.cfg.device_id),
            )

    async def _connected(self, plug: _Plug) -> Device:
        """The plug's Device, updated: reuse it, reconnect it, or discover it first."""
        if plug.device is not None:
            await plug.device.update()
            return plug.device
        if plug.host is None:
            raise NotFound("not found by discovery yet")
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
                raise NotFound(f"no discovery reply and no transport answered at {host}") from None
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
        if status is DeviceStatus.UNSUPPORTED or isinstance(exc, WrongDevice):
            plug.connection = None  # re-learn the transport next time (firmware may change)
        plug.failures += 1
        await self._drop(plug)
        self._publish(plug, status, detail=detail)
        if status in (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT) and self.discovery.enabled:
            self._discovery_wanted.set()

    def _publish(
        self,
        plug: _Plug,
        status: DeviceStatus,
        *,
        readings: tuple[Reading, ...] = (),
        detail: str = "",
    ) -> None:
        self.publisher.publish(
            plug.cfg.device_id,
            plug.cfg.labels(self.config.house),
            status,
            who=f"{plug.cfg.device} ({plug.cfg.device_id}, {plug.host or 'no address'})",
            info=plug.info,
            readings=readings,
            detail=detail,
            up_note=plug.info.get("transport", "?"),
        )
