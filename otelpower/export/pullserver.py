"""The pull endpoint in a process of its own, so scrapes never wait on the poller.

At 1,000 plugs the main process is busy polling, exporting and rendering, and its garbage
collector stops it for up to ~0.3 s at a time; a scrape served from one of its threads would
wait for all of that (bench/README.md). So the main process only renders
(otelpower.export.exposition) and sends each rendering, plus its health, over a pipe; this
small process answers HTTP from what it last received. It exits when the pipe closes, i.e.
when the main process is gone.

The process is a fresh interpreter that imports only what serving takes (this module and
otelpower.export.httpserver, whose imports say why): ~11 MB. Its pipe is ``Pipe``, not a
multiprocessing Connection, so that neither multiprocessing nor the renderer (whose
Rendering a pickle would name) is imported there, and a rendering's bytes are not copied
into a pickle on the way.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import select
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otelpower.export.httpserver import Health, HttpServer, Rendering, Source, serve
from otelpower.export.threads import start_thread

if TYPE_CHECKING:
    from otelpower.export.webconfig import WebConfig

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
HEALTH_EVERY_S = 1.0


class PullServerError(OSError):
    """The endpoint could not be started (e.g. the port is taken)."""


class Pipe:
    """Messages over a stream socket between the two processes: ``send(kind, values, blobs)``
    and ``recv() -> (kind, values, blobs)``. ``values`` is a tuple of plain values, sent
    marshalled (both ends run the same interpreter, sys.executable); ``blobs`` are byte
    strings sent as they are (a rendering's bodies: no copy on the way out, one on the way in).
    One sender and one receiver at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, kind: str, values: tuple[Any, ...] = (), blobs: tuple[bytes, ...] = ()) -> None:
        head = marshal.dumps((kind, values, tuple(len(b) for b in blobs)))
        self.sock.sendall(len(head).to_bytes(4, "big") + head)
        for blob in blobs:
            self.sock.sendall(blob)

    def recv(self) -> tuple[str, tuple[Any, ...], list[bytes]]:
        """The next message; EOFError when the other end closed the pipe."""
        kind, values, sizes = marshal.loads(self._exactly(int.from_bytes(self._exactly(4), "big")))
        return kind, values, [self._exactly(n) for n in sizes]

    def poll(self, timeout_s: float) -> bool:
        """Whether a message (or the end of the pipe) can be read within ``timeout_s``."""
        poller = select.poll()  # not select.select: the descriptor may be past 1024
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))

    def close(self) -> None:
        self.sock.close()

    def _exactly(self, n: int) -> bytes:
        data = self.sock.recv(n, socket.MSG_WAITALL)
        while len(data) < n:  # interrupted, or the end of the pipe
            more = self.sock.recv(n - len(data), socket.MSG_WAITALL)
            if not more:
                raise EOFError
            data += more
        return data


@dataclass(frozen=True, slots=True)
class Received:
    """A rendering as the endpoint process has it (httpserver.Rendering)."""

    body: bytes
    gzipped: bytes
    rendered_at: float
    cost_s: float
    seq: int


@dataclass
class _Latest:
    rendering: Rendering | None = None

    def current(self) -> Rendering | None:
        return self.rendering


def _child(pipe: Pipe, host: str, port: int, web_config: str | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process, which stops us
    latest, health = _Latest(), Health()
    try:
        server, tls = listen(host, port, latest, health, web_config)
    except PullServerError as exc:
        pipe.send("error", (str(exc),))
        return
    pipe.send("bound", (server.server_port, tls))
    try:
        while True:
            kind, values, blobs = pipe.recv()
            if kind == "rendering":
                seq, rendered_at, cost_s, first = values
                latest.rendering = Received(blobs[0], blobs[1], rendered_at, cost_s, seq)
                if first:  # the main process waits until it is served
                    pipe.send("served", (seq,))
            elif kind == "health":
                health.last_beat, health.ready = values
            else:  # "stop"
                break
    except (EOFError, OSError):
        pass  # the main process is gone
    finally:
        server.shutdown()
        server.server_close()


def listen(
    host: str, port: int, source: Source, health: Health, web_config: str | None
) -> tuple[HttpServer, bool]:
    """The HTTP server, bound, and whether it serves HTTPS; PullServerError says why not."""
    try:
        web = _web(web_config) if web_config else None
        server = serve(host, port, source, health, web)
    except _ConfigError as exc:
        raise PullServerError(str(exc)) from None
    except OSError as exc:
        raise PullServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server, web is not None and web.tls is not None


class _ConfigError(Exception):
    """otelpower.config.yamlsource.ConfigError, which is imported only with a web config."""


def _web(path: str) -> WebConfig:
    """The web config (otelpower.export.webconfig, which imports YAML and bcrypt)."""
    from otelpower.config.yamlsource import ConfigError
    from otelpower.export import webconfig

    try:
        return webconfig.load(path)
    except ConfigError as exc:
        raise _ConfigError(str(exc)) from None


class PullServer:
    """Parent side: start the process, forward renderings and health, stop it."""

    def __init__(self, host: str, port: int, health: Health, web_config: str | None = None) -> None:
        self.host, self.port, self.health = host, port, health
        self.web_config = web_config  # TLS and basic auth (otelpower.export.webconfig)
        self.tls = False  # whether the running process serves HTTPS (its web config's TLS)
        self._pipe: Pipe | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake = threading.Condition()
        self._pending: Rendering | None = None
        self._stopped = False
        self._sender: threading.Thread | None = None
        self._last: Rendering | None = None  # the newest rendering the process has
        self.restarts = 0

    def start(self) -> int:
        """Start the process; returns the bound port or raises PullServerError.

        A fresh interpreter running only this module (not a fork or a multiprocessing spawn,
        which would import the main program): it stays ~11 MB.
        """
        ours, theirs = socket.socketpair()
        with theirs:
            fd = theirs.fileno()
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "otelpower.export.pullserver",
                    str(fd),
                    self.host,
                    str(self.port),
                    *([self.web_config] if self.web_config else []),
                ],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
            )
        self._pipe = Pipe(ours)
        if not self._pipe.poll(START_TIMEOUT_S):
            self._end_process()
            raise PullServerError(f"metrics endpoint on {self.host}:{self.port} did not start")
        try:
            kind, values, _ = self._pipe.recv()
        except EOFError:
            kind, values = "error", ("the metrics endpoint process exited at start",)
        if kind != "bound":
            self._end_process()
            raise PullServerError(values[0])
        self.port, self.tls = values
        return self.port

    def publish(self, rendering: Rendering) -> None:
        """Hand over a new rendering (called by the renderer).

        The first one is delivered at once and waited for, so /metrics answers as soon as
        telemetry is up; later ones are queued (only the newest is kept) for the sender.
        """
        with self._wake:
            if self._sender is None and not self._stopped:
                self._deliver_first(rendering)
                return
            self._pending = rendering
            self._wake.notify()

    def _deliver_first(self, rendering: Rendering) -> None:
        self._hand_over(rendering)
        self._sender = start_thread(self._send_loop, "metrics-pipe")

    def _hand_over(self, rendering: Rendering) -> None:
        """Send a rendering and wait until the process serves it (its first, or after a restart)."""
        assert self._pipe is not None
        self._send_rendering(rendering, first=True)
        self._send_health()
        if not self._pipe.poll(START_TIMEOUT_S) or self._pipe.recv()[:2] != (
            "served",
            (rendering.seq,),
        ):
            raise PullServerError("the metrics endpoint did not take the first rendering")
        self._last = rendering

    def _send_rendering(self, rendering: Rendering, first: bool) -> None:
        assert self._pipe is not None
        self._pipe.send(
            "rendering",
            (rendering.seq, rendering.rendered_at, rendering.cost_s, first),
            (rendering.body, rendering.gzipped),
        )

    def _send_health(self) -> None:
        assert self._pipe is not None
        self._pipe.send("health", (self.health.last_beat, self.health.ready))

    def _restart(self) -> bool:
        """The process died: start it again on the same port, with the newest rendering.
        Retried once a second until it works or we are stopped; False when stopped."""
        assert self._last is not None
        code = self._proc.poll() if self._proc is not None else None
        log.warning(
            "the metrics endpoint process exited (code %s): starting it again on port %d",
            code,
            self.port,
        )
        while not self._stopped:
            self._end_process()  # reaped: no zombie
            try:
                self.start()
                self._hand_over(self._last)
            except (PullServerError, OSError) as exc:
                log.warning("the metrics endpoint did not start again (%s); retrying", exc)
                with self._wake:
                    self._wake.wait_for(lambda: self._stopped, 1.0)
                continue
            self.restarts += 1
            log.info("the metrics endpoint answers again on port %d", self.port)
            return True
        return False

    def _send_loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(
                    lambda: self._stopped or self._pending is not None, HEALTH_EVERY_S
                )
                if self._stopped:
                    return
                rendering, self._pending = self._pending, None
            try:
                if rendering is not None:
                    self._send_rendering(rendering, first=False)
                    self._last = rendering
                self._send_health()
            except OSError:
                if not self._restart():
                    return

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._sender is not None:
            self._sender.join(timeout=5)
            self._sender = None
        self._end_process()

    def _end_process(self) -> None:
        """Ask the process to stop, close the pipe, and reap it (killed if it hangs)."""
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send("stop")
            self._pipe.close()
            self._pipe = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None


if __name__ == "__main__":
    from otelpower.export import malloc

    malloc.return_large_blocks()
    _child(
        Pipe(socket.socket(fileno=int(sys.argv[1]))), sys.argv[2], int(sys.argv[3]), *sys.argv[4:5]
    )
