"""Logging in to one plug: learn what it speaks (UDP discovery, else the transports over TCP,
then TPAP) and open a ``Link`` through the library that speaks it (kasa_link, tapo_link)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from typing import Any

from kasa import Discover
from kasa.exceptions import UnsupportedDeviceError

from otelpower.readers.native.errors import NotFound, TapoError, Untrusted
from otelpower.readers.native.kasa_link import connect, try_transports
from otelpower.readers.native.links import Clients, Link, Trust, transport_kind
from otelpower.readers.native.tapo_link import TapoRoute


def _tpap_announced(exc: UnsupportedDeviceError) -> dict[str, Any] | None:
    """The discovery reply of a plug that announces TPAP (python-kasa refused it)."""
    result = getattr(exc, "discovery_result", None) or {}
    schm = result.get("mgt_encrypt_schm") or {}
    return result if schm.get("encrypt_type") == "TPAP" else None


class _KeepCancel:
    """A cancellation the block swallowed is raised again as it leaves. python-kasa's
    discover_single (0.12, _DiscoverProtocol.wait_for_discovery_to_complete) takes any
    CancelledError that lands once the plug has replied for its own: a poll's timeout was then
    lost (the poll ran on past it) and a stopping reader's task polled on."""

    def __enter__(self) -> None:
        self._task = asyncio.current_task()
        self._before = self._task.cancelling() if self._task is not None else 0

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        swallowed = self._task is not None and self._task.cancelling() > self._before
        if swallowed and kind is not asyncio.CancelledError:
            raise asyncio.CancelledError


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 < value < 65536 else None


def discovery_wait(clients: Clients) -> int:
    """How long a login waits for the plug's discovery reply: a small part of the poll's
    budget (whole seconds, python-kasa's unit), so a firewall that drops UDP leaves time for
    the transports tried over TCP."""
    return max(1, min(clients.request_timeout, math.floor(clients.poll_timeout / 4)))


async def open_link(
    host: str, port: int | None, clients: Clients, trust: Trust | None = None
) -> Link:
    """Learn what the plug speaks and log in: UDP discovery first (its ``encrypt_type`` picks
    the library); without a reply, the transports over TCP (KLAP, XOR; AES only where
    allowed), then the TPAP probe. A pinned plug skips discovery: only its transport is
    tried. The account never goes where ``trust`` says it must not (Untrusted)."""
    trust = trust or Trust()
    if trust.pin == "TPAP":
        return await TapoRoute.at(host, port).open(clients)
    if trust.pin is not None:
        found = await try_transports(host, port, clients, trust)
        if found is None:
            raise NotFound(f"no {trust.pin} plug answered at {host}")
        return found
    wait = discovery_wait(clients)
    try:
        with _KeepCancel():
            dev = await Discover.discover_single(
                host, port=port, credentials=None, timeout=wait, discovery_timeout=wait
            )
    except UnsupportedDeviceError as exc:
        announced = _tpap_announced(exc)
        if announced is None:
            raise
        return await TapoRoute.announced(host, port, announced).open(clients)
    except TimeoutError:  # no discovery reply (python-kasa's TimeoutError is one too)
        found = await try_transports(host, port, clients, trust)
        if found is not None:
            return found
        try:
            return await TapoRoute.at(host, port).open(clients)
        except TapoError as exc:
            if exc.kind in ("offline", "timeout"):
                raise NotFound(f"no discovery reply and no transport answered at {host}") from None
            raise
    if dev is None:  # pragma: no cover - only with on_unsupported
        raise UnsupportedDeviceError("unsupported device")
    # the reply (untrusted) names the transport: checked before the account goes anywhere
    config = dev.config
    try:
        trust.check(transport_kind(config.connection_type), clients)
    except Untrusted as exc:
        exc.endpoint = (host, port or _port(config.connection_type.http_port) or 80)
        raise
    # the per-request timeout is the poll's, not the discovery wait it was made with
    config = replace(config, credentials=clients.kasa, timeout=clients.request_timeout)
    return await connect(config, clients.keep_alive)
