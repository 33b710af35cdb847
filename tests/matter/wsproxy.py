"""A WebSocket man-in-the-middle between the Matter reader and the real server, for faults.

Forwards every frame both ways; server frames can be delayed (a slow server) and frames the
server never sends can be pushed to the client (unknown events, malformed messages).
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web


class FaultProxy:
    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.delay_s = 0.0  # before each server -> client frame
        self._clients: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/ws"
        return self.url

    async def stop(self) -> None:
        for ws in list(self._clients):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def inject(self, text: str) -> int:
        """Send ``text`` to every connected client; how many got it."""
        for ws in list(self._clients):
            await ws.send_str(text)
        return len(self._clients)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        self._clients.add(client)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self.upstream_url, max_msg_size=0) as server,
        ):
            up = asyncio.create_task(self._pump(client, server, delay=False))
            down = asyncio.create_task(self._pump(server, client, delay=True))
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            for task in (up, down):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._clients.discard(client)
        await client.close()
        return client

    async def _pump(self, src, dst, *, delay: bool) -> None:  # type: ignore[no-untyped-def]
        async for msg in src:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            if delay and self.delay_s:
                await asyncio.sleep(self.delay_s)
            await dst.send_str(msg.data)
