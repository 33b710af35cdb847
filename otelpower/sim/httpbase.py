"""aiohttp listener shared by the KLAP and AES transports (faults, latency, lifecycle)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from .faults import GARBAGE, Fault, PlugContext, before_reply, cut

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpListener:
    """One aiohttp site on (host, port) whose replies obey the plug's fault mode."""

    def __init__(self, ctx: PlugContext, routes: list[tuple[str, Handler]]) -> None:
        self._ctx = ctx
        self._routes = routes
        self._runner: web.AppRunner | None = None
        self._accepting: asyncio.Task[None] | None = None
        self.tls_connections = 0  # connections that began a TLS handshake
        self._sock = socket.socket()
        self._sock.close()

    async def start(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Bind and serve; returns the bound port (useful with port 0).

        With ``ssl_context`` the port answers both HTTPS and plain HTTP, told apart by the
        first byte (the TPAP client probes over HTTP on the port it then uses for HTTPS).
        """
        app = web.Application(middlewares=[self._middleware])
        for path, handler in self._routes:
            app.router.add_post(path, handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            if ssl_context is None:
                await web.TCPSite(runner, host, port, reuse_address=True).start()
                bound = int(runner.addresses[0][1])
            else:
                bound = self._listen_both(runner, host, port, ssl_context)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return bound

    def _listen_both(self, runner: web.AppRunner, host: str, port: int, tls: ssl.SSLContext) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept(runner, tls))
        return int(sock.getsockname()[1])

    async def _accept(self, runner: web.AppRunner, tls: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        handoffs: set[asyncio.Task[None]] = set()
        try:
            while True:
                conn, _ = await loop.sock_accept(self._sock)
                task = loop.create_task(self._handoff(runner, tls, conn))
                handoffs.add(task)
                task.add_done_callback(handoffs.discard)
        finally:
            for task in handoffs:
                task.cancel()

    async def _handoff(
        self, runner: web.AppRunner, tls: ssl.SSLContext, conn: socket.socket
    ) -> None:
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            async with asyncio.timeout(10):
                await readable
            first = conn.recv(1, socket.MSG_PEEK)
        except (TimeoutError, OSError):
            conn.close()
            return
        finally:
            loop.remove_reader(conn.fileno())
        if runner.server is None or not first:
            conn.close()
            return
        is_tls = first == b"\x16"
        self.tls_connections += is_tls
        await loop.connect_accepted_socket(runner.server, conn, ssl=tls if is_tls else None)

    async def stop(self) -> None:
        """Close the listening socket and every open connection."""
        runner, self._runner = self._runner, None
        accepting, self._accepting = self._accepting, None
        if accepting is not None:
            accepting.cancel()
            await asyncio.gather(accepting, return_exceptions=True)
            self._sock.close()
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = self._ctx
        if ctx.fault is Fault.OFFLINE or not await before_reply(ctx):
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        if ctx.fault is Fault.GARBAGE:
            await request.read()
            return web.Response(body=GARBAGE, content_type="application/octet-stream")
        response = await handler(request)
        if ctx.fault is Fault.TRUNCATED and isinstance(response, web.Response) and response.body:
            response.body = cut(bytes(response.body), ctx.fault)  # type: ignore[arg-type]
        return response
