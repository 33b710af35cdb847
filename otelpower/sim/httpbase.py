"""aiohttp listener shared by the KLAP and AES transports (faults, latency, lifecycle)."""

from __future__ import annotations

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

    async def start(self, host: str, port: int) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        app = web.Application(middlewares=[self._middleware])
        for path, handler in self._routes:
            app.router.add_post(path, handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the listening socket and every open connection."""
        runner, self._runner = self._runner, None
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
