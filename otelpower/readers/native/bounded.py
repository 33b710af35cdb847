"""python-kasa's transports as otelpower uses them: replies read with a size limit
(MAX_REPLY_BYTES), refused before the body is read; KLAP that takes only the account.

python-kasa reads a whole reply into memory and decrypts and parses it on the event loop,
where no timeout can interrupt it: a host that answers with hundreds of megabytes would take
gigabytes and hold every other plug's poll. Both of its ways in take a bound without a
change to python-kasa: an aiohttp session of our own (``DeviceConfig.http_client``, KLAP and
AES) whose responses read at most the limit, and the XOR transport with a reader that
refuses a length header past it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import aiohttp
from kasa.deviceconfig import DeviceConfig
from kasa.httpclient import get_cookie_jar
from kasa.transports import KlapTransport, KlapTransportV2, XorTransport

from otelpower.readers.native.errors import MAX_REPLY_BYTES, NoAccountProof, ReplyTooLarge

_CHUNK = 64 << 10
#: the refusals of the call under ``refusals()`` (python-kasa turns a failed batch into
#: per-query error codes, which lose the cause)
_REFUSED: ContextVar[list[ReplyTooLarge] | None] = ContextVar("refused", default=None)


def _refuse(size: int | None) -> ReplyTooLarge:
    exc = ReplyTooLarge(size)
    if (seen := _REFUSED.get()) is not None:
        seen.append(exc)
    return exc


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """A failure of the block after a refused reply is raised as that refusal."""
    seen: list[ReplyTooLarge] = []
    token = _REFUSED.set(seen)
    try:
        yield
    except Exception as exc:
        if seen and not isinstance(exc, ReplyTooLarge):
            raise seen[0] from exc
        raise
    finally:
        _REFUSED.reset(token)


class BoundedResponse(aiohttp.ClientResponse):
    """A response whose ``read`` stops at MAX_REPLY_BYTES (Content-Length checked first)."""

    async def read(self) -> bytes:
        try:
            if (self.content_length or 0) > MAX_REPLY_BYTES:
                raise _refuse(self.content_length)
            chunks: list[bytes] = []
            size = 0
            while chunk := await self.content.read(_CHUNK):
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise _refuse(None)
                chunks.append(chunk)
        except BaseException:
            self.close()  # the rest is never read: the connection goes
            raise
        return b"".join(chunks)


def http_session(keep_alive: bool = True) -> aiohttp.ClientSession:
    """One plug's HTTP session (python-kasa's cookie jar options, bounded replies). Each
    plug keeps its own: python-kasa clears a session's cookie jar on every request. Without
    ``keep_alive`` every request's connection is closed after it."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=not keep_alive),
        cookie_jar=get_cookie_jar(),
        response_class=BoundedResponse,
    )


class _BoundedReader:
    """A StreamReader whose ``readexactly`` refuses a length past MAX_REPLY_BYTES."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def readexactly(self, n: int) -> bytes:
        if n > MAX_REPLY_BYTES:
            raise _refuse(n)
        return await self._reader.readexactly(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class BoundedXorTransport(XorTransport):
    """python-kasa's XOR transport, reading through _BoundedReader: a reply's 4-byte length
    header past the limit ends the request before its body is read."""

    async def _connect(self, timeout: int) -> None:
        await super()._connect(timeout)
        if self.reader is not None and not isinstance(self.reader, _BoundedReader):
            self.reader = _BoundedReader(self.reader)  # type: ignore[assignment]


class _AccountProof:
    """KLAP whose handshake1 must prove the account: python-kasa also accepts a device that
    proves only its default or blank credentials (a factory-fresh plug), which anyone can
    compute, so any host could pass as a plug. With an account configured, that is refused
    before handshake2 (nothing of the account is sent either way)."""

    def __init__(self, *, config: DeviceConfig) -> None:
        super().__init__(config=config)  # type: ignore[call-arg]
        creds = config.credentials
        self._account = (
            self.generate_auth_hash(creds)  # type: ignore[attr-defined]
            if creds is not None and (creds.username or creds.password)
            else None
        )

    async def perform_handshake1(self) -> tuple[bytes, bytes, bytes]:
        local, remote, auth = await super().perform_handshake1()  # type: ignore[misc]
        if self._account is not None and auth != self._account:
            raise NoAccountProof
        return local, remote, auth


class AccountKlap(_AccountProof, KlapTransport):
    """KLAP v1 (Kasa) with the account's proof required."""


class AccountKlapV2(_AccountProof, KlapTransportV2):
    """KLAP v2 (Tapo, newer Kasa) with the account's proof required."""
