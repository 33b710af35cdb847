"""The pull endpoint: Prometheus /metrics plus /healthz and /readyz probes, in a thread.

Scrapes are answered from this server's own threads with the latest rendering (see
otelpower.export.exposition), so they never wait on the event loop, on a plug, or on a render.
``otelpower run`` serves it from a process of its own (otelpower.export.pullserver).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from otelpower import __version__
from otelpower.export.exposition import CONTENT_TYPE, Rendering

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


class Source(Protocol):
    def current(self) -> Rendering | None: ...


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    # wsgiref sends headers and body in two writes; with Nagle the body can wait for the
    # client's delayed ACK of the headers.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None


#: ``/``: what a person opening the endpoint in a browser sees (the exporter guidelines' page)
LANDING_PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>otelpower</title></head>
<body><h1>otelpower {__version__}</h1>
<p>Smart-plug power readings as OpenTelemetry metrics.</p>
<ul><li><a href="metrics">/metrics</a>: the readings, in the Prometheus text format</li>
<li><a href="healthz">/healthz</a>: liveness</li>
<li><a href="readyz">/readyz</a>: readiness</li></ul>
</body></html>
""".encode()


def _app(source: Source, health: Health) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/":
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(LANDING_PAGE))),
                ],
            )
            return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [LANDING_PAGE]
        if path in ("/healthz", "/readyz"):
            ok, text = health.live() if path == "/healthz" else health.readiness()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode() + b"\n"]
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: try /metrics\n"]
        rendering = source.current()
        if rendering is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting: no metrics rendered yet\n"]
        headers = [
            ("Content-Type", CONTENT_TYPE),
            ("Vary", "Accept-Encoding"),
            ("X-Otelpower-Rendering", str(rendering.seq)),
        ]
        body = rendering.body
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = rendering.gzipped
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app


def serve(host: str, port: int, source: Source, health: Health) -> WSGIServer:
    """Bind ``host:port`` (IPv4 or IPv6; port 0 = a free one) and serve in a daemon thread."""
    server_class = _Server
    if ":" in host:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    server = make_server(
        host, port, _app(source, health), server_class=server_class, handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
