"""Walking one SDK collection (``MetricsData``) metric by metric."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.sdk.metrics.export import Metric, MetricsData


def metrics(data: MetricsData) -> Iterator[Metric]:
    """Every metric of every resource and scope in ``data``."""
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics


def collected_at_ns(data: MetricsData) -> int | None:
    """When ``data`` was collected (its newest point's time), None when it has no points."""
    return max((p.time_unix_nano for m in metrics(data) for p in m.data.data_points), default=None)
