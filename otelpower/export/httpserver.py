"""The pull endpoint: Prometheus /metrics plus /healthz and /readyz probes.

Scrapes are answered with the latest rendering (see otelpower.export.exposition), so they
never wait on the event loop, on a plug, or on a render. ``otelpower run`` serves it from a
process of its own (otelpower.export.pullserver), which imports this module and little else:
no renderer (prometheus_client), no YAML, no web config unless one is given; the content types
and the OpenMetrics negotiation are therefore here, and the text is converted only when a
client asks for OpenMetrics.

One asyncio loop in one thread serves every connection, so slow or hostile clients cost a
socket each, not a thread. Every connection has deadlines (its request head, keep-alive
idle time, taking the response); at the connection cap the one that made no progress for
longest is dropped to admit the new one; a body is shared by every client reading it
(asyncio queues a view of it, not a copy), so clients that never read pin no copies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from otelpower import __version__, eventloop
from otelpower.core.fds import fd_limit
from otelpower.export.threads import start_thread

if TYPE_CHECKING:
    from otelpower.export.webconfig import Users, WebConfig

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

#: liveness fails when the event loop has not ticked for this long
STALL_S = 30.0
#: device values are no longer served (and readiness fails) when the main process has not
#: ticked for this long: they may be older than any poll, a plug that went away included
STALE_TICK_S = 10.0
#: ... or when its newest rendering is this old (plus COST_FACTOR times its cost: a slow
#: rendering is paced, see otelpower.export.exposition); renderings come every few seconds
STALE_RENDERING_S = 30.0
#: otelpower.export.exposition.COST_FACTOR (a test keeps them equal; not imported, so that the
#: endpoint process does not load the renderer)
COST_FACTOR = 10.0


class Rendering(Protocol):
    """What is served: an otelpower.export.exposition.Rendering, or what the endpoint process
    received of one."""

    @property
    def body(self) -> bytes: ...
    @property
    def gzipped(self) -> bytes: ...
    @property
    def rendered_at(self) -> float: ...  # time.monotonic(): a wall-clock step is no age
    @property
    def cost_s(self) -> float: ...
    @property
    def seq(self) -> int: ...


@dataclass(frozen=True)
class Limits:
    """What one connection may take; defaults fit a Prometheus scraping every 15-60 s."""

    #: the cap; lowered to fit the file-descriptor limit
    max_connections: int = 1024
    #: a request's head (line and headers) must be complete this long after its first byte
    head_timeout_s: float = 10.0
    #: a keep-alive connection with no new request is closed after this
    idle_timeout_s: float = 120.0
    #: a response the client has not taken by then is dropped with its connection
    write_timeout_s: float = 30.0
    #: TLS handshakes
    handshake_timeout_s: float = 10.0
    max_head_bytes: int = 16 * 1024
    backlog: int = 1024


@dataclass
class Health:
    """Liveness: the event loop ticks (``beat``). Readiness: the readers were started."""

    ready: bool = False
    last_beat: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def beat(self) -> None:
        self.last_beat = self.clock()

    def _age(self) -> float:
        return 0.0 if self.last_beat is None else self.clock() - self.last_beat

    def live(self) -> tuple[bool, str]:
        if self.last_beat is None:
            return True, "ok: starting"
        if (age := self._age()) > STALL_S:
            return False, f"event loop stalled for {age:.0f}s"
        return True, "ok"

    def readiness(self, rendering: Rendering | None = None) -> tuple[bool, str]:
        if not self.ready:
            return False, "readers not started"
        return (False, why) if (why := self.stale(rendering)) else (True, "ok")

    def stale(self, rendering: Rendering | None = None) -> str | None:
        """Why the values must not be served (the main process stalled), or None."""
        if (age := self._age()) > STALE_TICK_S:
            return f"otelpower's main process has not ticked for {age:.0f}s"
        if rendering is not None:
            age = time.monotonic() - rendering.rendered_at
            if age > STALE_RENDERING_S + COST_FACTOR * rendering.cost_s:
                return f"the newest rendering is {age:.0f}s old"
        return None


class Source(Protocol):
    def current(self) -> Rendering | None: ...


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

_TEXT = "text/plain; charset=utf-8"


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


def to_openmetrics(body: bytes) -> bytes:
    """The same series in the OpenMetrics format (for a client that asks for it), converted
    from a rendering rather than collected again."""
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
    from prometheus_client.parser import text_string_to_metric_families

    class _Parsed:
        def collect(self):  # type: ignore[no-untyped-def]
            return text_string_to_metric_families(body.decode("utf-8"))

    return openmetrics(_Parsed())  # type: ignore[arg-type]


def wants_openmetrics(accept: str) -> bool:
    """Whether an Accept header prefers OpenMetrics to the text format (q values honoured)."""
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best[media.lower()] = max(q, best.get(media.lower(), 0.0))
    om = best.get("application/openmetrics-text", 0.0)
    return om > 0 and om >= max(best.get("text/plain", 0.0), best.get("*/*", 0.0))


class _Converted:
    """The OpenMetrics form of the latest rendering, made once when first asked for."""

    def __init__(self) -> None:
        self._seq = -1
        self._plain = self._gzipped = b""

    def get(self, rendering: Rendering, gzipped: bool) -> bytes:
        if rendering.seq != self._seq:
            self._plain = to_openmetrics(rendering.body)
            self._gzipped = gzip.compress(self._plain, 1)
            self._seq = rendering.seq
        return self._gzipped if gzipped else self._plain


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    keep_alive: bool


@dataclass
class Response:
    status: str
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Closed(Exception):
    """The client closed its connection between requests."""


class _BadRequest(Exception):
    def __init__(self, status: str) -> None:
        self.status = status


def parse_head(head: bytes) -> Request:
    """A request line and its headers (the bytes before the blank line)."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise _BadRequest("400 Bad Request") from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest("505 HTTP Version Not Supported")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest("400 Bad Request")
        headers[name.lower()] = value.strip()
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise _BadRequest("413 Content Too Large")  # nothing here takes a body
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    return Request(method, target.partition("?")[0], headers, keep_alive)


class Endpoint:
    """Answers requests from ``source`` and ``health``; ``users`` adds basic auth."""

    def __init__(self, source: Source, health: Health, users: Users | None = None) -> None:
        self.source, self.health, self.users = source, health, users
        self._converted = _Converted()

    def respond(self, request: Request) -> Response:
        path = request.path
        if request.method not in ("GET", "HEAD"):
            return Response("405 Method Not Allowed", _TEXT, b"only GET and HEAD\n")
        # probes stay open (they tell nothing about the house); everything else needs a user
        if path not in ("/healthz", "/readyz") and not _authorized(
            self.users, request.headers.get("authorization", "")
        ):
            return Response(
                "401 Unauthorized",
                _TEXT,
                b"unauthorized\n",
                [("WWW-Authenticate", 'Basic realm="otelpower"')],
            )
        if path == "/":
            return Response("200 OK", "text/html; charset=utf-8", LANDING_PAGE)
        if path in ("/healthz", "/readyz"):
            if path == "/healthz":
                ok, text = self.health.live()
            else:
                ok, text = self.health.readiness(self.source.current())
            status = "200 OK" if ok else "503 Service Unavailable"
            return Response(status, _TEXT, text.encode() + b"\n")
        if path != "/metrics":
            return Response("404 Not Found", _TEXT, b"not found: try /metrics\n")
        rendering = self.source.current()
        if rendering is None:
            return Response(
                "503 Service Unavailable", _TEXT, b"starting: no metrics rendered yet\n"
            )
        if why := self.health.stale(rendering):
            return Response("503 Service Unavailable", _TEXT, f"not serving: {why}\n".encode())
        openmetrics = wants_openmetrics(request.headers.get("accept", ""))
        gzipped = "gzip" in request.headers.get("accept-encoding", "")
        if openmetrics:
            body = self._converted.get(rendering, gzipped)
        else:
            body = rendering.gzipped if gzipped else rendering.body
        headers = [
            ("Vary", "Accept, Accept-Encoding"),
            ("X-Otelpower-Rendering", str(rendering.seq)),
        ]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        return Response("200 OK", OPENMETRICS_TYPE if openmetrics else CONTENT_TYPE, body, headers)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(now: float | None = None) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` (RFC 9110 IMF-fixdate; email.utils.formatdate
    without importing the email package)."""
    t = time.gmtime(now)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year}"
        f" {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _head(response: Response, keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status}",
        f"Date: {http_date()}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        *(f"{name}: {value}" for name, value in response.headers),
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connections:
    """Open connections and when each last made progress; evicts the stalest at the cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.progress: dict[asyncio.StreamWriter, float] = {}
        self.evicted = 0

    def admit(self, writer: asyncio.StreamWriter) -> None:
        if len(self.progress) >= self.cap:
            stalest = min(self.progress, key=self.progress.__getitem__)
            stalest.transport.abort()
            self.progress.pop(stalest, None)
            self.evicted += 1
        self.progress[writer] = time.monotonic()

    def moved(self, writer: asyncio.StreamWriter) -> None:
        if writer in self.progress:
            self.progress[writer] = time.monotonic()


class HttpServer:
    """The endpoint on one asyncio loop in a daemon thread (``serve`` starts it)."""

    def __init__(self, endpoint: Endpoint, limits: Limits) -> None:
        self.endpoint, self.limits = endpoint, limits
        # each connection takes one descriptor; keep some for the pipe, imports and logs
        self.connections = _Connections(max(16, min(limits.max_connections, fd_limit() - 32)))
        self.loop = asyncio.new_event_loop()
        eventloop.guard(self.loop)  # out of descriptors at accept: one line, no traceback
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.server_port = 0

    def start(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        """Bind on the server's own thread: the caller may be running an event loop."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._thread = start_thread(self.loop.run_forever, "metrics-http")
        listen = asyncio.start_server(
            self._connection,
            host,
            port,
            family=family,
            backlog=self.limits.backlog,
            ssl=tls,
            ssl_handshake_timeout=self.limits.handshake_timeout_s if tls else None,
            reuse_address=True,
        )
        try:
            self._server = asyncio.run_coroutine_threadsafe(listen, self.loop).result()
        except BaseException:
            self._stop_loop()
            raise
        self.server_port = self._server.sockets[0].getsockname()[1]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.admit(writer)
        buffered = bytearray()  # bytes after the last request's head (pipelining)
        deadline: float | None = time.monotonic() + self.limits.head_timeout_s
        try:
            while True:
                request = await self._request(reader, buffered, deadline)
                if isinstance(request, str):  # refused: answer and close
                    response, keep_alive = Response(request, _TEXT, request.encode() + b"\n"), False
                else:
                    response, keep_alive = self.endpoint.respond(request), request.keep_alive
                self.connections.moved(writer)
                writer.write(_head(response, keep_alive))
                if not isinstance(request, Request) or request.method != "HEAD":
                    writer.write(response.body)  # queued as a view of the shared body
                await asyncio.wait_for(writer.drain(), self.limits.write_timeout_s)
                self.connections.moved(writer)
                if not keep_alive:
                    break
                deadline = None  # the next head's deadline starts with its first byte
        except (TimeoutError, OSError, _Closed):
            pass
        finally:
            self.connections.progress.pop(writer, None)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # a response the client did not take
            else:
                writer.close()

    async def _request(
        self, reader: asyncio.StreamReader, buffered: bytearray, deadline: float | None
    ) -> Request | str:
        """The next request, or the status line refusing it; raises _Closed at the end."""
        limits = self.limits
        while (end := buffered.find(b"\r\n\r\n")) < 0:
            if len(buffered) > limits.max_head_bytes:
                return "431 Request Header Fields Too Large"
            if deadline is None and buffered:
                deadline = time.monotonic() + limits.head_timeout_s
            wait = limits.idle_timeout_s if deadline is None else deadline - time.monotonic()
            chunk = await asyncio.wait_for(reader.read(64 * 1024), max(0.0, wait))
            if not chunk:
                if buffered:
                    return "400 Bad Request"
                raise _Closed
            buffered += chunk
        head = bytes(buffered[:end])
        del buffered[: end + 4]
        try:
            return parse_head(head)
        except _BadRequest as bad:
            return bad.status

    def shutdown(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self.connections.progress):
                writer.transport.abort()

        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=5)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self._thread = None

    def server_close(self) -> None:
        if not self.loop.is_running():
            self.loop.close()


def serve(
    host: str,
    port: int,
    source: Source,
    health: Health,
    web: WebConfig | None = None,
    limits: Limits | None = None,
) -> HttpServer:
    """Bind ``host:port`` (IPv4 or IPv6; port 0 = a free one) and serve in a daemon thread;
    ``web`` adds TLS and basic auth."""
    tls = web.tls.context() if web is not None and web.tls is not None else None
    server = HttpServer(Endpoint(source, health, web.users if web else None), limits or Limits())
    try:
        server.start(host, port, tls)
    except BaseException:
        server.loop.close()
        raise
    return server
