"""Native reader: polls TP-Link plugs on the LAN (one task and one link per plug).

Coordinator pattern: one task per plug keeps a logged-in link (python-kasa, or the ``tapo``
client for TPAP: see links.py), polls it on the interval under a per-device deadline and a
shared concurrency limit, and publishes a snapshot. A failure publishes ``up=0`` at once
(stale policy), drops the link and retries with capped exponential backoff; a rejected
login is a standing fault, retried once per ``AUTH_RETRY_S`` (plugs lock themselves after a
few failed logins). A discovery task follows plugs by MAC when their IP changes, and adopts
plugs the file does not list when it has no list (or ``discovery.adopt``): those are named by
their alias, in room and shelf "unassigned".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from otelpower.config import UNASSIGNED, Config, DeviceConfig
from otelpower.core.model import DeviceStatus, Reading, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader
from otelpower.readers.native import discovery as kasa_discovery
from otelpower.readers.native import settings
from otelpower.readers.native.errors import NotFound, WrongDevice, classify, socket_detail
from otelpower.readers.native.links import Clients, Link, Route, open_link
from otelpower.readers.native.spec import AUTH_RETRY_S, SPEC

log = logging.getLogger(__name__)


@dataclass
class _Plug:
    cfg: DeviceConfig
    host: str | None
    port: int | None
    link: Link | None = None
    route: Route | None = None  # how to log in again without discovery
    endpoint: tuple[str, int] | None = None  # host and port of the last link that worked
    failures: int = 0
    login_after: float = 0.0  # time.monotonic(): no login before it (the last was rejected)
    info: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.cfg.name(self.info.get("alias", ""))


async def _connect_refused(host: str, port: int) -> str | None:
    """Why a TCP connection to the plug is refused or unroutable, or None when it connects
    (or does not answer within a second: then the poll's own status stands)."""
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return None
    except OSError as exc:
        return socket_detail(exc) or "connection refused"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


class NativeReader(Reader):
    def __init__(
        self,
        config: Config,
        store: SnapshotStore | None = None,
        *,
        recorder: PollRecorder | None = None,
        devices: tuple[DeviceConfig, ...] | None = None,
        auth_retry_s: float = AUTH_RETRY_S,
    ) -> None:
        super().__init__(config, SPEC, store=store, recorder=recorder)
        creds = settings.credentials(config)
        self._clients = Clients(creds.username, creds.password, config.poll_timeout)
        self._auth_retry_s = auth_retry_s
        self.discovery = settings.discovery(config)
        self._adopt = settings.adopts(config) and devices is None
        self._tasks: asyncio.TaskGroup | None = None
        self._sem = asyncio.Semaphore(config.concurrency)
        self._discovery_wanted = asyncio.Event()
        self._discovered = asyncio.Event()  # the first discovery round is over
        if not self.discovery.enabled:
            self._discovered.set()
        self._plugs = []
        for d in config.owned_devices(SPEC.protocol) if devices is None else devices:
            target = settings.target(d) or settings.NativeTarget()
            self._plugs.append(_Plug(d, target.host, target.port))
        for plug in self._plugs:
            if plug.cfg.device:  # unnamed plugs appear with their alias, at their first poll
                self._publish(plug, DeviceStatus.PENDING)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every plug until cancelled; closes every connection on the way out."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = tg
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
        backoff = min(interval * 2 ** (plug.failures - 1), max(interval, self.config.backoff_max))
        return max(backoff, plug.login_after - time.monotonic())

    async def _plug_loop(self, plug: _Plug) -> None:
        loop = asyncio.get_running_loop()
        if plug.host is None:  # not "offline" before discovery had its chance to find it
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_timeout + 5):
                    await self._discovered.wait()
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
            try:
                await self._discover_once()
            except Exception as exc:  # e.g. no network yet: the next round tries again
                log.warning("discovery failed (%s); trying again later", exc)
            self._discovered.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.discovery.interval):
                    await asyncio.sleep(min_gap)
                    await self._discovery_wanted.wait()
            self._discovery_wanted.clear()

    async def _discover_once(self) -> None:
        # the hosts in use, and the configured ones (names resolve afresh: followed if they move)
        configured = [t.host for p in self._plugs if (t := settings.target(p.cfg)) and t.host]
        hosts = [p.host for p in self._plugs if p.host] + configured
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
                plug.name,
                plug.cfg.device_id,
                seen.ip,
                plug.host or "unknown",
            )
            plug.host = seen.ip
            plug.route = None
            await self._drop(plug)
            plug.failures = 0
            plug.wake.set()
        if self._adopt:
            self._adopt_unlisted(found)

    def _adopt_unlisted(self, found: dict[str, kasa_discovery.FoundPlug]) -> None:
        known = {p.cfg.device_id for p in self._plugs}
        for mac, seen in sorted(found.items()):
            # a plug the file lists for other readers only (protocols:) stays theirs
            if mac in known or self.config.device(mac) is not None or not self.config.owns(mac):
                continue
            plug = _Plug(DeviceConfig.unlisted(mac), seen.ip, None)
            self._plugs.append(plug)
            log.info(
                "%s %s found at %s, not in the config: exported in room/shelf %r",
                seen.model,
                mac,
                seen.ip,
                UNASSIGNED,
            )
            if self._tasks is not None:
                self._tasks.create_task(self._plug_loop(plug), name=f"poll {mac}")

    # -- one poll ---------------------------------------------------------------------------

    async def _poll(self, plug: _Plug) -> None:
        loop = asyncio.get_running_loop()
        async with self._sem:
            started = loop.time()
            if plug.link is None and time.monotonic() < plug.login_after:
                return  # the last login was rejected: its state stands until login_after
            try:
                async with asyncio.timeout(self.config.poll_timeout):
                    fetched = await (await self._connected(plug)).fetch()
                    if fetched.mac and fetched.mac != plug.cfg.device_id:
                        raise WrongDevice(f"{plug.host} answers as {fetched.mac}")
            except Exception as exc:  # every failure becomes a per-device status, never a crash
                await self._fail(plug, exc)
            else:
                plug.failures = 0
                plug.info = fetched.info
                if plug.route is None and plug.link is not None:
                    plug.route = plug.link.route()  # once a login and a fetch worked
                    plug.endpoint = plug.link.endpoint()
                self._publish(plug, DeviceStatus.OK, readings=fetched.readings)
            self.publisher.polled(
                plug.cfg.device_id,
                plug.name,
                loop.time() - started,
                self.publisher.status(plug.cfg.device_id),
            )

    async def _connected(self, plug: _Plug) -> Link:
        """The plug's link: kept, opened again by its route, or learned by discovery."""
        if plug.link is None:
            if plug.host is None:
                raise NotFound("not found by discovery yet")
            if plug.route is None:
                plug.link = await open_link(plug.host, plug.port, self._clients)
            else:
                plug.link = await plug.route.open(self._clients)
        return plug.link

    async def _drop(self, plug: _Plug) -> None:
        link, plug.link = plug.link, None
        if link is not None:
            await link.close()

    async def _fail(self, plug: _Plug, exc: BaseException) -> None:
        status, detail = classify(exc, self.config.poll_timeout)
        # python-kasa reports a plug that went away as failed queries: a socket says offline
        if status in (DeviceStatus.ERROR, DeviceStatus.TIMEOUT):
            refused = await _connect_refused(*plug.endpoint) if plug.endpoint else None
            if refused:
                status, detail = DeviceStatus.OFFLINE, refused
        if status not in (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT):
            # re-learn the transport: a firmware update or the app's Third-Party
            # Compatibility switch changes it (KLAP <-> TPAP) at the same address
            plug.route = None
        if status is DeviceStatus.AUTH_FAILED:
            plug.login_after = time.monotonic() + self._auth_retry_s
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
            plug.cfg.labels(self.config.house, plug.info.get("alias", "")),
            status,
            who=f"{plug.name} ({plug.cfg.device_id}, {plug.host or 'no address'})",
            info=plug.info,
            readings=readings,
            detail=detail,
            up_note=plug.info.get("transport", "?"),
        )
