"""The pull endpoint in a process of its own, so scrapes never wait on the poller.

At 1,000 plugs the main process is busy polling, exporting and rendering, and its garbage
collector stops it for up to ~0.3 s at a time; a scrape served from one of its threads would
wait for all of that (bench/README.md). So the main process only renders
(otelpower.export.exposition) and sends each rendering, plus its health, over a pipe; this
small process answers HTTP from what it last received. It exits when the pipe closes, i.e.
when the main process is gone.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from otelpower.config.yamlsource import ConfigError
from otelpower.export import webconfig
from otelpower.export.exposition import Rendering
from otelpower.export.httpserver import Health, serve
from otelpower.export.threads import start_thread

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
HEALTH_EVERY_S = 1.0


class PullServerError(OSError):
    """The endpoint could not be started (e.g. the port is taken)."""


@dataclass
class _Latest:
    rendering: Rendering | None = None

    def current(self) -> Rendering | None:
        return self.rendering


def _child(conn: Connection, host: str, port: int, web_config: str | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process, which stops us
    latest, health = _Latest(), Health()
    try:
        web = webconfig.load(web_config) if web_config else None
        server = serve(host, port, latest, health, web)
    except ConfigError as exc:
        conn.send(("error", str(exc)))
        return
    except OSError as exc:
        conn.send(("error", f"cannot listen on {host}:{port}: {exc.strerror or exc}"))
        return
    conn.send(("bound", (server.server_port, web is not None and web.tls is not None)))
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "rendering":
                latest.rendering = msg[1]
                if msg[2]:  # the first one: the main process waits until it is served
                    conn.send(("served", msg[1].seq))
            elif msg[0] == "health":
                health.last_beat, health.ready = msg[1], msg[2]
            else:  # "stop"
                break
    except (EOFError, OSError):
        pass  # the main process is gone
    finally:
        server.shutdown()
        server.server_close()


class PullServer:
    """Parent side: start the process, forward renderings and health, stop it."""

    def __init__(self, host: str, port: int, health: Health, web_config: str | None = None) -> None:
        self.host, self.port, self.health = host, port, health
        self.web_config = web_config  # TLS and basic auth (otelpower.export.webconfig)
        self.tls = False  # whether the running process serves HTTPS (its web config's TLS)
        self._conn: Connection | None = None
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
        which would import the main program): it stays ~20 MB.
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
        self._conn = Connection(ours.detach())
        if not self._conn.poll(START_TIMEOUT_S):
            self._end_process()
            raise PullServerError(f"metrics endpoint on {self.host}:{self.port} did not start")
        try:
            kind, value = self._conn.recv()
        except EOFError:
            kind, value = "error", "the metrics endpoint process exited at start"
        if kind != "bound":
            self._end_process()
            raise PullServerError(value)
        self.port, self.tls = value
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
        assert self._conn is not None
        self._conn.send(("rendering", rendering, True))
        self._conn.send(("health", self.health.last_beat, self.health.ready))
        if not self._conn.poll(START_TIMEOUT_S) or self._conn.recv() != ("served", rendering.seq):
            raise PullServerError("the metrics endpoint did not take the first rendering")
        self._last = rendering

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
                    assert self._conn is not None
                    self._conn.send(("rendering", rendering, False))
                    self._last = rendering
                assert self._conn is not None
                self._conn.send(("health", self.health.last_beat, self.health.ready))
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
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None


if __name__ == "__main__":
    _child(Connection(int(sys.argv[1])), sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
