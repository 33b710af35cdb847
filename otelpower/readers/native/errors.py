"""Any native poll failure as a per-device status with a one-line detail.

python-kasa raises typed exceptions. The ``tapo`` client raises plain ``Exception`` whose
text is the Rust Debug form of its error (``Tapo(Unauthorized { kind: "TPAP_CREDENTIALS",
.. })``); ``tapo_kind`` reads it in this one place, and tests provoke every kind from the
unmodified client, so a rewording upstream fails a test instead of giving wrong statuses.
"""

from __future__ import annotations

import re

from kasa.exceptions import AuthenticationError, KasaException, UnsupportedDeviceError

from otelpower.core.model import DeviceStatus
from otelpower.readers.failures import MAX_DETAIL, WrongDevice, common, in_chain, socket_detail
from otelpower.readers.failures import short as _short

__all__ = ["MAX_DETAIL", "WrongDevice", "classify", "socket_detail"]

LOCKED_DETAIL = "locked by too many failed logins; wait, then check the password"

# (kind, substrings in the client's error text): first match wins
_TAPO_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("locked", ('"TPAP_AUTH_ATTEMPTS_LIMIT"',)),
    ("credentials", ('"TPAP_CREDENTIALS"', '"HASH_MISMATCH"', '"TPAP_HASH_MISMATCH"')),
    ("session", ('"TPAP_SESSION_INVALID"', '"SESSION_TIMEOUT"')),
    ("unsupported", ("UnsupportedProtocol {",)),
    ("timeout", ("TimedOut", "Timeout", "timed out")),
    ("offline", ("ConnectError", "ConnectionRefused", "Unreachable", "IncompleteMessage")),
    ("unknown_method", ("RequestMethodNotSupported", "-1002", "UnknownMethod")),
    ("reply", ("Serde(",)),
)
_SECRETS = re.compile(r"stok=[^/\s\"]+")


class TapoError(Exception):
    """An error of the ``tapo`` client, with its kind read from the text once."""

    def __init__(self, text: str) -> None:
        text = _SECRETS.sub("stok=...", " ".join(text.split()))
        super().__init__(text)
        self.kind = tapo_kind(text)


def tapo_kind(text: str) -> str:
    """``locked``, ``credentials``, ``session``, ``unsupported``, ``timeout``, ``offline``,
    ``unknown_method``, ``reply`` or ``other``."""
    for kind, needles in _TAPO_KINDS:
        if any(n in text for n in needles):
            return kind
    return "other"


def _tapo_status(exc: TapoError, timeout: float) -> tuple[DeviceStatus, str]:
    match exc.kind:
        case "locked":
            return DeviceStatus.AUTH_FAILED, LOCKED_DETAIL
        case "credentials":
            return DeviceStatus.AUTH_FAILED, "authentication failed (password rejected)"
        case "session":
            return DeviceStatus.ERROR, "session lost again right after a new login"
        case "unsupported":
            variant = re.search(r"not supported yet \(([^)]*)\)", str(exc))
            return DeviceStatus.UNSUPPORTED, (
                f"TPAP variant not supported ({variant.group(1)})" if variant else _short(exc)
            )
        case "timeout":
            return DeviceStatus.TIMEOUT, f"no answer within {timeout:g}s"
        case "offline":
            return DeviceStatus.OFFLINE, "connection refused or cut"
        case "reply":
            return DeviceStatus.ERROR, f"reply not understood: {_short(exc)}"
    return DeviceStatus.ERROR, _short(exc)


class NotFound(Exception):
    """The plug has no known address yet (no host configured, not seen by discovery)."""


class NoAccountProof(AuthenticationError):
    """A KLAP device that proved only python-kasa's default or blank credentials."""

    def __init__(self) -> None:
        super().__init__(
            "the device proved only python-kasa's default or blank KLAP credentials, not the"
            " account's: not a plug of this account (or not bound to one yet)"
        )


class Untrusted(Exception):
    """A login refused before it began: the account would go to a device that has not
    proven it is the plug (AES without opt-in, a downgrade, a transport against the pin)."""

    #: where the device said it listens (host, TCP port), when a discovery reply said so
    endpoint: tuple[str, int] | None = None


#: a plug's reply is a few kB (an HS300 with six outlets ~6 kB): anything past this is refused
MAX_REPLY_BYTES = 1 << 20


class ReplyTooLarge(Exception):
    """A reply announced or sent more than MAX_REPLY_BYTES (refused before it is read)."""

    def __init__(self, size: int | None) -> None:
        said = f"{size:,} bytes" if size is not None else "more"
        super().__init__(f"a reply of {said} refused (a plug's is a few kB; the limit is 1 MiB)")


def classify(exc: BaseException, timeout: float) -> tuple[DeviceStatus, str]:
    """Map any poll failure to a status and a one-line detail (never with credentials)."""
    if isinstance(exc, TapoError):
        return _tapo_status(exc, timeout)
    if isinstance(exc, Untrusted):
        return DeviceStatus.UNSUPPORTED, str(exc)
    if (big := in_chain(exc, ReplyTooLarge)) is not None:
        return DeviceStatus.ERROR, str(big)
    if (unproven := in_chain(exc, NoAccountProof)) is not None:
        return DeviceStatus.AUTH_FAILED, str(unproven)
    if isinstance(exc, AuthenticationError):
        return DeviceStatus.AUTH_FAILED, "authentication failed"
    if isinstance(exc, UnsupportedDeviceError):
        return DeviceStatus.UNSUPPORTED, _short(exc)
    if isinstance(exc, NotFound):
        return DeviceStatus.OFFLINE, str(exc)
    # ours, the deadline, a socket; python-kasa's own errors that wrap a vanished plug
    return common(exc, timeout, offline=isinstance(exc, KasaException))
