"""How the native reader reaches one plug: a logged-in link through one of two client libraries.

python-kasa speaks Kasa IOT (XOR, KLAP v1) and Tapo KLAP v2 / AES; the ``tapo`` client speaks
TPAP, the login of Tapo firmware 1.4.x with Third-Party Compatibility off. ``open_link``
learns from the plug which one to use; a ``Link`` keeps the session and its ``route`` opens
it again without discovery. The reader only ever sees ``fetch`` (HA-coordinator style).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from kasa import Credentials, Discover
from kasa.exceptions import UnsupportedDeviceError

from otelpower.core.model import Reading
from otelpower.readers.native.errors import NotFound, TapoError, Untrusted

if TYPE_CHECKING:
    from tapo import ApiClient


@dataclass(frozen=True)
class Fetched:
    """One poll's answer: identity (model, firmware, transport), readings and the MAC."""

    info: dict[str, str]
    readings: tuple[Reading, ...]
    mac: str | None


class Link(Protocol):
    #: the transport family the plug logged in with: one of settings.PINS
    kind: str

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

    def moved(self, host: str) -> Route:
        """The same transport at another address (a plug that moved)."""
        ...


@dataclass(frozen=True)
class Trust:
    """What a login to one plug may do: ``pin`` limits it to one transport (the user's word);
    ``proven`` is the transport the plug logged in with before (a plug that proved itself over
    KLAP or TPAP is never sent the password over AES because a reply says so)."""

    pin: str | None = None
    proven: str | None = None

    def check(self, transport: str, clients: Clients) -> None:
        """Raise Untrusted when a login over ``transport`` would break the pin or hand the
        account to a device that has not proven it is the plug."""
        if self.pin is not None and transport != self.pin:
            raise Untrusted(f"answers as {transport}, but its native.transport is {self.pin}")
        if transport != "AES" or self.pin == "AES":
            return
        if self.proven in PROVING:
            raise Untrusted(
                f"answers as AES after logging in over {self.proven}: a downgrade that would"
                " send the account password to whatever answers; not logged in"
            )
        if not clients.allow_aes and clients.kasa is not None:
            raise Untrusted(AES_REFUSED)


AES_REFUSED = (
    "speaks AES, whose login sends the account password to whatever answers: not logged in"
    " (to read it, set native: {host: ..., transport: AES} for this plug, or"
    " credentials.allow_aes)"
)


#: where the plug proves it knows the account before anything derived from the password is
#: sent (KLAP's server hash, TPAP's PAKE); AES sends the password to whatever answers
PROVING = ("KLAP", "TPAP")


@dataclass
class Clients:
    """The account as each library takes it, the per-request timeout (whole seconds), and
    whether the account may go to plugs that speak AES (``credentials.allow_aes``)."""

    username: str = ""
    password: str = field(default="", repr=False)
    poll_timeout: float = 10.0
    allow_aes: bool = False
    #: links keep their connection open between polls (off past the reader's socket budget)
    keep_alive: bool = True
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


#: device types python-kasa logs in to with a camera's or a hub's transport (SslAes, Linkie,
#: Ssl), whatever ``encrypt_type`` the reply names: they send the account's email and an MD5
#: of its password. No plug is one; a reply that says so gets no login.
_NOT_PLUGS = ("SMART.IPCAMERA", "SMART.TAPODOORBELL", "IOT.IPCAMERA", "SMART.TAPOROBOVAC")


def transport_kind(connection: Any) -> str:
    """``XOR`` / ``KLAP`` / ``AES`` of a python-kasa DeviceConnectionParameters; raises
    Untrusted for a connection python-kasa would make with a camera's or hub's transport."""
    family = str(connection.device_family.value)
    kind = str(connection.encryption_type.value).upper()
    if family in _NOT_PLUGS or (kind == "AES" and connection.https):
        raise Untrusted(f"announces itself as {family} (https: {connection.https}), not a plug")
    return kind


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 < value < 65536 else None


def discovery_wait(clients: Clients) -> int:
    """How long a login waits for the plug's discovery reply: a small part of the poll's
    budget (whole seconds, python-kasa's unit), so a firewall that drops UDP leaves time for
    the transports tried over TCP."""
    return max(1, min(clients.request_timeout, math.floor(clients.poll_timeout / 4)))


async def open_link(host: str, port: int | None, clients: Clients, trust: Trust = Trust()) -> Link:
    """Learn what the plug speaks and log in: UDP discovery first (its ``encrypt_type`` picks
    the library); without a reply, the transports over TCP (KLAP, XOR; AES only where
    allowed), then the TPAP probe. A pinned plug skips discovery: only its transport is
    tried. The account never goes where ``trust`` says it must not (Untrusted)."""
    from otelpower.readers.native.kasa_link import connect, try_transports
    from otelpower.readers.native.tapo_link import TapoRoute

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
