"""The pull endpoint: Prometheus /metrics plus /healthz and /readyz probes, in a thread.

Scrapes are answered from this server's own threads, so they never wait on the event loop
or on a plug.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

#: liveness fails when the event loop has not ticked for this long
STALL_S = 30.0


@dataclass
class Health:
    """Liveness: the event loop ticks (``beat``). Readiness: the readers were started."""

    ready: bool = False
    last_beat: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def beat(self) -> None:
        self.last_beat = self.clock()

    def live(self) -> tuple[bool, str]:
        if self.last_beat is None:
            return True, "ok: starting"
        age = self.clock() - self.last_beat
        if age > STALL_S:
            return False, f"event loop stalled for {age:.0f}s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        return (True, "ok") if self.ready else (False, "readers not started")


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def _app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok, text = health.live() if path == "/healthz" else health.readiness()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode() + b"\n"]
        return metrics(environ, start_response)

    return app


def serve(host: str, port: int, registry: CollectorRegistry, health: Health) -> WSGIServer:
    """Bind ``host:port`` (IPv4 or IPv6; port 0 = a free one) and serve in a daemon thread."""
    server_class = _Server
    if ":" in host:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    server = make_server(
        host, port, _app(registry, health), server_class=server_class, handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
