"""Native reader: polls TP-Link plugs on the LAN (one task and one link per plug).

The poll loop is the framework's (readers/polling.py: the grid, deadlines, concurrency,
backoff with TCP probes, the login gate, stopping). This module keeps only TP-Link: which
library logs in to a plug (links.py, opening.py: python-kasa, or the ``tapo`` client for
TPAP), the account's trust (links.Trust), and discovery: a discovery task follows plugs by
MAC when their IP changes, and adopts plugs the file does not list when it has no list (or
``discovery.adopt``): those are named by their alias, in room and shelf "unassigned".

Nothing that answers on the LAN is believed on its word (docs/security.md): a
plug the file gives a host is never moved by a discovery reply; a plug found by discovery
moves only when it has vanished where it was, and a move is provisional until a poll works
there (a failure sends it back to where it last answered, and a rejected login there does
not close the login gate); the account goes over AES only where the user allowed it
(links.Trust). Adoption is capped (discovery.max_adopted), adopted plugs that never
answered are forgotten without a series or a log line, and they take at most a quarter of
poll.concurrency, so listed plugs are polled ahead of them. A plug whose transport changes
(a firmware update, the app's Third-Party Compatibility switch: KLAP <-> TPAP at the same
address) is learned again after any failure that is not offline or timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from otelpower.config import UNASSIGNED, Config, DeviceConfig
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers import registry
from otelpower.readers.base import ReaderSpec
from otelpower.readers.native import discovery as kasa_discovery
from otelpower.readers.native import settings
from otelpower.readers.native.errors import NotFound, Untrusted, classify
from otelpower.readers.native.links import Clients, Link, Route, Trust
from otelpower.readers.native.opening import open_link
from otelpower.readers.polling import (
    AUTH_RETRY_S,
    VANISHED,
    Polled,
    PollingReader,
    connect,
)

log = logging.getLogger(__name__)

#: an adopted plug whose first polls all failed is forgotten after this many
FORGET_AFTER = 3
#: a forgotten plug is not adopted again for this long
FORGOTTEN_S = 3600.0
#: at most this many forgotten MACs, and (MAC, address) pairs said, are remembered
REMEMBERED_MAX = 4096


@dataclass(eq=False)
class Plug(Polled):
    """A TP-Link plug's state beyond the poll loop's."""

    host: str | None = None  # where it is polled now
    port: int | None = None
    home: str | None = None  # the file's host: never moved from it
    pin: str | None = None  # the file's transport: no other is tried
    adopted: bool = False  # found by discovery, not in the file
    proven: str | None = None  # the transport its last good poll logged in with
    proven_host: str | None = None  # where its last good poll was
    alive: bool = False  # adopted, refused (AES), but a device does listen there
    #: addresses where a login was rejected after a discovery reply put the plug there:
    #: not moved there again before time.monotonic() passes the value
    rejected_at: dict[str, float] = field(default_factory=dict)
    route: Route | None = None  # how to log in again without discovery

    @property
    def here(self) -> tuple[str, int] | None:
        """The endpoint of its last good poll, when that is where it is polled now (after a
        provisional move, the old address says nothing about the new one)."""
        return self.endpoint if self.endpoint and self.endpoint[0] == self.host else None

    @property
    def unknown(self) -> bool:
        """Adopted on a discovery reply's word, and nothing there has answered since."""
        return self.adopted and self.proven is None and not self.alive


class NativeReader(PollingReader[Plug]):
    def __init__(
        self,
        config: Config,
        store: SnapshotStore | None = None,
        *,
        recorder: PollRecorder | None = None,
        devices: tuple[DeviceConfig, ...] | None = None,
        auth_retry_s: float = AUTH_RETRY_S,
        spec: ReaderSpec | None = None,
    ) -> None:
        spec = spec or registry.get("native")
        super().__init__(config, spec, store=store, recorder=recorder, auth_retry_s=auth_retry_s)
        creds = settings.credentials(config)
        self._clients = Clients(
            creds.username, creds.password, config.poll_timeout, allow_aes=creds.allow_aes
        )
        self.discovery = settings.discovery(config)
        self._adopt = settings.adopts(config) and devices is None
        self._adopted_sem = asyncio.Semaphore(max(1, config.concurrency // 4))
        self.forgotten: dict[str, float] = {}  # MAC -> time.monotonic() it may come back
        self._capped = False  # discovery.max_adopted reached (said once)
        self._elsewhere: set[tuple[str, str]] = set()  # (MAC, address) said once
        self._discovery_wanted = asyncio.Event()
        self._discovered = asyncio.Event()  # the first discovery round is over
        if not self.discovery.enabled:
            self._discovered.set()
        for d in config.owned_devices(spec) if devices is None else devices:
            target = settings.target(d) or settings.NativeTarget()
            host, pin = target.host, target.transport
            self.add(Plug(d, host=host, port=target.port, home=host, pin=pin))
        # past the budget, links keep no idle connection between polls (a TCP connect a
        # poll; KLAP/AES sessions survive it)
        most = len(self.devices) + (self.discovery.max_adopted if self._adopt else 0)
        self._clients.keep_alive = most <= self.socket_budget
        for plug in self.devices:
            self.publish_pending(plug)

    # -- the poll loop's hooks --------------------------------------------------------------

    async def open(self, plug: Plug) -> Link:
        """The plug's link: opened again by its route, or learned (discovery, transports)."""
        if plug.host is None:
            raise NotFound("not found by discovery yet")
        if plug.route is None:
            return await open_link(
                plug.host, plug.port, self._clients, Trust(plug.pin, plug.proven)
            )
        return await plug.route.open(self._clients)

    def classify(self, exc: BaseException) -> tuple[DeviceStatus, str]:
        return classify(exc, self.config.poll_timeout)

    def background(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {"discovery": self._discovery_loop()} if self.discovery.enabled else {}

    async def ready(self, plug: Plug) -> None:
        if plug.host is None:  # not "offline" before discovery had its chance to find it
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_timeout + 5):
                    await self._discovered.wait()

    def limit(self, plug: Plug) -> AbstractAsyncContextManager[object] | None:
        # adopted plugs take at most a quarter of the slots: listed plugs come first
        return self._adopted_sem if plug.adopted else None

    def watched(self, plug: Plug) -> tuple[str, int] | None:
        return plug.here

    def watched_while_slow(self, plug: Plug) -> tuple[str, int] | None:
        # polling through a known route: python-kasa retries a vanished plug's modules one
        # by one for ~8 s, a refused connect ends that at once
        return plug.here if plug.route is not None else None

    def succeeded(self, plug: Plug, link: Link) -> None:  # type: ignore[override]
        if plug.route is None:
            plug.route = link.route()
        plug.proven, plug.proven_host = link.kind, plug.host

    async def failed(
        self, plug: Plug, exc: BaseException, status: DeviceStatus, detail: str
    ) -> tuple[DeviceStatus, str]:
        if status not in VANISHED:
            # re-learn the transport: a firmware update or the app's Third-Party
            # Compatibility switch changes it (KLAP <-> TPAP) at the same address
            plug.route = None
        if plug.proven_host is not None and plug.host != plug.proven_host:
            # a provisional move failed: back to where it last answered
            if status is DeviceStatus.AUTH_FAILED and plug.host is not None:
                # not the plug's fault: no login gate; and not moved there again for a
                # while (a rejected login each round would lock a plug that is there with
                # another password)
                status = DeviceStatus.ERROR
                detail = f"login rejected at {plug.host}, where a discovery reply put it"
                if len(plug.rejected_at) >= 64:
                    plug.rejected_at.clear()
                plug.rejected_at[plug.host] = time.monotonic() + self.auth_retry_s
            detail += f"; back to {plug.proven_host}, where it last answered"
            plug.host = plug.proven_host
            if plug.route is not None:
                plug.route = plug.route.moved(plug.host)
        return status, detail

    async def after_failure(
        self, plug: Plug, exc: BaseException, status: DeviceStatus, left: float
    ) -> None:
        if plug.unknown and status is DeviceStatus.AUTH_FAILED:
            plug.alive = True  # a device answered a login handshake: shown, with the remedy
        if plug.unknown and isinstance(exc, Untrusted) and exc.endpoint and left > 0:
            # refused before any login (AES): a device that listens is shown, with the remedy
            plug.alive = await connect(*exc.endpoint, left) is None
        if plug.unknown:  # never answered: nothing exported, logged or asked of discovery
            log.debug("%s at %s: %s", plug.device_id, plug.host, status)
            return
        if status in VANISHED and self.discovery.enabled:
            self._discovery_wanted.set()

    def silent(self, plug: Plug) -> bool:
        return plug.unknown  # it may be a spoofed reply

    def keep(self, plug: Plug) -> bool:
        if plug.unknown and plug.failures >= FORGET_AFTER:
            self._forget(plug)
            return False
        return True

    def describe(self, plug: Plug) -> str:
        return f"{plug.name} ({plug.device_id}, {plug.host or 'no address'})"

    def up_note(self, plug: Plug) -> str:
        return plug.info.get("transport", "?")

    def _forget(self, plug: Plug) -> None:
        """An adopted plug that never answered: dropped (a spoofed reply, or a device that
        is no plug), not adopted again for FORGOTTEN_S."""
        mac = plug.device_id
        self.remove(plug)
        if len(self.forgotten) >= REMEMBERED_MAX:
            del self.forgotten[next(iter(self.forgotten))]
        self.forgotten[mac] = time.monotonic() + FORGOTTEN_S
        log.debug("%s at %s never answered: forgotten", mac, plug.host)

    # -- discovery --------------------------------------------------------------------------

    async def _discovery_loop(self) -> None:
        """Probe now, then every discovery.interval, or sooner when a plug goes missing."""
        min_gap = max(self.config.poll_interval, 5.0)
        while not self.stopping:
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
        homes = [p.home for p in self.devices if p.home]
        answered = [p.proven_host for p in self.devices if p.home is None and p.proven_host]
        found = await kasa_discovery.probe(
            [*self.discovery.targets, *homes, *answered],
            wait_s=min(3.0, self.config.poll_timeout),
        )
        for plug in list(self.devices):
            seen = found.get(plug.cfg.device_id)
            if seen is not None and seen.ip != plug.host:
                await self._seen_elsewhere(plug, seen.ip)
        if self._adopt:
            self._adopt_unlisted(found)

    async def _seen_elsewhere(self, plug: Plug, ip: str) -> None:
        """A discovery reply with the plug's MAC from another address: a plug that moved
        (DHCP), or anything else on the LAN that says it is that plug."""
        mac = plug.cfg.device_id
        status = self.publisher.status(mac)
        if plug.rejected_at.get(ip, 0.0) > time.monotonic():
            return  # a login was rejected there (said in the plug's status then)
        if plug.home is not None or (plug.host is not None and status not in VANISHED):
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
        await self.drop(plug)
        plug.failures = 0
        plug.wake.set()

    def _adopt_unlisted(self, found: dict[str, kasa_discovery.FoundPlug]) -> None:
        known = {p.cfg.device_id for p in self.devices}
        now = time.monotonic()
        cap = self.discovery.max_adopted
        adopted = sum(1 for p in self.devices if p.adopted)
        left_out = 0
        for mac, seen in sorted(found.items()):
            # a plug the file lists for other readers only (protocols:) stays theirs
            if mac in known or self.config.device(mac) is not None or not self.config.owns(mac):
                continue
            if self.forgotten.get(mac, 0.0) > now:
                continue
            if adopted >= cap:
                left_out += 1
                continue
            self.forgotten.pop(mac, None)
            plug = Plug(DeviceConfig.unlisted(mac), host=seen.ip, adopted=True)
            self.add(plug)
            adopted += 1
            log.info(
                "%s %s found at %s, not in the config: exported in room/shelf %r",
                seen.model,
                mac,
                seen.ip,
                UNASSIGNED,
            )
        if left_out and not self._capped:
            log.warning(
                "discovery.max_adopted (%d) reached: %d more plugs found are not read"
                " (list the ones you want in the config, or raise discovery.max_adopted)",
                cap,
                left_out,
            )
        self._capped = left_out > 0
