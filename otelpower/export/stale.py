"""Stale markers over OTLP: tell the backend at once that a series vanished.

The Python SDK simply stops reporting a series whose device went away, so a remote-write
backend would keep showing its last value for minutes. ``StaleMarkingExporter`` remembers
the gauge and sum series of the last successful export; a series missing from the next one
is sent once more as a data point flagged NO_RECORDED_VALUE (the Collector's
prometheusremotewrite exporter turns it into a Prometheus stale marker). Markers stay pending
until an export succeeds, are sent once per vanish, and at shutdown every live series is
marked. The SDK's data points have no ``flags`` field, so a marker travels as NaN through
the SDK types and gets its flag when the OTLP request is encoded (``flag_markers``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import DataPointFlags
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otelpower.export import collected
from otelpower.export.resend import ResendingExporter

log = logging.getLogger(__name__)

_NO_RECORDED_VALUE = DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK


@dataclass(frozen=True)
class _Stream:
    """Everything needed to re-create one metric stream for a marker."""

    resource: Resource
    scope: InstrumentationScope
    name: str
    description: str
    unit: str
    sum_kind: tuple[Any, bool] | None  # (temporality, monotonic) for sums, None for gauges

    def key(self) -> tuple:
        return (
            frozenset(self.resource.attributes.items()),
            self.scope.name,
            self.scope.version,
            self.name,
        )


class _Series:
    """One gauge or sum series as exported: its stream, its attributes (the data point's own
    mapping, which a marker needs) and its start time. Equal, and hashed, by stream and
    attributes only, so a series is its own key: a frozenset of the attributes' items as the
    key cost ~1.2 KB a series (~12 MB at 1,000 plugs)."""

    __slots__ = ("_hash", "attributes", "start_time_unix_nano", "stream", "stream_key")

    def __init__(
        self, stream: _Stream, stream_key: tuple, attributes: Any, start_time_unix_nano: int
    ) -> None:
        self.stream, self.stream_key = stream, stream_key
        self.attributes = attributes
        self.start_time_unix_nano = start_time_unix_nano
        self._hash = hash((stream_key, frozenset((attributes or {}).items())))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Series)
            and self._hash == other._hash
            and self.stream_key == other.stream_key
            and (self.attributes or {}) == (other.attributes or {})
        )

    def __repr__(self) -> str:
        return f"_Series({self.stream.name}, {self.attributes!r})"


def _series(data: MetricsData) -> set[_Series]:
    out: set[_Series] = set()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if isinstance(metric.data, Sum):
                    kind = (metric.data.aggregation_temporality, metric.data.is_monotonic)
                elif isinstance(metric.data, Gauge):
                    kind = None
                else:
                    continue  # histograms are self-describing over time; not marked
                stream = _Stream(
                    rm.resource, sm.scope, metric.name, metric.description, metric.unit, kind
                )
                stream_key = stream.key()  # one shared tuple per stream: ~15k series at 1k plugs
                for point in metric.data.data_points:
                    if isinstance(point.value, float) and math.isnan(point.value):
                        continue  # one of our own markers
                    series = _Series(
                        stream, stream_key, point.attributes, point.start_time_unix_nano
                    )
                    out.discard(series)  # the last point of a series stands, as in a dict
                    out.add(series)
    return out


def _build(stream: _Stream, points: list[NumberDataPoint]) -> Metric:
    if stream.sum_kind is None:
        body: Gauge | Sum = Gauge(points)
    else:
        body = Sum(points, stream.sum_kind[0], stream.sum_kind[1])
    return Metric(stream.name, stream.description, stream.unit, body)


def with_markers(data: MetricsData, markers: Iterable[_Series], now_ns: int) -> MetricsData:
    """``data`` plus a NaN point per marker, in its own resource, scope and metric.

    OTLP encoders merge by resource and scope, so the result has each pair only once.
    """
    by_stream: dict[tuple, list[_Series]] = {}
    for m in markers:
        by_stream.setdefault(m.stream_key, []).append(m)
    if not by_stream:
        return data
    # resource key -> (resource, schema, scope key -> (scope, schema, name -> metric))
    tree: dict[frozenset, tuple[Resource, str, dict[tuple, tuple[Any, str, dict[str, Metric]]]]]
    tree = {}

    def metrics_of(
        resource: Resource, scope: InstrumentationScope, r_schema: str = "", s_schema: str = ""
    ) -> dict[str, Metric]:
        scopes = tree.setdefault(frozenset(resource.attributes.items()), (resource, r_schema, {}))
        return scopes[2].setdefault((scope.name, scope.version), (scope, s_schema, {}))[2]

    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            metrics = metrics_of(rm.resource, sm.scope, rm.schema_url, sm.schema_url)
            for metric in sm.metrics:
                metrics[metric.name] = metric
    for series in by_stream.values():
        stream = series[0].stream
        metrics = metrics_of(stream.resource, stream.scope)
        current = metrics.get(stream.name)
        points = list(current.data.data_points) if current is not None else []
        points += [
            NumberDataPoint(s.attributes, s.start_time_unix_nano, now_ns, math.nan) for s in series
        ]
        metrics[stream.name] = _build(stream, points)
    return MetricsData(
        [
            ResourceMetrics(
                resource,
                [ScopeMetrics(scope, list(ms.values()), ss) for scope, ss, ms in scopes.values()],
                r_schema,
            )
            for resource, r_schema, scopes in tree.values()
        ]
    )


def flag_markers(request: ExportMetricsServiceRequest) -> int:
    """Flag every NaN gauge/sum point NO_RECORDED_VALUE; returns how many were flagged."""
    flagged = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                body = metric.gauge if metric.HasField("gauge") else None
                if body is None and metric.HasField("sum"):
                    body = metric.sum
                if body is None:
                    continue
                for point in body.data_points:
                    if point.HasField("as_double") and math.isnan(point.as_double):
                        point.flags |= _NO_RECORDED_VALUE
                        flagged += 1
    return flagged


class StaleMarkingExporter(MetricExporter):
    """Wraps an OTLP exporter whose encoding calls ``flag_markers`` (see ``otlp_exporter``).

    Also counts exports; ``markers=False`` only counts (the control run without markers)."""

    def __init__(
        self,
        inner: ResendingExporter,
        *,
        markers: bool = True,
        target: str = "",
        reason: Callable[[], str] = lambda: "",
    ) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._markers = markers
        self._target, self._reason = target, reason
        self._failing = 0  # exports failed in a row (one log line when it starts and ends)
        self.exports_ok = 0
        self.exports_failed = 0
        self._lock = threading.Lock()
        self._live: set[_Series] = set()  # as of the last successful export
        self._pending: set[_Series] = set()  # vanished, marker not yet delivered
        self.markers_sent = 0
        self._aborted = False

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        with self._lock:
            current = _series(metrics_data)
            self._pending -= current  # came back before its marker went out
            self._pending |= self._live - current
            markers = set(self._pending) if self._markers else set()
            # at the collection's time, not the export's: the rendering OTLP sends may be a
            # few seconds old, and a marker later than the series' last points would leave a
            # query between the two seeing the plug down and its values still there
            at = collected.collected_at_ns(metrics_data) or time.time_ns()
            data = with_markers(metrics_data, markers, at)
            result = self._inner.export(data, timeout_millis=timeout_millis, **kwargs)
            self._count(result)
            if result is MetricExportResult.SUCCESS:
                self._pending -= markers
                self.markers_sent += len(markers)
                self._live = current
            else:
                # the backend may have missed these too: mark them if they vanish later
                self._live = current | self._live
            return result

    @property
    def resend(self) -> ResendingExporter:
        """The resend buffer under this exporter (its counts are self-metrics)."""
        return self._inner

    def _count(self, result: MetricExportResult) -> None:
        reason = self._reason()  # what the SDK said during this export, if anything
        if result is MetricExportResult.SUCCESS:
            self.exports_ok += 1
            if self._failing:
                log.info(
                    "OTLP export to %s works again (%d export(s) failed meanwhile)",
                    self._target,
                    self._failing,
                )
            self._failing = 0
            return
        self.exports_failed += 1
        self._failing += 1
        if self._failing == 1:
            log.warning(
                "OTLP export to %s failing%s; retried at every export, logged again when it"
                " works (otelpower_exports_total counts them)",
                self._target,
                f" ({reason})" if reason else "",
            )

    @property
    def failing(self) -> bool:
        """The last export failed (the collector is not taking them)."""
        return self._failing > 0

    def abort(self) -> None:
        """Stops waiting for the collector (shutdown's time is up, or it is failing): an export
        retrying now gives up, later ones fail at once and ``shutdown`` sends nothing more."""
        self._aborted = True
        self._inner.abort()

    def mark_all_stale(self, timeout_millis: float = 10_000) -> MetricExportResult:
        """Send a marker for every live and pending series (clean shutdown)."""
        with self._lock:
            markers = self._pending | self._live if self._markers else set()
            if not markers:
                return MetricExportResult.SUCCESS
            data = with_markers(MetricsData([]), markers, time.time_ns())
            result = self._inner.export(data, timeout_millis=timeout_millis)
            if result is MetricExportResult.SUCCESS:
                self.markers_sent += len(markers)
                self._live, self._pending = set(), set()
            else:
                log.warning("could not send stale markers for %d series at shutdown", len(markers))
            return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._aborted:
            log.warning(
                "OTLP: stopped without waiting longer for %s: the last values and stale markers"
                " of %d series not delivered",
                self._target,
                len(self._live | self._pending),
            )
        else:
            self.mark_all_stale(min(timeout_millis, 10_000))
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
