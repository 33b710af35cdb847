"""Legacy IOT protocol: TCP, 4-byte big-endian length, "autokey" XOR starting at 171."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct

from .faults import GARBAGE, Fault, PlugContext, before_reply, cut, plaintext

_LEN = struct.Struct(">I")
_KEY0 = 171


def xor_encrypt(plain: bytes, key: int = _KEY0) -> bytes:
    """Autokey XOR, without the length prefix."""
    out = bytearray()
    for b in plain:
        key ^= b
        out.append(key)
    return bytes(out)


def xor_decrypt(cipher: bytes) -> bytes:
    """Inverse of :func:`xor_encrypt`."""
    key = _KEY0
    out = bytearray()
    for b in cipher:
        out.append(key ^ b)
        key = b
    return bytes(out)


class XorServer:
    """TCP listener(s) of one legacy plug; connections stay open between requests."""

    def __init__(self, ctx: PlugContext) -> None:
        self._ctx = ctx
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for s in servers:
            s.close()
        self.drop_sessions()
        for s in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 1.0)

    def drop_sessions(self) -> None:
        """Close every open connection (what a reboot does)."""
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                size = _LEN.unpack(await reader.readexactly(4))[0]
                payload = await reader.readexactly(size)
                if not await before_reply(self._ctx):
                    break
                wrong_key = self._ctx.fault is Fault.WRONG_KEY
                if self._ctx.fault is Fault.GARBAGE:
                    reply = GARBAGE
                else:
                    try:
                        request = json.loads(xor_decrypt(payload))
                    except ValueError:
                        break
                    plain = plaintext(self._ctx, self._ctx.device.handle(request))
                    reply = xor_encrypt(plain, _KEY0 ^ 0x5A if wrong_key else _KEY0)
                writer.write(_LEN.pack(len(reply)) + cut(reply, self._ctx.fault))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except RuntimeError:  # uvloop: the connection was dropped (a reboot) mid-reply
            if not writer.transport.is_closing():
                raise
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
