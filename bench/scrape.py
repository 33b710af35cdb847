"""The /metrics scraper, run in its own process so its CPU does not slow the reader."""

from __future__ import annotations

import math
import time
import urllib.request


def scrape(
    url: str, count: int, gzip: bool = True, gap_s: float = 0.1, timeout_s: float = 30.0
) -> list[float]:
    """``count`` GETs of ``url``, ``gap_s`` apart: seconds until each whole body has arrived.

    ``gzip`` asks for a compressed body, as Prometheus does on every scrape. The gap spreads
    the scrapes over the poll cycle, so they meet the reader both busy and idle.
    """
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    latencies: list[float] = []
    for i in range(count):
        if i:
            time.sleep(gap_s)
        started = time.perf_counter()
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {url}: HTTP {resp.status}")
        latencies.append(time.perf_counter() - started)
    return latencies


def body_size(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return len(resp.read())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
