"""Walking one SDK collection (``MetricsData``) metric by metric."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.sdk.metrics.export import Metric, MetricsData


def metrics(data: MetricsData) -> Iterator[Metric]:
    """Every metric of every resource and scope in ``data``."""
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics
