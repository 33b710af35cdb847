"""Counters that only go up, except at a real reset.

Plugs report energy counters with jitter: a lifetime counter read 0.060 then 0.059 kWh. Sent
out as is, the small decrease looks like a counter reset to Prometheus and VictoriaMetrics,
and ``increase()`` counts the whole value again. The guard holds the last value through such
a decrease and lets a real reset (the month counter at month end, an erased meter) through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from otelpower.core.model import Reading
from otelpower.core.quantities import QUANTITIES

RESOLUTION_KWH = 0.001  # plugs count in whole Wh
RESET_SHARE = 0.9  # a real reset drops below 90 % of the previous value


def is_reset(previous: float, value: float) -> bool:
    """A decrease beyond the plug's resolution and beyond 10 % of the previous value."""
    return previous - value > RESOLUTION_KWH and value < previous * RESET_SHARE


class CounterGuard:
    """Per device, outlet and counter: the value last sent out."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str | None, str], float] = {}

    def apply(self, device_id: str, readings: Iterable[Reading]) -> tuple[Reading, ...]:
        return tuple(self._one(device_id, r) for r in readings)

    def _one(self, device_id: str, reading: Reading) -> Reading:
        held: dict[str, float] = {}
        for key, value in reading.values.items():
            quantity = QUANTITIES.get(key)
            if quantity is None or not quantity.counter:
                continue
            slot = (device_id, reading.outlet, key)
            previous = self._last.get(slot)
            if previous is not None and value < previous and not is_reset(previous, value):
                held[key] = previous  # jitter: hold the last value
            else:
                self._last[slot] = value
        if not held:
            return reading
        return replace(reading, values={**reading.values, **held})

    def forget(self, device_id: str) -> None:
        for slot in [s for s in self._last if s[0] == device_id]:
            del self._last[slot]
