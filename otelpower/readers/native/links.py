"""How the native reader reaches one plug: a logged-in link through one of two client libraries.

python-kasa speaks Kasa IOT (XOR, KLAP v1) and Tapo KLAP v2 / AES; the ``tapo`` client speaks
TPAP, the login of Tapo firmware 1.4.x with Third-Party Compatibility off. ``open_link``
learns from the plug which one to use; a ``Link`` keeps the session and its ``route`` opens
it again without discovery. The reader only ever sees ``fetch`` (HA-coordinator style).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kasa import Credentials, Discover
from kasa.exceptions import UnsupportedDeviceError

from otelpower.core.model import Reading
from otelpower.readers.native.errors import NotFound, TapoError

if TYPE_CHECKING:
    from tapo import ApiClient


@dataclass(frozen=True)
class Fetched:
    """One poll's answer: identity (model, firmware, transport), readings and the MAC."""

    info: dict[str, str]
    readings: tuple[Reading, ...]
    mac: str | None


class Link(Protocol):
    async def fetch(self) -> Fetched: ...

    async def close(self) -> None: ...

    def route(self) -> Route: ...

    def endpoint(self) -> tuple[str, int] | None:
        """Host and TCP port, where a failed poll's cause should be checked by connecting
        (python-kasa reports a vanished plug as failed queries, not as a refused socket)."""
        ...


class Route(Protocol):
    """How to log in to a plug whose transport is known (no discovery)."""

    async def open(self, clients: Clients) -> Link: ...


@dataclass
class Clients:
    """The account as each library takes it, and the per-request timeout (whole seconds)."""

    username: str = ""
    password: str = field(default="", repr=False)
    poll_timeout: float = 10.0
    _tapo: ApiClient | None = field(default=None, repr=False)

    @property
    def request_timeout(self) -> int:
        return max(1, round(self.poll_timeout / 2))

    @property
    def kasa(self) -> Credentials | None:
        present = self.username or self.password
        return Credentials(self.username, self.password) if present else None

    def tapo(self) -> ApiClient:
        """One ``tapo.ApiClient`` per reader; its timeout is poll.timeout in whole seconds."""
        if self._tapo is None:
            from tapo import ApiClient

            timeout = max(1, math.ceil(self.poll_timeout))
            self._tapo = ApiClient(self.username, self.password, timeout)
        return self._tapo


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


async def open_link(host: str, port: int | None, clients: Clients) -> Link:
    """Learn what the plug speaks and log in: UDP discovery first (its ``encrypt_type`` picks
    the library); without a reply, python-kasa's transports over TCP, then the TPAP probe."""
    from otelpower.readers.native.kasa_link import connect, disconnect
    from otelpower.readers.native.tapo_link import TapoRoute

    wait = clients.request_timeout
    try:
        with _KeepCancel():
            dev = await Discover.discover_single(
                host, port=port, credentials=clients.kasa, timeout=wait, discovery_timeout=wait
            )
    except UnsupportedDeviceError as exc:
        announced = _tpap_announced(exc)
        if announced is None:
            raise
        return await TapoRoute.announced(host, port, announced).open(clients)
    except TimeoutError:  # no discovery reply (python-kasa's TimeoutError is one too)
        found = await Discover.try_connect_all(
            host, port=port, timeout=wait, credentials=clients.kasa
        )
        if found is not None:  # logged in with python-kasa's batch size: again with ours
            await disconnect(found)
            return await connect(found.config)
        try:
            return await TapoRoute.at(host, port).open(clients)
        except TapoError as exc:
            if exc.kind in ("offline", "timeout"):
                raise NotFound(f"no discovery reply and no transport answered at {host}") from None
            raise
    if dev is None:  # pragma: no cover - only with on_unsupported
        raise UnsupportedDeviceError("unsupported device")
    # not connected yet: its config (transport, credentials) connects with our batch size
    return await connect(dev.config)
