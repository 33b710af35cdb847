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

Nothing that answers on the LAN is believed on its word (README "Security on the LAN"): a
plug the file gives a host is never moved by a discovery reply; a plug found by discovery
moves only when it has vanished where it was, and a move is provisional until a poll works
there (a failure sends it back to where it last answered, and a rejected login there does
not close the login gate); the account goes over AES only where the user allowed it
(links.Trust). Adoption is capped (discovery.max_adopted), adopted plugs that never
answered are forgotten without a series or a log line, and they take at most a quarter of
poll.concurrency, so listed plugs are polled ahead of them.
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
from otelpower.core import fds
from otelpower.core.model import DeviceStatus, Reading, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader
from otelpower.readers.native import discovery as kasa_discovery
from otelpower.readers.native import settings
from otelpower.readers.native.errors import (
    NotFound,
    Untrusted,
    WrongDevice,
    classify,
    socket_detail,
)
from otelpower.readers.native.links import Clients, Link, Route, Trust, open_link
from otelpower.readers.native.spec import AUTH_RETRY_S, SPEC

log = logging.getLogger(__name__)

#: a TCP connect to a plug (a probe, or asking why a poll fails): a SYN is answered in ms
CONNECT_TIMEOUT_S = 1.0
#: stopping cancels a loop that has not ended again after this long (see _stop_loops)
STOP_AGAIN_S = 0.5
_VANISHED = (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT)
#: an adopted plug whose first polls all failed is forgotten after this many
FORGET_AFTER = 3
#: a forgotten plug is not adopted again for this long
FORGOTTEN_S = 3600.0
#: at most this many forgotten MACs, and (MAC, address) pairs said, are remembered
REMEMBERED_MAX = 4096


@dataclass
class _Plug:
    cfg: DeviceConfig
    host: str | None  # where it is polled now
    port: int | None
    home: str | None = None  # the file's host: never moved from it
    pin: str | None = None  # the file's transport: no other is tried
    adopted: bool = False  # found by discovery, not in the file
    proven: str | None = None  # the transport its last good poll logged in with
    proven_host: str | None = None  # where its last good poll was
    alive: bool = False  # adopted, refused (AES), but a device does listen there
    #: addresses where a login was rejected after a discovery reply put the plug there:
    #: not moved there again before time.monotonic() passes the value
    rejected_at: dict[str, float] = field(default_factory=dict)
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

    @property
    def here(self) -> tuple[str, int] | None:
        """The endpoint of its last good poll, when that is where it is polled now (after a
        provisional move, the old address says nothing about the new one)."""
        return self.endpoint if self.endpoint and self.endpoint[0] == self.host else None


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
    except (ValueError, OverflowError) as exc:  # a port no socket can have
        return f"cannot connect: {exc}"
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
        self._clients = Clients(
            creds.username, creds.password, config.poll_timeout, allow_aes=creds.allow_aes
        )
        self._auth_retry_s = auth_retry_s
        self.discovery = settings.discovery(config)
        self._adopt = settings.adopts(config) and devices is None
        self._tasks: asyncio.TaskGroup | None = None
        self._loops: set[asyncio.Task[None]] = set()  # each plug's, discovery's
        self._stopping = False  # run() is being cancelled: every loop ends
        self._sem = asyncio.Semaphore(config.concurrency)
        self._adopted_sem = asyncio.Semaphore(max(1, config.concurrency // 4))
        # every poll in flight (a slow one gives up its concurrency slot, not this) and
        # every probe holds a socket: descriptors stay bounded whatever the plug count
        budget = fds.socket_budget()
        self._sockets = asyncio.Semaphore(budget)
        self._forgotten: dict[str, float] = {}  # MAC -> time.monotonic() it may come back
        self._capped = False  # discovery.max_adopted reached (said once)
        self._elsewhere: set[tuple[str, str]] = set()  # (MAC, address) said once
        self._epoch = 0.0  # the poll grid's first tick (loop time)
        self._discovery_wanted = asyncio.Event()
        self._discovered = asyncio.Event()  # the first discovery round is over
        if not self.discovery.enabled:
            self._discovered.set()
        self._plugs = []
        for d in config.owned_devices(SPEC) if devices is None else devices:
            target = settings.target(d) or settings.NativeTarget()
            self._plugs.append(
                _Plug(d, target.host, target.port, home=target.host, pin=target.transport)
            )
        # past the budget, links keep no idle connection between polls (a TCP connect a
        # poll; KLAP/AES sessions survive it)
        most = len(self._plugs) + (self.discovery.max_adopted if self._adopt else 0)
        self._clients.keep_alive = most <= budget
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
            if self._unknown(plug) and plug.failures >= FORGET_AFTER:
                self._forget(plug)
                return
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
            and plug.here is not None
            and time.monotonic() >= plug.login_after
            and self.publisher.status(plug.cfg.device_id) in _VANISHED
        )

    async def _back(self, plug: _Plug) -> bool:
        """Probe the last endpoint: True when it connects after the plug was gone. A plug
        that accepts connections but fails its polls is woken once, then backs off."""
        assert plug.here is not None
        async with self._sockets:
            connected = await _connect(*plug.here, CONNECT_TIMEOUT_S) is None
        back, plug.gone = connected and plug.gone, not connected
        return back

    @staticmethod
    def _unknown(plug: _Plug) -> bool:
        """Adopted on a discovery reply's word, and nothing there has answered since."""
        return plug.adopted and plug.proven is None and not plug.alive

    def _forget(self, plug: _Plug) -> None:
        """An adopted plug that never answered: dropped (a spoofed reply, or a device that
        is no plug), not adopted again for FORGOTTEN_S."""
        mac = plug.cfg.device_id
        self._plugs.remove(plug)
        self.publisher.remove(mac)
        if len(self._forgotten) >= REMEMBERED_MAX:
            del self._forgotten[next(iter(self._forgotten))]
        self._forgotten[mac] = time.monotonic() + FORGOTTEN_S
        log.debug("%s at %s never answered: forgotten", mac, plug.host)

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
        # unicast to the file's hosts (names resolve afresh; some P110 firmware serves its
        # API only after it sees discovery) and to where plugs found by discovery last
        # answered; never to an address that did not (a spoofed reply must not make
        # otelpower a flood's source)
        homes = [p.home for p in self._plugs if p.home]
        answered = [p.proven_host for p in self._plugs if p.home is None and p.proven_host]
        found = await kasa_discovery.probe(
            [*self.discovery.targets, *homes, *answered],
            wait_s=min(3.0, self.config.poll_timeout),
        )
        for plug in list(self._plugs):
            seen = found.get(plug.cfg.device_id)
            if seen is not None and seen.ip != plug.host:
                await self._seen_elsewhere(plug, seen.ip)
        if self._adopt:
            self._adopt_unlisted(found)

    async def _seen_elsewhere(self, plug: _Plug, ip: str) -> None:
        """A discovery reply with the plug's MAC from another address: a plug that moved
        (DHCP), or anything else on the LAN that says it is that plug."""
        mac = plug.cfg.device_id
        status = self.publisher.status(mac)
        if plug.rejected_at.get(ip, 0.0) > time.monotonic():
            return  # a login was rejected there (said in the plug's status then)
        if plug.home is not None or (plug.host is not None and status not in _VANISHED):
            if (mac, ip) not in self._elsewhere and len(self._elsewhere) < REMEMBERED_MAX:
                self._elsewhere.add((mac, ip))
                why = "the file puts it" if plug.home is not None else "it answers"
                log.warning(
                    "%s (%s): a discovery reply from %s says it is this plug, but %s at %s:"
                    " not moved (another device claims its MAC?)",
                    plug.name,
                    mac,
                    ip,
                    why,
                    plug.home or plug.host,
                )
            return
        log.info("%s (%s) found at %s (was %s)", plug.name, mac, ip, plug.host or "unknown")
        plug.host = ip
        if plug.route is not None:  # the transport it proved, at the new address
            plug.route = plug.route.moved(ip)
        await self._drop(plug)
        plug.failures = 0
        plug.wake.set()

    def _adopt_unlisted(self, found: dict[str, kasa_discovery.FoundPlug]) -> None:
        known = {p.cfg.device_id for p in self._plugs}
        now = time.monotonic()
        cap = self.discovery.max_adopted
        adopted = sum(1 for p in self._plugs if p.adopted)
        left_out = 0
        for mac, seen in sorted(found.items()):
            # a plug the file lists for other readers only (protocols:) stays theirs
            if mac in known or self.config.device(mac) is not None or not self.config.owns(mac):
                continue
            if self._forgotten.get(mac, 0.0) > now:
                continue
            if adopted >= cap:
                left_out += 1
                continue
            self._forgotten.pop(mac, None)
            plug = _Plug(DeviceConfig.unlisted(mac), seen.ip, None, adopted=True)
            self._plugs.append(plug)
            adopted += 1
            log.info(
                "%s %s found at %s, not in the config: exported in room/shelf %r",
                seen.model,
                mac,
                seen.ip,
                UNASSIGNED,
            )
            if self._tasks is not None and not self._stopping:
                self._start(self._plug_loop(plug), f"poll {mac}")
        if left_out and not self._capped:
            log.warning(
                "discovery.max_adopted (%d) reached: %d more plugs found are not read"
                " (list the ones you want in the config, or raise discovery.max_adopted)",
                cap,
                left_out,
            )
        self._capped = left_out > 0

    # -- one poll ---------------------------------------------------------------------------

    async def _poll(self, plug: _Plug, due: float | None = None) -> None:
        """One poll. Its deadline is ``poll.timeout`` after it was ``due`` (loop time), not
        after it found a place in the limit (late in a cycle of many plugs), so every plug's
        state is settled within poll.timeout of its tick; but at least half of it from now."""
        async with contextlib.AsyncExitStack() as held:
            if plug.adopted:  # at most a quarter of the slots: listed plugs come first
                await held.enter_async_context(self._adopted_sem)
            await held.enter_async_context(self._sockets)
            await self._poll_limited(plug, due)

    async def _poll_limited(self, plug: _Plug, due: float | None) -> None:
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
                    if plug.route is not None and plug.here is not None:
                        slow.watch = (plug.here, limit)
                    fetched = await (await self._connected(plug)).fetch()
                    if fetched.mac and fetched.mac != plug.cfg.device_id:
                        raise WrongDevice(f"{plug.host} answers as {fetched.mac}")
            except Exception as exc:  # every failure becomes a per-device status, never a crash
                await self._fail(plug, exc, deadline)
            else:
                plug.failures = 0
                plug.took_s = loop.time() - started
                plug.info = fetched.info
                if plug.link is not None:  # a login and a fetch worked: the plug proved itself
                    if plug.route is None:
                        plug.route = plug.link.route()
                    plug.endpoint = plug.link.endpoint()
                    plug.proven, plug.proven_host = plug.link.kind, plug.host
                self._publish(plug, DeviceStatus.OK, readings=fetched.readings)
            if self._unknown(plug):
                return  # never answered: no series, no line (it may be a spoofed reply)
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
                trust = Trust(plug.pin, plug.proven)
                plug.link = await open_link(plug.host, plug.port, self._clients, trust)
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
        if status in (DeviceStatus.ERROR, DeviceStatus.TIMEOUT) and plug.here and left > 0:
            refused = await _connect(*plug.here, left)
            if refused:
                status, detail = DeviceStatus.OFFLINE, refused
        if status not in (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT):
            # re-learn the transport: a firmware update or the app's Third-Party
            # Compatibility switch changes it (KLAP <-> TPAP) at the same address
            plug.route = None
        moved = plug.proven_host is not None and plug.host != plug.proven_host
        if moved:  # a provisional move failed: back to where it last answered
            assert plug.proven_host is not None
            if status is DeviceStatus.AUTH_FAILED:  # not the plug's fault: no login gate
                status = DeviceStatus.ERROR
                detail = f"login rejected at {plug.host}, where a discovery reply put it"
                # not moved there again for a while: a rejected login each round would lock
                # a plug that is there with another password
                if len(plug.rejected_at) >= 64:
                    plug.rejected_at.clear()
                plug.rejected_at[plug.host] = time.monotonic() + self._auth_retry_s
            detail += f"; back to {plug.proven_host}, where it last answered"
            plug.host = plug.proven_host
            if plug.route is not None:
                plug.route = plug.route.moved(plug.host)
        if status is DeviceStatus.AUTH_FAILED:
            plug.login_after = time.monotonic() + self._auth_retry_s
        if plug.failures == 0:  # later in the streak, only probes say whether it is there
            plug.gone = status in _VANISHED
        plug.failures += 1
        await self._drop(plug)
        if self._unknown(plug) and status is DeviceStatus.AUTH_FAILED:
            plug.alive = True  # a device answered a login handshake: shown, with the remedy
        if self._unknown(plug) and isinstance(exc, Untrusted) and exc.endpoint and left > 0:
            # refused before any login (AES): a device that listens is shown, with the remedy
            plug.alive = await _connect(*exc.endpoint, left) is None
        if self._unknown(plug):
            log.debug("%s at %s: %s: %s", plug.cfg.device_id, plug.host, status, detail)
            return  # never answered: nothing exported, logged or asked of discovery
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
