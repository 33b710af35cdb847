"""The /metrics endpoint against clients that are slow, stuck or too many, and against a main
process that stalls: scrapes keep working, memory stays bounded, stale values are not served."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.ports import free_port
from harness.processes import cli_process
from harness.procstat import rss_mb
from harness.renderings import BODY, rendering
from harness.wait import wait_for, wait_for_sync
from otelpower.export.exposition import Rendering
from otelpower.export.httpserver import Health, Limits, serve
from otelpower.export.pullserver import PullServer


def scrape(port: int, path: str = "/metrics", timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def endpoint() -> Iterator[tuple[PullServer, Health]]:
    health = Health(ready=True)
    server = PullServer("127.0.0.1", 0, health)
    server.start()
    server.publish(rendering())
    yield server, health
    server.stop()


def _connect(port: int, send: bytes = b"", rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    if send:
        sock.sendall(send)
    return sock


def test_scrapes_work_while_500_clients_are_slow_or_stuck(endpoint) -> None:
    server, _ = endpoint
    assert server._proc is not None
    pid, port = server._proc.pid, server.port
    assert scrape(port) == (200, BODY)
    before = rss_mb(pid)
    clients = (
        [_connect(port) for _ in range(200)]  # connected, never a byte
        + [_connect(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n") for _ in range(150)]
        # asked, and never read the ~1 MB answer
        + [_connect(port, b"GET /metrics HTTP/1.1\r\n\r\n", rcvbuf=4096) for _ in range(150)]
    )
    try:
        for _ in range(20):
            assert scrape(port) == (200, BODY)
        server.publish(rendering(2))  # a new body while the stuck ones hold the old one
        wait_for_sync(lambda: scrape(port)[0] == 200, 10, 0.05)
        for _ in range(20):
            assert scrape(port) == (200, BODY)
        grown_mb = rss_mb(pid) - before
        # the stuck clients share the bodies (a copy each would be ~150 MB)
        assert grown_mb < 40, f"the endpoint grew by {grown_mb:.0f} MB"
    finally:
        for sock in clients:
            sock.close()


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (non-blocking); reads what it had sent first."""
    try:
        while sock.recv(1 << 20):
            pass
    except BlockingIOError:
        return False
    except ConnectionError:
        pass
    return True


def test_deadlines_close_idle_half_sent_and_unread_connections() -> None:
    limits = Limits(head_timeout_s=0.5, idle_timeout_s=0.5, write_timeout_s=0.5)
    server = serve("127.0.0.1", 0, _Static(), Health(), limits=limits)
    try:
        port = server.server_port
        idle = _connect(port)
        half = _connect(port, b"GET /metrics HTTP/1.1\r\n")
        unread = _connect(port, b"GET /metrics HTTP/1.1\r\n\r\n" * 50, rcvbuf=4096)
        kept = _connect(port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200 OK")
        for sock in (idle, half, unread, kept):
            sock.setblocking(False)
            wait_for_sync(lambda s=sock: _closed_by_server(s), 10, 0.05, what=str(sock))
        assert server.connections.progress == {}
    finally:
        server.shutdown()
        server.server_close()


class _Static:
    def current(self) -> Rendering:
        return _STATIC


_STATIC = rendering()


def test_bad_requests_get_a_status_not_a_hang() -> None:
    server = serve("127.0.0.1", 0, _Static(), Health())
    try:
        port = server.server_port
        for request, status in [
            (b"nonsense\r\n\r\n", b"400"),
            (b"GET /metrics HTTP/2.0\r\n\r\n", b"505"),
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"413"),
            (b"DELETE /metrics HTTP/1.1\r\n\r\n", b"405"),
            (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 70_000, b"431"),
        ]:
            with _connect(port, request) as sock:
                sock.settimeout(10)
                assert sock.recv(4096).split(b" ")[1] == status, request[:30]
        with _connect(port, b"GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n") as sock:
            sock.settimeout(10)  # two pipelined requests, two answers in order
            answers = b""
            while answers.count(b"HTTP/1.1 ") < 2:
                answers += sock.recv(4096)
            assert answers.index(b"200 OK") < answers.index(b"404 Not Found")
    finally:
        server.shutdown()
        server.server_close()


#: serves a fixed body under a hard limit of 256 file descriptors; prints its port
_LOW_FDS = """
import sys, time
from otelpower.export.httpserver import Health, serve
from tests.export.test_endpoint_limits import _Static
server = serve("127.0.0.1", 0, _Static(), Health())
print(server.server_port, server.connections.cap, flush=True)
sys.stdin.read()
"""


def test_at_the_descriptor_limit_the_stalest_connection_makes_room() -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOW_FDS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=limit,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        port, cap = map(int, proc.stdout.readline().split())
        assert cap == 256 - 32
        idle = [_connect(port) for _ in range(300)]
        for _ in range(5):
            assert scrape(port) == (200, BODY)
        idle[0].setblocking(False)  # the first ones were dropped to make room
        wait_for_sync(lambda: _closed_by_server(idle[0]), 10, 0.05)
        for sock in idle:
            sock.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_a_stalled_main_process_stops_the_values(simulator, tmp_path: Path) -> None:
    """SIGSTOP the main process: /metrics and /readyz answer 503 within the stale limit, and
    serve again once it runs."""
    from otelpower.sim import PlugOptions, builtin_profiles

    await simulator.start([PlugOptions(next(iter(builtin_profiles())))])
    port = free_port()
    data = simulator.config_dict()
    # the stale guard lives in the /metrics process: inline, a stalled process just stops answering
    data["prometheus"] = {"host": "127.0.0.1", "port": port, "process": "separate"}
    data["poll"] = {"interval": 0.5, "timeout": 2}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))

    def status(path: str) -> int:
        try:
            return scrape(port, path, 5)[0]
        except OSError:
            return 0

    async with cli_process("run", str(config)) as run:
        for path in ("/metrics", "/readyz"):
            await wait_for(lambda p=path: status(p) == 200, 30, in_thread=True, what=path)
        os.kill(run.pid, signal.SIGSTOP)
        try:
            await wait_for(lambda: status("/metrics") == 503, 30, in_thread=True, what="503")
            body = (await asyncio.to_thread(scrape, port))[1]
            # not ticked for 10 s, or (a rendering paced out before the stop) no rendering
            # for 30 s: whichever comes first
            assert b"not serving: " in body and b"tplink_native" not in body, body
            assert await asyncio.to_thread(status, "/readyz") == 503
        finally:
            os.kill(run.pid, signal.SIGCONT)
        for path in ("/metrics", "/readyz"):
            await wait_for(lambda p=path: status(p) == 200, 30, in_thread=True, what=path)
