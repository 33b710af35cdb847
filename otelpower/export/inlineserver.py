"""The pull endpoint on a thread of the main process (``prometheus.process: inline``).

A process of its own (otelpower.export.pullserver) keeps scrapes from waiting on a main
process that a large fleet keeps busy, for a second interpreter (~11 MB PSS). A small fleet
leaves the main process idle nearly all the time, so ``auto`` serves it from here: the same
HTTP server (otelpower.export.httpserver, on an event loop in a daemon thread of its own),
given each rendering as it is made and the main process's own Health.
"""

from __future__ import annotations

from otelpower.export.httpserver import Health, HttpServer, Rendering
from otelpower.export.pullserver import listen


class InlineServer:
    """What PullServer offers the pipeline (start, publish, stop), in this process."""

    restarts = 0  # a thread of this process: it ends with it

    def __init__(self, host: str, port: int, health: Health, web_config: str | None = None) -> None:
        self.host, self.port, self.health = host, port, health
        self.web_config = web_config
        self.tls = False
        self._rendering: Rendering | None = None
        self._server: HttpServer | None = None

    def current(self) -> Rendering | None:
        return self._rendering

    def start(self) -> int:
        """Listen; returns the bound port or raises PullServerError (as PullServer does)."""
        self._server, self.tls = listen(self.host, self.port, self, self.health, self.web_config)
        self.port = self._server.server_port
        return self.port

    def publish(self, rendering: Rendering) -> None:
        self._rendering = rendering  # served from the next request on

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
