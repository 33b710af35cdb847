"""How many series one metric may hold, and a loud line when a metric reaches it.

The OTel SDK keeps every attribute set an observable instrument ever reported (with
cumulative temporality it never forgets one), and beyond its limit (2,000 by default)
folds every new set into one ``otel_metric_overflow="true"`` series: a device's
``device_status`` that changes five times is five sets, so 600 such devices lost their
status silently. otelpower raises the limit for every instrument (``LIMIT``: 10,000
devices that each went through every status fit with room to spare; what that costs in
memory is in bench/cardinality.py) and logs, once per metric, when a collection carries the
overflow series anyway.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.metrics.view import View

from otelpower.export import collected
from otelpower.export.exemplars import NoExemplars

log = logging.getLogger(__name__)

#: attribute sets per instrument and process; shard (``--shard i/N``) beyond it
LIMIT = 250_000
#: DeviceStatus has seven members: a device that went through each leaves seven sets
DEVICES_AT_LIMIT = LIMIT // 7

_OVERFLOW = "otel.metric.overflow"


def views(limit: int = LIMIT) -> list[View]:
    """The MeterProvider's views: every instrument as it is, with ``limit`` (and no
    exemplars: otelpower.export.exemplars)."""
    return [
        View(
            instrument_name="*",
            aggregation_cardinality_limit=limit,
            exemplar_reservoir_factory=lambda _: NoExemplars,
        )
    ]


class OverflowWatch:
    """Logs (once per metric) a collection that holds the SDK's overflow series."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.overflowed: set[str] = set()

    def check(self, data: MetricsData | None) -> None:
        if data is None:
            return
        for metric in collected.metrics(data):
            if metric.name in self.overflowed:
                continue
            if any(_OVERFLOW in (p.attributes or ()) for p in metric.data.data_points):
                self.overflowed.add(metric.name)
                log.error(
                    "%s reached %d series in this process (every label set it ever had:"
                    " devices x statuses, outlets, renames): new series are folded into one"
                    ' otel_metric_overflow="true" series and their devices lost from it;'
                    " split the plugs with --shard i/N, or restart to forget series of the"
                    " past",
                    metric.name,
                    self.limit,
                )
