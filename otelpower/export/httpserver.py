"""The pull endpoint: Prometheus /metrics plus /healthz and /readyz probes, in a thread.

Scrapes are answered from this server's own threads with the latest rendering (see
otelpower.export.exposition), so they never wait on the event loop, on a plug, or on a render.
``otelpower run`` serves it from a process of its own (otelpower.export.pullserver).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from otelpower import __version__
from otelpower.export.exposition import (
    CONTENT_TYPE,
    OPENMETRICS_TYPE,
    Rendering,
    to_openmetrics,
    wants_openmetrics,
)
from otelpower.export.webconfig import Users, WebConfig

#: liveness fails when the event loop has not ticked for this long
STALL_S = 30.0
#: a TLS client that has not finished its handshake by then is dropped
HANDSHAKE_TIMEOUT_S = 10.0


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


def _authorized(users: Users | None, header: str) -> bool:
    if users is None:
        return True
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(sep) and users.check(user, password)


class _Converted:
    """The OpenMetrics form of the latest rendering, made once when first asked for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = -1
        self._plain = self._gzipped = b""

    def get(self, rendering: Rendering, gzipped: bool) -> bytes:
        with self._lock:
            if rendering.seq != self._seq:
                self._plain = to_openmetrics(rendering.body)
                self._gzipped = gzip.compress(self._plain, 1)
                self._seq = rendering.seq
            return self._gzipped if gzipped else self._plain


def _app(
    source: Source, health: Health, users: Users | None = None
) -> Callable[..., Iterable[bytes]]:
    converted = _Converted()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        # probes stay open (they tell nothing about the house); everything else needs a user
        if path not in ("/healthz", "/readyz") and not _authorized(
            users, environ.get("HTTP_AUTHORIZATION", "")
        ):
            start_response(
                "401 Unauthorized",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("WWW-Authenticate", 'Basic realm="otelpower"'),
                ],
            )
            return [b"unauthorized\n"]
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
        openmetrics = wants_openmetrics(environ.get("HTTP_ACCEPT", ""))
        headers = [
            ("Content-Type", OPENMETRICS_TYPE if openmetrics else CONTENT_TYPE),
            ("Vary", "Accept, Accept-Encoding"),
            ("X-Otelpower-Rendering", str(rendering.seq)),
        ]
        gzipped = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        if openmetrics:
            body = converted.get(rendering, gzipped)
        else:
            body = rendering.gzipped if gzipped else rendering.body
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app


class _TlsServer(_Server):
    """TLS per connection, in the connection's own thread (a slow handshake holds no one)."""

    tls: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # plain HTTP, a wrong or missing client certificate: the client sees it
        conn.settimeout(None)
        super().finish_request(conn, client_address)

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_RDWR)
        request.close()


def serve(
    host: str, port: int, source: Source, health: Health, web: WebConfig | None = None
) -> WSGIServer:
    """Bind ``host:port`` (IPv4 or IPv6; port 0 = a free one) and serve in a daemon thread;
    ``web`` adds TLS and basic auth."""
    base = _TlsServer if web is not None and web.tls is not None else _Server
    attrs: dict[str, Any] = {}
    if ":" in host:
        attrs["address_family"] = socket.AF_INET6
    if web is not None and web.tls is not None:
        attrs["tls"] = web.tls.context()
    server_class = type("_BoundServer", (base,), attrs) if attrs else base
    users = web.users if web is not None else None
    server = make_server(
        host, port, _app(source, health, users), server_class=server_class, handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
