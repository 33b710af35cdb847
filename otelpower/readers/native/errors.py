"""Any native poll failure as a per-device status with a one-line detail.

python-kasa raises typed exceptions. The ``tapo`` client raises plain ``Exception`` whose
text is the Rust Debug form of its error (``Tapo(Unauthorized { kind: "TPAP_CREDENTIALS",
.. })``); ``tapo_kind`` reads it in this one place, and tests provoke every kind from the
unmodified client, so a rewording upstream fails a test instead of giving wrong statuses.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Iterator

from kasa.exceptions import AuthenticationError, KasaException, UnsupportedDeviceError

from otelpower.core.fds import OWN_LIMITS
from otelpower.core.model import DeviceStatus

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


class WrongDevice(Exception):
    """The address answered, but with another MAC than the config's device_id."""


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


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and exceptions among its args (once each)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [x for x in (e.__cause__, e.__context__, getattr(e, "os_error", None)) if x]
        todo += [a for a in e.args if isinstance(a, BaseException)]


def _in_chain[E: BaseException](exc: BaseException, kind: type[E]) -> E | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def classify(exc: BaseException, timeout: float) -> tuple[DeviceStatus, str]:
    """Map any poll failure to a status and a one-line detail (never with credentials)."""
    if isinstance(exc, TapoError):
        return _tapo_status(exc, timeout)
    if isinstance(exc, Untrusted):
        return DeviceStatus.UNSUPPORTED, str(exc)
    if (big := _in_chain(exc, ReplyTooLarge)) is not None:
        return DeviceStatus.ERROR, str(big)
    if (unproven := _in_chain(exc, NoAccountProof)) is not None:
        return DeviceStatus.AUTH_FAILED, str(unproven)
    if isinstance(exc, AuthenticationError):
        return DeviceStatus.AUTH_FAILED, "authentication failed"
    if isinstance(exc, UnsupportedDeviceError):
        return DeviceStatus.UNSUPPORTED, _short(exc)
    if isinstance(exc, NotFound):
        return DeviceStatus.OFFLINE, str(exc)
    if isinstance(exc, WrongDevice):
        return DeviceStatus.ERROR, f"wrong device: {exc}"
    if (own := _own_limit(exc)) is not None:  # otelpower's, not the plug's
        return DeviceStatus.ERROR, own
    if isinstance(exc, TimeoutError):  # our deadline, or python-kasa's per-request timeout
        return DeviceStatus.TIMEOUT, f"no answer within {timeout:g}s"
    if isinstance(exc, OSError | KasaException) and _looks_offline(exc):
        return DeviceStatus.OFFLINE, socket_detail(exc) or _short(exc)
    return DeviceStatus.ERROR, _short(exc)


_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connect timed out",
    errno.EPIPE: "connection cut",
}


def socket_detail(exc: BaseException) -> str | None:
    """The socket error under a client library's wrapping, in words (no reprs)."""
    for e in _chain(exc):
        if isinstance(e, socket.gaierror):
            return f"host name does not resolve ({e.strerror or e})"
        if isinstance(e, OSError) and e.errno is not None:
            return _ERRNO_TEXT.get(e.errno) or os.strerror(e.errno).lower()
    return None


def _own_limit(exc: BaseException) -> str | None:
    """A resource otelpower's own host ran out of, in words; None for anything else."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in OWN_LIMITS:
            return f"otelpower's host: {OWN_LIMITS[e.errno]}; the plug is not at fault"
    return None


def _looks_offline(exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, OSError | TimeoutError):
            return True
        chain = chain.__cause__ or chain.__context__
    text = str(exc).lower()
    return any(s in text for s in ("connect", "refused", "unreachable", "timed out", "timeout"))


_REPR = re.compile(r"<[^<>]*? object at 0x[0-9a-f]+>")
MAX_DETAIL = 200


def _short(exc: BaseException) -> str:
    """One line: object reprs dropped; a long text cut at a word, marked with an ellipsis."""
    text = _REPR.sub("", " ".join(str(exc).split())).strip() or type(exc).__name__
    if len(text) <= MAX_DETAIL:
        return text
    return text[:MAX_DETAIL].rsplit(" ", 1)[0].rstrip(",;:([") + " …"
