"""The /metrics process: a taken port is a clear error, and it never outlives otelpower; a
small fleet's /metrics is served by a thread of otelpower run instead."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness.ports import free_port
from harness.processes import cli_process as process
from harness.promtext import find, scrape
from harness.wait import wait_for


def config_file(tmp_path: Path, port: int, process: str = "auto") -> Path:
    path = tmp_path / "plugs.yaml"
    data = {
        "house": "home",
        "devices": [{"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s", "device": "tv"}],
        "discovery": {"enabled": False},
        "prometheus": {"host": "127.0.0.1", "port": port, "process": process},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def children_of(pid: int) -> set[int]:
    kids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(entry.name))
    return kids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("where", ["separate", "inline"])
async def test_port_taken_is_a_clear_error(tmp_path: Path, where: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with process("run", str(config_file(tmp_path, port, where))) as run:
            _, err = await asyncio.wait_for(run.communicate(), 30)
    text = err.decode()
    assert run.returncode == 1, text
    assert f"cannot listen on 127.0.0.1:{port}" in text and "plugs.yaml" in text
    assert "Traceback" not in text


def answers(port: int) -> bool:
    try:
        return bool(find(scrape(port), "tplink_native_up"))
    except OSError:  # not listening yet
        return False


@pytest.mark.live  # otelpower processes
async def test_endpoint_process_ends_with_otelpower(tmp_path: Path) -> None:
    port = free_port()
    async with process("run", str(config_file(tmp_path, port, "separate"))) as run:
        await wait_for(lambda: answers(port), timeout=30)
        kids = children_of(run.pid)
        assert kids, "the /metrics process should be a child of otelpower run"
        run.send_signal(signal.SIGKILL)  # no chance to clean up
        await asyncio.wait_for(run.wait(), 10)
        await wait_for(lambda: not any(alive(k) for k in kids), timeout=10)


async def test_a_small_fleet_is_served_without_a_second_process(tmp_path: Path) -> None:
    """One device, prometheus.process auto: /metrics, /healthz and /readyz answer from a
    thread of otelpower run, which starts no other process, and the port is free after it."""

    def status(port: int, path: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return conn.makefile("rb").readline()

    port = free_port()
    async with process("run", str(config_file(tmp_path, port))) as run:
        await wait_for(lambda: answers(port), timeout=30)
        assert children_of(run.pid) == set()
        for path in ("/healthz", "/readyz"):
            await wait_for(lambda p=path: status(port, p).startswith(b"HTTP/1.1 200"), timeout=30)
        run.send_signal(signal.SIGTERM)
        await asyncio.wait_for(run.wait(), 20)
        assert run.returncode == 0
    with socket.socket() as again:  # nothing listens there any more
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


def test_the_pipe_carries_values_and_bodies_and_reports_its_end() -> None:
    from harness.renderings import BODY
    from otelpower.export.pullserver import Pipe

    a, b = socket.socketpair()
    ours, theirs = Pipe(a), Pipe(b)
    blobs = (BODY, b"", b"x")
    sender = threading.Thread(target=lambda: ours.send("rendering", (7, 1.5, None, True), blobs))
    sender.start()  # ~1 MB: more than the socket buffer, so it is read while being written
    assert theirs.poll(5)
    assert theirs.recv() == ("rendering", (7, 1.5, None, True), list(blobs))
    sender.join()
    ours.send("stop")
    assert theirs.recv() == ("stop", (), [])
    ours.close()
    assert theirs.poll(5)  # the end of the pipe is readable, and says so
    with pytest.raises(EOFError):
        theirs.recv()
    theirs.close()


def test_the_endpoint_agrees_with_the_renderer() -> None:
    """The endpoint process does not import the renderer; what it shares with it is kept equal
    here."""
    from otelpower.export import exposition, httpserver

    assert httpserver.COST_FACTOR == exposition.COST_FACTOR


def test_the_date_header_is_an_http_date() -> None:
    from email.utils import formatdate

    from otelpower.export.httpserver import http_date

    for t in (0.0, 784111777.0, 951782400.0, 1e9, time.time()):
        assert http_date(t) == formatdate(t, usegmt=True)
