"""Native reader: polls TP-Link plugs on the LAN (one task and one link per plug).

Coordinator pattern: one task per plug keeps a logged-in link (python-kasa, or the ``tapo``
client for TPAP: see links.py), polls it under a per-device deadline and a shared
concurrency limit, and publishes a snapshot. Polls fall on a grid, every ``poll.interval``
from the start: healthy plugs are polled together, so a cycle is one snapshot. A poll gives
up its place in the limit after a tenth of its timeout (a healthy one is over long before),
so dead plugs never hold up the others. A failure publishes ``up=0`` at once (stale
policy), drops the link and retries with capped exponential backoff; meanwhile a plug that
vanished (offline, timeout) is probed with a TCP connect every half interval, and polled as
soon as its last endpoint accepts one again. A rejected login is a standing fault, retried
once per ``AUTH_RETRY_S`` (plugs lock themselves after a few failed logins), never probed.
A discovery task follows plugs by MAC when their IP changes, and adopts plugs the file does
not list when it has no list (or ``discovery.adopt``): those are named by their alias, in
room and shelf "unassigned".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

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

#: a TCP connect to a plug (a probe, or asking why a poll fails): a SYN is answered in ms
CONNECT_TIMEOUT_S = 1.0
#: stopping cancels a loop that has not ended again after this long (see _stop_loops)
STOP_AGAIN_S = 0.5
_VANISHED = (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT)


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
    gone: bool = False  # the failure or the last probe found no plug: a connect wakes the poll
    took_s: float = 0.0  # the last poll that worked: how long it took
    info: dict[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.cfg.name(self.info.get("alias", ""))


async def _connect(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection to the plug opens within ``timeout``; else why not: the
    socket error in words, or "" when nothing answered."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ""
    except OSError as exc:
        return socket_detail(exc) or "connection refused"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


class _Slow:
    """What a poll does once it has run for ``after`` seconds (a healthy one is over by then):
    it gives up its place in poll.concurrency, so a dead plug holds up no other; and polling
    through a known route (``watch``), it connects to the plug's endpoint once the poll has
    also run ``check_after`` seconds: a refusal ends the poll at once (python-kasa retries a
    vanished plug's modules one by one for ~8 s). ``check_after`` grows with the plug's last
    good poll, so a process too busy to finish polls quickly does not add a connect to each."""

    def __init__(self, sem: asyncio.Semaphore, after: float, check_after: float) -> None:
        self._sem: asyncio.Semaphore | None = sem  # held: acquired by the poll
        self._check: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(after, self._release)
        self._check_timer = loop.call_later(max(after, check_after), self._slow)
        self.watch: tuple[tuple[str, int], asyncio.Timeout] | None = None

    def __enter__(self) -> _Slow:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._check_timer.cancel()
        self._release()
        if self._check is not None:
            self._check.cancel()

    def _release(self) -> None:
        if self._sem is not None:
            self._sem.release()
            self._sem = None

    def _slow(self) -> None:
        if self.watch is not None:
            self._check = asyncio.ensure_future(self._refused(*self.watch))

    @staticmethod
    async def _refused(endpoint: tuple[str, int], limit: asyncio.Timeout) -> None:
        if await _connect(*endpoint, CONNECT_TIMEOUT_S):
            with contextlib.suppress(RuntimeError):  # the fetch is over already
                limit.reschedule(asyncio.get_running_loop().time())


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
        self._loops: set[asyncio.Task[None]] = set()  # each plug's, discovery's
        self._stopping = False  # run() is being cancelled: every loop ends
        self._sem = asyncio.Semaphore(config.concurrency)
        self._epoch = 0.0  # the poll grid's first tick (loop time)
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
        loop = asyncio.get_running_loop()
        self._epoch = loop.time()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = tg
                for plug in self._plugs:
                    self._start(self._plug_loop(plug), f"poll {plug.cfg.device_id}")
                if self.discovery.enabled:
                    self._start(self._discovery_loop(), "discovery")
                try:
                    await loop.create_future()  # until cancelled
                finally:
                    await self._stop_loops()
        finally:
            await asyncio.shield(self.close())

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        assert self._tasks is not None
        self._loops.add(task := self._tasks.create_task(coro, name=name))
        task.add_done_callback(self._loops.discard)

    async def _stop_loops(self) -> None:
        """Cancel every loop, again every STOP_AGAIN_S until it has ended. A client library may
        swallow a cancel: python-kasa's discover_single takes one that lands after the plug's
        reply for its own, aiohttp's timer one of the poll's timeout (whose CancelledError
        then becomes a TimeoutError), and python-kasa retries after that. ``_stopping`` ends
        a loop that got back to its own code."""
        self._stopping = True
        while loops := [t for t in self._loops if not t.done()]:
            for task in loops:
                task.cancel()
            await asyncio.wait(loops, timeout=STOP_AGAIN_S)

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

    def _tick(self) -> int:
        """The poll grid's latest tick: ticks are poll.interval apart from the start."""
        now = asyncio.get_running_loop().time()
        return math.floor((now - self._epoch) / self.config.poll_interval)

    async def _plug_loop(self, plug: _Plug) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.poll_interval
        if plug.host is None:  # not "offline" before discovery had its chance to find it
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_timeout + 5):
                    await self._discovered.wait()
        tick = self._tick()
        due: float | None = None  # the first poll (a login) counts from its start
        while True:
            await self._poll(plug, due)
            plug.wake.clear()
            # the tick the delay reaches (never one already past: a poll may overrun it)
            tick = max(tick + math.ceil(self._delay(plug) / interval - 1e-9), self._tick() + 1)
            due = self._epoch + tick * interval
            woken = await self._sleep(plug, due)
            if self._stopping:
                return
            if woken:
                tick, due = self._tick(), loop.time()  # woken: polled now, then on the grid

    async def _sleep(self, plug: _Plug, until: float) -> bool:
        """Wait until ``until`` (loop time); True when woken before: by discovery, or by a
        probe that finds a vanished plug back (probes every half interval while it backs off)."""
        loop = asyncio.get_running_loop()
        gap = self.config.poll_interval / 2
        while (left := until - loop.time()) > 0 and not self._stopping:
            probe = left > gap and self._probed(plug)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(gap if probe else left):
                    await plug.wake.wait()
                    return True
            if probe and await self._back(plug):
                return True
        return False

    def _probed(self, plug: _Plug) -> bool:
        """A plug in backoff after it vanished; never one whose login was rejected (a probe
        must not lead to a login before ``login_after``)."""
        return (
            plug.failures > 0
            and plug.endpoint is not None
            and time.monotonic() >= plug.login_after
            and self.publisher.status(plug.cfg.device_id) in _VANISHED
        )

    async def _back(self, plug: _Plug) -> bool:
        """Probe the last endpoint: True when it connects after the plug was gone. A plug
        that accepts connections but fails its polls is woken once, then backs off."""
        assert plug.endpoint is not None
        connected = await _connect(*plug.endpoint, CONNECT_TIMEOUT_S) is None
        back, plug.gone = connected and plug.gone, not connected
        return back

    async def _discovery_loop(self) -> None:
        """Probe now, then every discovery.interval, or sooner when a plug goes missing."""
        min_gap = max(self.config.poll_interval, 5.0)
        while not self._stopping:
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
            if self._tasks is not None and not self._stopping:
                self._start(self._plug_loop(plug), f"poll {mac}")

    # -- one poll ---------------------------------------------------------------------------

    async def _poll(self, plug: _Plug, due: float | None = None) -> None:
        """One poll. Its deadline is ``poll.timeout`` after it was ``due`` (loop time), not
        after it found a place in the limit (late in a cycle of many plugs), so every plug's
        state is settled within poll.timeout of its tick; but at least half of it from now."""
        loop = asyncio.get_running_loop()
        timeout = self.config.poll_timeout
        await self._sem.acquire()
        # slow: past a tenth of the timeout, and for the connect also past 4x its last good poll
        with _Slow(self._sem, timeout / 10, 4 * plug.took_s) as slow:
            started = loop.time()
            if plug.link is None and time.monotonic() < plug.login_after:
                return  # the last login was rejected: its state stands until login_after
            deadline = max(started if due is None else due, started - timeout / 2) + timeout
            try:
                async with asyncio.timeout_at(deadline) as limit:
                    if plug.route is not None and plug.endpoint is not None:
                        slow.watch = (plug.endpoint, limit)
                    fetched = await (await self._connected(plug)).fetch()
                    if fetched.mac and fetched.mac != plug.cfg.device_id:
                        raise WrongDevice(f"{plug.host} answers as {fetched.mac}")
            except Exception as exc:  # every failure becomes a per-device status, never a crash
                await self._fail(plug, exc, deadline)
            else:
                plug.failures = 0
                plug.took_s = loop.time() - started
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

    async def _fail(self, plug: _Plug, exc: BaseException, deadline: float) -> None:
        status, detail = classify(exc, self.config.poll_timeout)
        # python-kasa reports a plug that went away as failed queries: a socket says offline
        # (asked within the poll's deadline: a failure is never published after it)
        left = min(CONNECT_TIMEOUT_S, deadline - asyncio.get_running_loop().time())
        if status in (DeviceStatus.ERROR, DeviceStatus.TIMEOUT) and plug.endpoint and left > 0:
            refused = await _connect(*plug.endpoint, left)
            if refused:
                status, detail = DeviceStatus.OFFLINE, refused
        if status not in (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT):
            # re-learn the transport: a firmware update or the app's Third-Party
            # Compatibility switch changes it (KLAP <-> TPAP) at the same address
            plug.route = None
        if status is DeviceStatus.AUTH_FAILED:
            plug.login_after = time.monotonic() + self._auth_retry_s
        if plug.failures == 0:  # later in the streak, only probes say whether it is there
            plug.gone = status in _VANISHED
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
