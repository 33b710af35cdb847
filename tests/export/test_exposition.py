"""/metrics is served from a background rendering: fast however slow rendering gets."""

from __future__ import annotations

import asyncio
import gzip
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator

import pytest
from opentelemetry.metrics import Observation
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


def test_openmetrics_when_asked_for(endpoint) -> None:
    slow, exposition, url = endpoint
    slow.value = 7.0
    exposition.invalidate()
    wait_for_sync(lambda: b"slow_value 7.0" in get(url + "/metrics")[1], 5, 0.02)
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    _, body, headers = get(url + "/metrics", Accept=prometheus_accept)
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n") and b"slow_value 7.0" in body
    _, zipped, _ = get(url + "/metrics", Accept=prometheus_accept, **{"Accept-Encoding": "gzip"})
    assert gzip.decompress(zipped) == body
    for accept in ("text/plain", "*/*", "", "application/openmetrics-text;q=0.1,text/plain"):
        _, body, headers = get(url + "/metrics", Accept=accept)
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), accept


async def test_openmetrics_of_the_real_exposition_is_valid(simulator) -> None:
    """Every plug kind's series through the conversion, read back by the strict parser."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    from harness.promtext import find, scrape
    from otelpower import app
    from otelpower.export.httpserver import to_openmetrics
    from otelpower.sim import PlugOptions, builtin_profiles
    from tests.conftest import make_config

    profiles = [PlugOptions(p) for p in builtin_profiles()]
    plugs = await simulator.start(profiles)
    config = make_config(simulator.config_dict(), prometheus={"host": "127.0.0.1", "port": 0})
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port

        def all_up() -> bool:
            series = scrape(port)
            return all(
                list(find(series, "tplink_native_up", device_id=p.mac).values()) == [1.0]
                for p in plugs
            )

        await asyncio.to_thread(wait_for_sync, all_up, 30, 0.1)
        plain = get(f"http://127.0.0.1:{port}/metrics")[1]
    families = list(text_string_to_metric_families(to_openmetrics(plain).decode()))
    samples = {s.name for f in families for s in f.samples}
    assert "tplink_native_energy_kilowatt_hours_total" in samples
    assert "tplink_native_power_watts" in samples


async def test_the_endpoint_process_is_started_again_when_it_dies(simulator, caplog) -> None:
    import logging
    import os
    import signal

    from harness.promtext import find, scrape
    from otelpower import app
    from otelpower.export.pullserver import PullServer
    from otelpower.sim import PlugOptions, builtin_profiles
    from tests.conftest import make_config

    (plug,) = await simulator.start([PlugOptions(next(iter(builtin_profiles())))])
    config = make_config(
        simulator.config_dict(),
        prometheus={"host": "127.0.0.1", "port": 0, "process": "separate"},
    )
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port
        server = runtime.telemetry._server
        assert isinstance(server, PullServer) and server._proc is not None

        def serving() -> bool:
            try:
                return bool(find(scrape(port), "tplink_native_up", device_id=plug.mac))
            except OSError:
                return False

        await asyncio.to_thread(wait_for_sync, serving, 30, 0.1)
        dead = server._proc.pid
        with caplog.at_level(logging.INFO, logger="otelpower.export.pullserver"):
            os.kill(dead, signal.SIGKILL)
            await asyncio.to_thread(wait_for_sync, lambda: server.restarts == 1, 30, 0.1)
            await asyncio.to_thread(wait_for_sync, serving, 30, 0.1)
        assert server._proc.pid != dead and server.port == port
        assert any("exited (code -9)" in r.getMessage() for r in caplog.records)


class Failing:
    """A collector that raises once ``broken`` is set."""

    broken = False

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.broken:
            raise RuntimeError("disk read failed")
        yield GaugeMetricFamily("failing_value", "test gauge", value=1.0)


def test_a_failing_collector_is_counted_and_the_rest_rendered(caplog) -> None:
    from otelpower.export.exposition import IsolatingRegistry

    registry = IsolatingRegistry()
    failing, slow = Failing(), SlowCollector(0.0)
    registry.register(failing)
    registry.register(slow)
    exposition = CachedExposition(registry)
    failing.broken = True
    with caplog.at_level("WARNING", logger="otelpower.export.exposition"):
        for _ in range(3):
            rendering = exposition.render()
            assert rendering is not None and b"slow_value 0.0" in rendering.body
    assert b"failing_value" not in rendering.body
    assert exposition.failures == 3
    (line,) = caplog.records  # one line, then counted
    assert "disk read failed" in line.getMessage() and line.exc_info is None


def test_a_rendering_that_fails_whole_keeps_the_last_good_one_and_otlp(caplog) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    from otelpower.export.exposition import IsolatingRegistry
    from otelpower.export.shared_reader import SharedReader

    class Kept(MetricExporter):
        def __init__(self) -> None:
            super().__init__()
            self.exports = 0

        def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
            self.exports += 1
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
            return None

    registry, exporter = IsolatingRegistry(), Kept()
    shared = SharedReader(registry, exporter, 3600)
    provider = MeterProvider(metric_readers=[shared])
    label = {"device": "ok"}
    provider.get_meter("t").create_observable_gauge(
        "plug_watts", callbacks=[lambda _: [Observation(5.0, label)]]
    )
    exposition = CachedExposition(registry)
    shared.refresh = exposition.render
    good = exposition.render()
    assert good is not None and b'plug_watts{device="ok"} 5.0' in good.body
    label["device"] = "\udcff"  # not encodable: the text of the whole rendering fails
    with caplog.at_level("WARNING", logger="otelpower.export.exposition"):
        assert exposition.render() is good
        assert shared.export_now()  # it renders once more, and OTLP still exports
    assert exposition.failures == 2 and exporter.exports == 1
    assert len(caplog.records) == 1
    provider.shutdown()
