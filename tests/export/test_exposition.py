"""/metrics is served from a background rendering: fast however slow rendering gets."""

from __future__ import annotations

import gzip
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from harness.wait import wait_for_sync
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.export.exposition import CachedExposition
from otelpower.export.httpserver import Health, serve


class SlowCollector:
    """A registry collector that takes ``delay_s`` and reports how often it ran."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.value = 0.0

    def collect(self) -> Iterable[GaugeMetricFamily]:
        time.sleep(self.delay_s)
        yield GaugeMetricFamily("slow_value", "test gauge", value=self.value)


@pytest.fixture
def endpoint() -> Iterator[tuple[SlowCollector, CachedExposition, str]]:
    registry = CollectorRegistry()
    slow = SlowCollector(0.0)
    registry.register(slow)
    exposition = CachedExposition(registry, min_gap_s=0.05, max_age_s=0.2)
    exposition.start()
    server = serve("127.0.0.1", 0, exposition, Health())
    yield slow, exposition, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    exposition.stop()


def get(url: str, **headers: str) -> tuple[float, bytes, dict[str, str]]:
    started = time.perf_counter()
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
        return time.perf_counter() - started, body, dict(resp.headers)


def test_scrapes_do_not_wait_for_rendering(endpoint) -> None:
    slow, exposition, url = endpoint
    get(url + "/metrics")  # first rendering exists
    slow.delay_s = 0.5  # every further rendering now takes 0.5 s
    exposition.invalidate(urgent=True)
    latencies = [get(url + "/metrics")[0] for _ in range(20)]
    assert max(latencies) < 0.2, latencies


def test_changes_reach_the_endpoint_and_gzip_matches(endpoint) -> None:
    slow, exposition, url = endpoint
    slow.value = 42.0
    exposition.invalidate()
    wait_for_sync(lambda: b"slow_value 42.0" in get(url + "/metrics")[1], 5, 0.02)
    _, plain, _ = get(url + "/metrics")
    _, zipped, headers = get(url + "/metrics", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == plain


def test_unknown_path_is_404(endpoint) -> None:
    _, _, url = endpoint
    with pytest.raises(urllib.error.HTTPError) as err:
        get(url + "/nope")
    assert err.value.code == 404


def test_store_tells_listeners_when_series_appear_or_vanish() -> None:
    heard: list[bool] = []
    store = SnapshotStore()
    store.listen(heard.append)
    up = DeviceSnapshot("a", {}, DeviceStatus.OK, readings=(Reading({"power_watts": 1.0}),))
    store.put(up)  # new device
    store.put(up)  # same state, new values
    store.put(DeviceSnapshot("a", {}, DeviceStatus.OFFLINE))  # went down
    store.remove("a")
    store.remove("a")  # nothing to remove: silent
    assert heard == [True, False, True, True]


def test_the_root_is_a_landing_page(endpoint) -> None:
    _, _, url = endpoint
    _, body, headers = get(url + "/")
    assert headers["Content-Type"].startswith("text/html")
    assert b'<a href="metrics">' in body and b"otelpower" in body
