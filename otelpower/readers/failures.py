"""A failed poll in words, for every reader: the parts no maker's library changes.

A reader's ``classify`` maps its client library's errors first and hands the rest to
``common``: otelpower's own host out of a resource, the poll's deadline, a socket that
refused or was cut. ``short`` makes any error one line without object reprs.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Iterator

from otelpower.core.fds import OWN_LIMITS
from otelpower.core.model import DeviceStatus

MAX_DETAIL = 200
_REPR = re.compile(r"<[^<>]*? object at 0x[0-9a-f]+>")
_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connect timed out",
    errno.EPIPE: "connection cut",
}


class WrongDevice(Exception):
    """The address answered, but with another MAC than the config's device_id."""


def chain(exc: BaseException) -> Iterator[BaseException]:
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


def in_chain[E: BaseException](exc: BaseException, kind: type[E]) -> E | None:
    return next((e for e in chain(exc) if isinstance(e, kind)), None)


def socket_detail(exc: BaseException) -> str | None:
    """The socket error under a client library's wrapping, in words (no reprs)."""
    for e in chain(exc):
        if isinstance(e, socket.gaierror):
            return f"host name does not resolve ({e.strerror or e})"
        if isinstance(e, OSError) and e.errno is not None:
            return _ERRNO_TEXT.get(e.errno) or os.strerror(e.errno).lower()
    return None


def own_limit(exc: BaseException) -> str | None:
    """A resource otelpower's own host ran out of, in words; None for anything else."""
    for e in chain(exc):
        if isinstance(e, OSError) and e.errno in OWN_LIMITS:
            return f"otelpower's host: {OWN_LIMITS[e.errno]}; the plug is not at fault"
    return None


def _looks_offline(exc: BaseException) -> bool:
    link: BaseException | None = exc
    while link is not None:
        if isinstance(link, OSError | TimeoutError):
            return True
        link = link.__cause__ or link.__context__
    text = str(exc).lower()
    return any(s in text for s in ("connect", "refused", "unreachable", "timed out", "timeout"))


def short(exc: BaseException) -> str:
    """One line: object reprs dropped; a long text cut at a word, marked with an ellipsis."""
    text = _REPR.sub("", " ".join(str(exc).split())).strip() or type(exc).__name__
    if len(text) <= MAX_DETAIL:
        return text
    return text[:MAX_DETAIL].rsplit(" ", 1)[0].rstrip(",;:([") + " …"


def common(
    exc: BaseException, timeout: float, *, offline: bool = False
) -> tuple[DeviceStatus, str]:
    """What any failure is once the reader's own errors are ruled out. ``offline``: the
    library's error may wrap a vanished device (its text or cause says connect/refused)."""
    if isinstance(exc, WrongDevice):
        return DeviceStatus.ERROR, f"wrong device: {exc}"
    if (own := own_limit(exc)) is not None:  # otelpower's, not the device's
        return DeviceStatus.ERROR, own
    if isinstance(exc, TimeoutError):  # our deadline, or the library's per-request timeout
        return DeviceStatus.TIMEOUT, f"no answer within {timeout:g}s"
    if (isinstance(exc, OSError) or offline) and _looks_offline(exc):
        return DeviceStatus.OFFLINE, socket_detail(exc) or short(exc)
    return DeviceStatus.ERROR, short(exc)
