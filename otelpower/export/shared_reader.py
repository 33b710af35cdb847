"""One SDK metric storage for both /metrics and OTLP.

Each OTel ``MetricReader`` keeps its own copy of every series (~25 MB at 1,000 plugs) and
runs the observable callbacks on its own. With the pull endpoint and OTLP both on, this
reader is the only one: /metrics renderings collect through it as the Prometheus reader
does, and every export interval a thread sends the newest rendering's collection to the
OTLP exporter, or, when none is newer than the last export, renders once more and sends that.
A poll cycle is one rendering (otelpower.export.exposition batches its changes), so one
collection a cycle serves both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from prometheus_client import CollectorRegistry, generate_latest

from otelpower.export.cardinality import OverflowWatch
from otelpower.export.threads import start_thread

log = logging.getLogger(__name__)


class _Watched:
    """Every collection a reader receives checked for the SDK's overflow series."""

    watch = OverflowWatch()

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self.watch.check(metrics_data)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)  # type: ignore[misc]


class WatchedPrometheusReader(_Watched, PrometheusMetricReader):
    """The Prometheus reader, watched."""


class WatchedPeriodicReader(_Watched, PeriodicExportingMetricReader):
    """The OTLP-only reader, watched."""


class SharedReader(WatchedPrometheusReader):
    def __init__(
        self, registry: CollectorRegistry, exporter: MetricExporter, interval_s: float
    ) -> None:
        super().__init__(scope_info_enabled=False, registry=registry)
        self._exporter = exporter
        self._interval_s = interval_s
        #: the newest collection not exported yet (one collection's points, until it is)
        self._pending: MetricsData | None = None
        self._export_lock = threading.Lock()  # one export at a time, as the OTel readers do
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: collects through the registry; the app points it at the /metrics renderer
        self.refresh: Callable[[], object] = lambda: generate_latest(registry)

    def start(self) -> None:
        self._thread = start_thread(self._loop, "otlp-export")

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if metrics_data is not None:
            self._pending = metrics_data
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.export_now(fresh=False)

    def export_now(self, timeout_millis: float = 10_000, *, fresh: bool = True) -> bool:
        """Export a collection: a new one (rendering /metrics on the way), or with ``fresh``
        False the newest rendering's when it was not exported yet."""
        with self._export_lock:
            try:
                if fresh or self._pending is None:
                    self.refresh()
                data, self._pending = self._pending, None
                if data is None:
                    return False
                result = self._exporter.export(data, timeout_millis=timeout_millis)
                return result is MetricExportResult.SUCCESS
            except Exception:  # the next interval tries again
                log.exception("OTLP export failed")
                return False

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        # a plain collect() would queue a second collection for the next rendering
        self.export_now(timeout_millis)
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._stop.set()
        retrying = False  # an export still in flight: the last one would wait on it
        if self._thread is not None:
            self._thread.join(timeout=timeout_millis / 1000)
            retrying = self._thread.is_alive()
            self._thread = None
        if not retrying:
            self.export_now(min(timeout_millis, 10_000))  # the last values, then stale markers
        self._exporter.shutdown(timeout_millis=timeout_millis)
        super().shutdown(timeout_millis, **kwargs)
