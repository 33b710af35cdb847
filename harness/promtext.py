"""Read a Prometheus text exposition into (name, labels) -> value, for assertions."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from otelpower.export.pipeline import Telemetry

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if v != "")
            out[(sample.name, labels)] = sample.value
    return out


def scrape(port: int, host: str = "127.0.0.1") -> Series:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        return parse(resp.read().decode())


def scrape_fresh(telemetry: Telemetry, timeout: float = 5.0) -> Series:
    """Scrape a rendering of the current state (/metrics serves the latest background one).

    Renders now, then scrapes until the endpoint serves that rendering or a newer one.
    """
    assert telemetry.exposition is not None and telemetry.prometheus_port is not None
    rendering = telemetry.exposition.render()
    assert rendering is not None, "rendering failed"
    seq = rendering.seq
    url = f"http://127.0.0.1:{telemetry.prometheus_port}/metrics"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if int(resp.headers["X-Otelpower-Rendering"]) >= seq:
                    return parse(resp.read().decode())
        except urllib.error.HTTPError as err:  # 503 until the first rendering arrives
            assert err.code == 503, err
        assert time.monotonic() < deadline, f"rendering {seq} not served within {timeout}s"
        time.sleep(0.01)


def find(series: Series, name: str, **labels: str) -> dict[frozenset, float]:
    """Series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in series.items() if n == name and want <= set(lbl)}


def one(series: Series, name: str, **labels: str) -> float:
    found = find(series, name, **labels)
    assert len(found) == 1, f"expected one {name}{labels}, got {found or 'none'}"
    return next(iter(found.values()))
