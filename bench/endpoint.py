"""/metrics under hostile clients: scrape latency with N slow or stuck connections open,
against the same endpoint with none (the baseline, same run), and the endpoint's memory.

    .venv/bin/python bench/endpoint.py [--clients 500] [--scrapes 200]

The endpoint is the real /metrics process (otelpower/export/pullserver.py) serving a
~1 MB rendering (about 1,000 plugs' worth). A third of the clients connect and send
nothing, a third send half a request head, a third ask for /metrics and never read it.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from figures import Figure, log, report
from scrape import percentile, scrape

from harness.procstat import rss_mb
from harness.renderings import BODY, rendering
from otelpower.core.fds import fd_limit
from otelpower.export.httpserver import Health
from otelpower.export.pullserver import PullServer


def _open(port: int, clients: int) -> list[socket.socket]:
    socks = []
    for i in range(clients):
        sock = socket.socket()
        kind = i % 3
        if kind == 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        if kind == 1:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        elif kind == 2:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n")
        socks.append(sock)
    return socks


def bench_endpoint(clients: int, scrapes: int) -> list[Figure]:
    fd_limit()  # the clients' sockets are ours
    server = PullServer("127.0.0.1", 0, Health(ready=True))
    port = server.start()
    server.publish(rendering())
    assert server._proc is not None
    pid, url = server._proc.pid, f"http://127.0.0.1:{port}/metrics"
    figures: list[Figure] = []
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            pool.submit(scrape, url, 5, True, 0.0).result()  # warm
            log(f"endpoint: {scrapes} scrapes, no other clients")
            idle = pool.submit(scrape, url, scrapes, True, 0.02).result()
            before = rss_mb(pid)
            log(f"endpoint: {clients} slow or stuck clients, {scrapes} scrapes")
            socks = _open(port, clients)
            try:
                time.sleep(1.0)  # let the stuck ones fill their buffers
                busy = pool.submit(scrape, url, scrapes, True, 0.02).result()
                grown = rss_mb(pid) - before
            finally:
                for sock in socks:
                    sock.close()
    finally:
        server.stop()
    p99_idle, p99_busy = percentile(idle, 99) * 1000, percentile(busy, 99) * 1000
    unread = len(range(2, clients, 3))
    figures += [
        Figure("endpoint_scrape_p50_ms_idle", percentile(idle, 50) * 1000, "ms"),
        Figure("endpoint_scrape_p99_ms_idle", p99_idle, "ms"),
        Figure(f"endpoint_scrape_p50_ms_{clients}_slow", percentile(busy, 50) * 1000, "ms"),
        Figure(f"endpoint_scrape_p99_ms_{clients}_slow", p99_busy, "ms"),
        Figure(f"endpoint_p99_slow_vs_idle_{clients}", p99_busy / p99_idle, "x"),
        Figure(f"endpoint_rss_growth_mb_{unread}_unread", grown, "MB"),
        Figure(
            f"endpoint_rss_growth_vs_a_copy_each_{unread}",
            grown / (unread * len(BODY) / 2**20),
            "x",
        ),
    ]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args(argv)
    figures = bench_endpoint(args.clients, args.scrapes)
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
