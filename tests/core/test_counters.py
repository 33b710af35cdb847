"""Energy counters: jitter is held, real resets go through."""

from __future__ import annotations

import pytest

from otelpower.core.counters import CounterGuard, is_reset
from otelpower.core.model import Reading
from otelpower.core.quantities import ENERGY_TOTAL, POWER

KEY = ENERGY_TOTAL.key


@pytest.mark.parametrize(
    ("previous", "value", "reset"),
    [
        (0.060, 0.059, False),  # seen on a real plug: 1 Wh of jitter
        (1000.0, 999.9, False),  # a lifetime counter a little behind
        (0.002, 0.001, False),  # within the plug's 1 Wh resolution
        (40.0, 0.0, True),  # a month counter at month end
        (40.0, 0.5, True),
        (12.0, 10.0, True),  # back after days offline across month end
        (0.060, 0.061, False),
    ],
)
def test_what_counts_as_a_reset(previous: float, value: float, reset: bool) -> None:
    assert is_reset(previous, value) is reset


def test_guard_holds_jitter_and_passes_resets() -> None:
    guard = CounterGuard()

    def sent(value: float, outlet: str | None = None) -> float:
        (r,) = guard.apply("d", [Reading({KEY: value, POWER.key: 5.0}, outlet)])
        assert r.values[POWER.key] == 5.0  # gauges untouched
        return r.values[KEY]

    assert [sent(v) for v in (0.060, 0.059, 0.059, 0.061, 0.0, 0.002)] == [
        0.060,
        0.060,
        0.060,
        0.061,
        0.0,
        0.002,
    ]
    assert sent(0.5, outlet="2") == 0.5  # each outlet is its own counter
    guard.forget("d")
    assert sent(0.001) == 0.001
