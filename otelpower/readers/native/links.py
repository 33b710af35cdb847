"""How the native reader reaches one plug: a logged-in link through one of two client libraries.

python-kasa speaks Kasa IOT (XOR, KLAP v1) and Tapo KLAP v2 / AES; the ``tapo`` client speaks
TPAP, the login of Tapo firmware 1.4.x with Third-Party Compatibility off. ``open_link``
learns from the plug which one to use; a ``Link`` keeps the session and its ``route`` opens
it again without discovery (opening.py logs in). The reader only ever sees ``fetch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kasa import Credentials

from otelpower.readers.native.errors import Untrusted
from otelpower.readers.polling import Fetched
from otelpower.readers.polling import Link as PolledLink

__all__ = ["AES_REFUSED", "PROVING", "Clients", "Fetched", "Link", "Route", "Trust"]

if TYPE_CHECKING:
    from tapo import ApiClient


class Link(PolledLink, Protocol):
    """A logged-in plug; ``endpoint`` is where a failed poll's cause is checked by
    connecting (python-kasa reports a vanished plug as failed queries, not a refused socket)."""

    #: the transport family the plug logged in with: one of settings.PINS
    kind: str

    def route(self) -> Route: ...


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
