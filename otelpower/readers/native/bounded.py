"""Replies read with a size limit (MAX_REPLY_BYTES), refused before the body is read.

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
from kasa.httpclient import get_cookie_jar
from kasa.transports import XorTransport

from otelpower.readers.native.errors import MAX_REPLY_BYTES, ReplyTooLarge

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


def http_session() -> aiohttp.ClientSession:
    """One plug's HTTP session (python-kasa's cookie jar options, bounded replies). Each
    plug keeps its own: python-kasa clears a session's cookie jar on every request."""
    return aiohttp.ClientSession(cookie_jar=get_cookie_jar(), response_class=BoundedResponse)


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
