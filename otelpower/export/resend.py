"""A bounded resend buffer for OTLP: what the collector did not take is sent again.

The SDK's OTLP exporter drops a batch once its retries fail (the collector restarting or
rolled out, or refusing while its WAL is full). ``ResendingExporter`` keeps every batch it is
handed in a queue and sends the queue oldest first, so the backlog of a failed export goes out
at the next one, before anything newer (a receiver keeping the last value, such as the
collector's Prometheus exporter, never goes back in time). Every point is kept: a cumulative
counter's later point would make up for a lost one, but a gauge needs each point.

Bounded by OTELPOWER_OTLP_RESEND_POINTS data points (default 200,000, about 40 MB at ~200 B a
point: at 1,000 plugs about 13 exports, 3 minutes at a 15 s interval; at 100 plugs half an
hour); past the bound the oldest batches are dropped and counted (``dropped_points``:
otelpower_export_points_dropped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from otelpower.export import collected

log = logging.getLogger(__name__)

DEFAULT_MAX_POINTS = 200_000
ENV = "OTELPOWER_OTLP_RESEND_POINTS"


def max_points(environ: Mapping[str, str]) -> int:
    """OTELPOWER_OTLP_RESEND_POINTS (0 turns the buffer off: a failed batch is dropped)."""
    text = environ.get(ENV, "").strip()
    return int(text) if text else DEFAULT_MAX_POINTS


def count_points(data: MetricsData) -> int:
    return sum(len(metric.data.data_points) for metric in collected.metrics(data))


class ResendingExporter(MetricExporter):
    """Queues every batch for ``inner`` and sends the queue oldest first, up to a bound."""

    def __init__(self, inner: MetricExporter, max_points: int = DEFAULT_MAX_POINTS) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._max = max_points
        self._queue: deque[tuple[MetricsData, int]] = deque()
        self._lock = threading.Lock()
        self.buffered_points = 0  # waiting in the queue
        self.dropped_points = 0  # dropped at the bound, oldest first
        self.resent_batches = 0  # delivered after at least one failed attempt
        self._closing = threading.Lock()
        self._closed = False

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            self._push(metrics_data)
            newest = metrics_data
            while self._queue:
                data, points = self._queue[0]
                left_ms = max(1.0, (deadline - time.monotonic()) * 1000)
                result = self._inner.export(data, timeout_millis=left_ms, **kwargs)
                if result is not MetricExportResult.SUCCESS:
                    return result
                self._queue.popleft()
                self.buffered_points -= points
                if data is not newest:
                    self.resent_batches += 1
                if time.monotonic() >= deadline:
                    break  # the rest at the next export
            return MetricExportResult.SUCCESS

    def _push(self, data: MetricsData) -> None:
        points = count_points(data)
        dropped = 0
        while self._queue and self.buffered_points + points > self._max:
            _, old = self._queue.popleft()
            self.buffered_points -= old
            dropped += old
        if dropped:
            self.dropped_points += dropped
            log.warning(
                "OTLP resend buffer full (%s=%d points): dropped the oldest %d points"
                " (otelpower_export_points_dropped counts them)",
                ENV,
                self._max,
                dropped,
            )
        self._queue.append((data, points))
        self.buffered_points += points

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def abort(self) -> None:
        """Closes the SDK exporter now: an export retrying gives up, later ones fail at once
        (shutdown's time is up; takes no lock an export in flight holds)."""
        self._close()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.buffered_points:  # read without the lock: an aborted export may still hold it
            log.warning(
                "OTLP: %d points in %d batches not delivered at shutdown",
                self.buffered_points,
                len(self._queue),
            )
        self._close(timeout_millis=timeout_millis, **kwargs)

    def _close(self, **kwargs: Any) -> None:
        with self._closing:
            if self._closed:
                return
            self._closed = True
        self._inner.shutdown(**kwargs)
