"""No exemplars: otelpower records no traces, so there is never one to sample.

The SDK gives every series a reservoir anyway and walks it at every collection (~5 % of a
collection at 1,000 plugs); this one holds nothing.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Exemplar, ExemplarReservoir
from opentelemetry.util.types import Attributes


class NoExemplars(ExemplarReservoir):
    def __init__(self, **_: Any) -> None:  # the SDK passes size= or boundaries=
        pass

    def offer(
        self, value: float, time_unix_nano: int, attributes: Attributes, context: Context
    ) -> None:
        pass

    def collect(self, point_attributes: Attributes) -> list[Exemplar]:
        return []
