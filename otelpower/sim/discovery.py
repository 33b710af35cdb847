"""UDP discovery: legacy XOR sysinfo on 9999 (and the plug's own port), TDP on 20002/20004."""

from __future__ import annotations

import asyncio
import binascii
import json
import struct
from typing import Any

from .faults import Fault, PlugContext, before_reply
from .xor import xor_decrypt, xor_encrypt

LEGACY_PORT = 9999
TDP_PORTS = (20002, 20004)
_TDP_HEADER = struct.Struct(">BBHHBBII")


def tdp_packet(body: dict[str, Any], serial: int = 0) -> bytes:
    """16-byte TDP header (version 2, reply) with crc32, then the JSON body."""
    payload = json.dumps(body).encode()
    header = _TDP_HEADER.pack(2, 0, 1, len(payload), 17, 0, serial, 0x5A6B7C8D)
    packet = bytearray(header + payload)
    packet[12:16] = binascii.crc32(packet).to_bytes(4, "big")
    return bytes(packet)


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, ctx: PlugContext, kind: str, http_port: int) -> None:
        self._ctx = ctx
        self._kind = kind
        self._http_port = http_port
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self._reply(data)
        if reply is None or self._ctx.fault is Fault.OFFLINE:
            return
        task = asyncio.get_running_loop().create_task(self._send(reply, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reply(self, data: bytes) -> bytes | None:
        device = self._ctx.device
        if self._kind == "legacy":
            try:
                request = json.loads(xor_decrypt(data))
            except ValueError:
                return None
            if not isinstance(request, dict) or "system" not in request:
                return None
            return xor_encrypt(json.dumps({"system": {"get_sysinfo": device.sysinfo()}}).encode())
        if len(data) < 16 or data[0] != 2:
            return None
        return tdp_packet(device.discovery_result(self._http_port))

    async def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if not await before_reply(self._ctx) or self.transport is None:
            return
        self.transport.sendto(reply, addr)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class DiscoveryResponder:
    """The UDP sockets of one plug, all bound to its own loopback address."""

    def __init__(self, ctx: PlugContext) -> None:
        self._ctx = ctx
        self._endpoints: list[_Responder] = []

    async def start(self, host: str, legacy_ports: list[int], tdp: bool, http_port: int) -> None:
        loop = asyncio.get_running_loop()
        plan = [(p, "legacy") for p in legacy_ports] + [(p, "tdp") for p in TDP_PORTS if tdp]
        try:
            for port, kind in plan:
                _, proto = await loop.create_datagram_endpoint(
                    lambda kind=kind: _Responder(self._ctx, kind, http_port),
                    local_addr=(host, port),
                )
                self._endpoints.append(proto)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        endpoints, self._endpoints = self._endpoints, []
        for e in endpoints:
            e.close()
