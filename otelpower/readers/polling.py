"""The poll loop every polling reader shares: a maker's reader writes only how to log in to a
device, fetch one reading and classify a failure (Home Assistant's coordinator split).

The framework owns the rest, the same for every maker:
- **the grid**: polls fall every ``poll.interval`` from the start, so healthy devices are
  polled together and a cycle is one snapshot; a device's deadline is ``poll.timeout`` after
  its tick (not after it found a place in the limit), so every state settles in time;
- **concurrency**: ``poll.concurrency`` polls at once; a poll gives up its place after a tenth
  of its timeout (a healthy one is over long before), so dead devices hold up no other; every
  poll and probe holds a socket of the process's budget (core.fds);
- **failures**: a failure publishes ``up=0`` at once (stale policy), drops the link and backs
  off exponentially up to ``poll.backoff_max``; a device that vanished (offline, timeout) is
  probed with a TCP connect every half interval and polled as soon as its endpoint accepts
  one again; a failed poll's cause is asked of the socket (a refusal says offline);
- **the login gate**: a rejected login is a standing fault, tried again once per
  ``auth_retry_s`` (devices lock themselves after a few failed logins), never probed;
- **stopping**: every loop is cancelled again until it ends (client libraries swallow
  cancels);
- **timing**: every poll is timed and handed to the publisher with its outcome.

Each device's state is a ``Polled`` (its ``phase`` says where it is in that cycle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from otelpower.config import Config, DeviceConfig
from otelpower.core import fds
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers.base import Reader, ReaderSpec
from otelpower.readers.failures import WrongDevice, socket_detail

log = logging.getLogger(__name__)

#: a TCP connect to a device (a probe, or asking why a poll failed): a SYN is answered in ms
CONNECT_TIMEOUT_S = 1.0
#: stopping cancels a loop that has not ended again after this long (see _stop_loops)
STOP_AGAIN_S = 0.5
#: a rejected login is tried again once per this long, never in a loop
AUTH_RETRY_S = 1800.0
VANISHED = (DeviceStatus.OFFLINE, DeviceStatus.TIMEOUT)


@dataclass(frozen=True)
class Fetched:
    """One poll's answer: identity labels (model, firmware, ...), readings, and the MAC the
    device says it has (checked against its ``device_id``; None when it does not say)."""

    info: Mapping[str, str]
    readings: tuple[Reading, ...]
    mac: str | None = None


class Link(Protocol):
    """A logged-in connection to one device."""

    async def fetch(self) -> Fetched: ...

    async def close(self) -> None: ...

    def endpoint(self) -> tuple[str, int] | None:
        """Host and TCP port to connect to when asking whether the device is there (probes,
        a failed poll's cause); None: the device is not probed."""
        ...


class Phase(StrEnum):
    """Where a device is in the poll cycle."""

    NEW = "new"  # not polled yet
    UP = "up"  # its last poll worked; the link is kept
    VANISHED = "vanished"  # offline or timed out: backing off, probed with a TCP connect
    LOCKED_OUT = "locked_out"  # its login was rejected: no login before ``login_after``
    FAILING = "failing"  # any other failure: backing off


@dataclass(eq=False)
class Polled:
    """One device's state in the poll loop (a reader subclasses it for its own fields)."""

    cfg: DeviceConfig
    phase: Phase = Phase.NEW
    failures: int = 0  # failed polls in a row
    link: Link | None = None
    endpoint: tuple[str, int] | None = None  # the last link that worked: where it is probed
    login_after: float = 0.0  # time.monotonic(): no login before it (the last was rejected)
    gone: bool = False  # the failure or the last probe found nothing: a connect wakes it
    took_s: float = 0.0  # how long its last good poll took
    info: Mapping[str, str] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    removed: bool = False  # the reader removed it: no more polls, nothing published

    @property
    def device_id(self) -> str:
        return self.cfg.device_id

    @property
    def name(self) -> str:
        return self.cfg.name(self.info.get("alias", ""))


async def connect(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection opens within ``timeout``; else why not: the socket error in
    words, or "" when nothing answered."""
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
    it gives up its place in poll.concurrency, so a dead device holds up no other; and with a
    known endpoint (``watch``), it connects there once the poll has also run ``check_after``
    seconds: a refusal ends the poll at once (client libraries retry a vanished device for
    seconds). ``check_after`` grows with the device's last good poll, so a process too busy
    to finish polls quickly does not add a connect to each."""

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
        if await connect(*endpoint, CONNECT_TIMEOUT_S):
            with contextlib.suppress(RuntimeError):  # the fetch is over already
                limit.reschedule(asyncio.get_running_loop().time())


class PollingReader[D: Polled](Reader):
    """A reader that polls each device on the grid. Subclasses write ``open`` (log in),
    ``classify`` (a failure -> status and detail) and, when they have any, the hooks below;
    they add devices with ``add`` (in ``__init__``, or while running)."""

    def __init__(
        self,
        config: Config,
        spec: ReaderSpec,
        *,
        store: SnapshotStore | None = None,
        recorder: PollRecorder | None = None,
        auth_retry_s: float = AUTH_RETRY_S,
    ) -> None:
        super().__init__(config, spec, store=store, recorder=recorder)
        self.auth_retry_s = auth_retry_s
        self._devices: list[D] = []
        self._tasks: asyncio.TaskGroup | None = None
        self._loops: set[asyncio.Task[None]] = set()
        self._stopping = False  # run() is being cancelled: every loop ends
        self._sem = asyncio.Semaphore(config.concurrency)
        # every poll in flight (a slow one gives up its concurrency slot, not this) and every
        # probe holds a socket: descriptors stay bounded whatever the device count
        self.socket_budget = fds.socket_budget()
        self._sockets = asyncio.Semaphore(self.socket_budget)
        self._epoch = 0.0  # the grid's first tick (loop time)

    # -- what a maker's reader writes --------------------------------------------------------

    @abstractmethod
    async def open(self, device: D) -> Link:
        """Log in to ``device`` (raise on failure: ``classify`` says what it means)."""

    @abstractmethod
    def classify(self, exc: BaseException) -> tuple[DeviceStatus, str]:
        """A failed poll's status and a one-line detail (no secrets)."""

    def background(self) -> dict[str, Coroutine[Any, Any, None]]:
        """Tasks that run beside the poll loops (e.g. discovery), by name."""
        return {}

    async def ready(self, device: D) -> None:
        """Awaited before a device's first poll (e.g. until discovery had its chance)."""

    def limit(self, device: D) -> AbstractAsyncContextManager[object] | None:
        """A limit of the reader's own the device's polls hold besides poll.concurrency."""
        return None

    def watched(self, device: D) -> tuple[str, int] | None:
        """Where a slow or failed poll asks the socket whether the device is there, and a
        vanished one is probed: by default the endpoint of its last good poll."""
        return device.endpoint

    def watched_while_slow(self, device: D) -> tuple[str, int] | None:
        """Where a slow poll connects to end at once when refused: by default the watched
        endpoint while the device's link is kept (a new login learns where it is)."""
        return self.watched(device) if device.link is not None else None

    def succeeded(self, device: D, link: Link) -> None:
        """A poll through a new ``link`` worked: the device proved itself there."""

    async def failed(
        self, device: D, exc: BaseException, status: DeviceStatus, detail: str
    ) -> tuple[DeviceStatus, str]:
        """A poll failed (the link still open); may change the status and detail before
        the framework applies them (e.g. a device that moved goes back where it answered)."""
        return status, detail

    async def after_failure(
        self, device: D, exc: BaseException, status: DeviceStatus, left: float
    ) -> None:
        """After the framework took a failure in, before it is published; ``left``: seconds
        of the poll's deadline left (nothing may be published after it)."""

    def silent(self, device: D) -> bool:
        """A device that gets no series and no log line (e.g. one a spoofed reply made up)."""
        return False

    def keep(self, device: D) -> bool:
        """Asked after each poll: False ends the device's loop (the reader removed it)."""
        return True

    def describe(self, device: D) -> str:
        """How log lines name the device."""
        return f"{device.name} ({device.device_id})"

    def up_note(self, device: D) -> str:
        """What the "up" log line adds in brackets (e.g. the transport)."""
        return ""

    # -- the devices ------------------------------------------------------------------------

    @property
    def devices(self) -> tuple[D, ...]:
        return tuple(self._devices)

    def device(self, device_id: str) -> D:
        found = next((d for d in self._devices if d.device_id == device_id), None)
        if found is None:
            raise KeyError(f"{self.spec.name} reader has no device {device_id}")
        return found

    def add(self, device: D) -> None:
        """Poll ``device`` too (at once, when the reader runs)."""
        self._devices.append(device)
        if self._tasks is not None and not self._stopping:
            self._start(self._loop(device), f"poll {device.device_id}")

    def remove(self, device: D) -> None:
        """Stop exporting ``device``: its series go at once, its loop ends after the poll it
        is in (which publishes nothing more) and closes its link."""
        if device.removed:
            return
        device.removed = True
        self._devices.remove(device)
        self.publisher.remove(device.device_id)
        device.wake.set()

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every device until cancelled; closes every link on the way out."""
        loop = asyncio.get_running_loop()
        self._epoch = loop.time()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = tg
                for device in list(self._devices):
                    self._start(self._loop(device), f"poll {device.device_id}")
                for name, coro in self.background().items():
                    self._start(coro, name)
                try:
                    await loop.create_future()  # until cancelled
                finally:
                    await self._stop_loops()
        finally:
            await asyncio.shield(self.close())

    @property
    def stopping(self) -> bool:
        return self._stopping

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
        """One poll of every device, concurrently (one-shot use, benchmarks, tests)."""
        await asyncio.gather(*(self._poll(d) for d in list(self._devices)))

    async def poll(self, device_id: str) -> DeviceSnapshot | None:
        """One poll of one device now (benchmarks, tests); its snapshot after it."""
        await self._poll(self.device(device_id))
        return self.store.get(device_id)

    async def close(self) -> None:
        await asyncio.gather(*(self.drop(d) for d in list(self._devices)))

    async def drop(self, device: D) -> None:
        """Close the device's link (the next poll logs in again)."""
        link, device.link = device.link, None
        if link is not None:
            try:
                await link.close()
            except Exception as exc:  # a link that fails to close is closed: it never ends a loop
                log.debug("%s: closing its link: %s", device.device_id, exc)

    def delay(self, device: D) -> float:
        """Seconds from this poll's tick to the next: the interval, or its backoff."""
        interval = self.config.poll_interval
        if device.failures == 0:
            return interval
        cap = max(interval, self.config.backoff_max)
        backoff = min(interval * 2 ** (device.failures - 1), cap)
        return max(backoff, device.login_after - time.monotonic())

    def _tick(self) -> int:
        """The grid's latest tick: ticks are poll.interval apart from the start."""
        now = asyncio.get_running_loop().time()
        return math.floor((now - self._epoch) / self.config.poll_interval)

    async def _loop(self, device: D) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.poll_interval
        await self.ready(device)
        tick = self._tick()
        due: float | None = None  # the first poll (a login) counts from its start
        while True:
            await self._poll(device, due)
            device.wake.clear()
            if not self.keep(device) or device.removed or self._stopping:
                await self.drop(device)
                return
            # the tick the delay reaches (never one already past: a poll may overrun it)
            tick = max(tick + math.ceil(self.delay(device) / interval - 1e-9), self._tick() + 1)
            due = self._epoch + tick * interval
            woken = await self._sleep(device, due)
            if device.removed or self._stopping:
                await self.drop(device)
                return
            if woken:
                tick, due = self._tick(), loop.time()  # woken: polled now, then on the grid

    async def _sleep(self, device: D, until: float) -> bool:
        """Wait until ``until`` (loop time); True when woken before: by ``device.wake`` (the
        reader's own reasons), or by a probe that finds a vanished device back."""
        loop = asyncio.get_running_loop()
        gap = self.config.poll_interval / 2
        while (left := until - loop.time()) > 0 and not self._stopping:
            probe = left > gap and self._probed(device)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(gap if probe else left):
                    await device.wake.wait()
                    return True
            if probe and await self._back(device):
                return True
        return False

    def _probed(self, device: D) -> bool:
        """A device in backoff after it vanished; never one whose login was rejected (a probe
        must not lead to a login before ``login_after``)."""
        return (
            device.failures > 0
            and self.watched(device) is not None
            and time.monotonic() >= device.login_after
            and device.phase is Phase.VANISHED
        )

    async def _back(self, device: D) -> bool:
        """Probe the endpoint: True when it connects after the device was gone. A device that
        accepts connections but fails its polls is woken once, then backs off."""
        endpoint = self.watched(device)
        if endpoint is None:
            return False
        async with self._sockets:
            connected = await connect(*endpoint, CONNECT_TIMEOUT_S) is None
        back, device.gone = connected and device.gone, not connected
        return back

    # -- one poll ---------------------------------------------------------------------------

    async def _poll(self, device: D, due: float | None = None) -> None:
        """One poll. Its deadline is ``poll.timeout`` after it was ``due`` (loop time), not
        after it found a place in the limit (late in a cycle of many devices), so every
        device's state is settled within poll.timeout of its tick; but at least half of it
        from now."""
        async with contextlib.AsyncExitStack() as held:
            if (own := self.limit(device)) is not None:
                await held.enter_async_context(own)
            await held.enter_async_context(self._sockets)
            await self._poll_limited(device, due)

    async def _poll_limited(self, device: D, due: float | None) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.config.poll_timeout
        await self._sem.acquire()
        # slow: past a tenth of the timeout, and for the connect also past 4x its last good poll
        with _Slow(self._sem, timeout / 10, 4 * device.took_s) as slow:
            started = loop.time()
            if device.link is None and time.monotonic() < device.login_after:
                return  # the last login was rejected: its state stands until login_after
            deadline = max(started if due is None else due, started - timeout / 2) + timeout
            try:
                async with asyncio.timeout_at(deadline) as limit:
                    if (watched := self.watched_while_slow(device)) is not None:
                        slow.watch = (watched, limit)
                    if device.link is None:
                        device.link = await self.open(device)
                    link = device.link
                    assert link is not None
                    fetched = await link.fetch()
                    if fetched.mac and fetched.mac != device.device_id:
                        raise WrongDevice(f"answers as {fetched.mac}")
            except Exception as exc:  # every failure becomes a per-device status, never a crash
                await self._fail(device, exc, deadline)
            else:
                device.failures, device.phase = 0, Phase.UP
                device.took_s = loop.time() - started
                device.info = fetched.info
                if device.link is link:  # not dropped meanwhile (e.g. the reader moved it)
                    device.endpoint = link.endpoint()
                    self.succeeded(device, link)
                self._publish(device, DeviceStatus.OK, readings=fetched.readings)
            if self.silent(device):
                return  # no series, no line
            seconds = loop.time() - started
            status = self.publisher.status(device.device_id)
            self.publisher.polled(device.device_id, device.name, seconds, status)

    async def _fail(self, device: D, exc: BaseException, deadline: float) -> None:
        status, detail = self.classify(exc)
        # client libraries report a device that went away as failed queries: a socket says
        # offline (asked within the poll's deadline: a failure is never published after it)
        left = min(CONNECT_TIMEOUT_S, deadline - asyncio.get_running_loop().time())
        watched = self.watched(device)
        if status in (DeviceStatus.ERROR, DeviceStatus.TIMEOUT) and watched and left > 0:
            refused = await connect(*watched, left)
            if refused:
                status, detail = DeviceStatus.OFFLINE, refused
        status, detail = await self.failed(device, exc, status, detail)
        if status is DeviceStatus.AUTH_FAILED:
            device.login_after = time.monotonic() + self.auth_retry_s
        if device.failures == 0:  # later in the streak, only probes say whether it is there
            device.gone = status in VANISHED
        device.failures += 1
        device.phase = (
            Phase.VANISHED
            if status in VANISHED
            else Phase.LOCKED_OUT
            if status is DeviceStatus.AUTH_FAILED
            else Phase.FAILING
        )
        await self.drop(device)
        left = deadline - asyncio.get_running_loop().time()
        await self.after_failure(device, exc, status, min(CONNECT_TIMEOUT_S, left))
        if not self.silent(device):
            self._publish(device, status, detail=detail)

    def _publish(
        self,
        device: D,
        status: DeviceStatus,
        *,
        readings: tuple[Reading, ...] = (),
        detail: str = "",
    ) -> None:
        if device.removed:
            return  # a poll that was in flight when the reader removed it
        self.publisher.publish(
            device.device_id,
            device.cfg.labels(self.config.house, device.info.get("alias", "")),
            status,
            who=self.describe(device),
            info=device.info,
            readings=readings,
            detail=detail,
            up_note=self.up_note(device),
            vendor=device.cfg.vendor,
        )

    def publish_pending(self, device: D) -> None:
        """``pending`` until its first poll (a named device: unnamed ones appear with their
        own name at their first poll)."""
        if device.cfg.device:
            self._publish(device, DeviceStatus.PENDING)
