"""Device values: nonsense is dropped with a reason, never exported (pure logic)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from otelpower.core import plausible
from otelpower.core.plausible import Unreadable
from otelpower.core.quantities import QUANTITIES

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(Unreadable, st.text(max_size=10)),
)


def test_each_reason() -> None:
    r = plausible.reading(
        {
            "power_watts": -3.0,
            "voltage_volts": float("nan"),
            "current_amperes": "0.5",
            "energy_kilowatt_hours": 1e30,
            "relay_on": True,
            "rssi_dbm": -60,
            "frequency_hertz": Unreadable("TypeError"),
            "energy_today_kilowatt_hours": None,
            "power_factor_ratio": -0.5,
        },
        outlet="2",
    )
    assert r.values == {"rssi_dbm": -60.0, "power_factor_ratio": -0.5}
    assert r.outlet == "2"
    assert {(d.key, d.reason) for d in r.dropped} == {
        ("power_watts", "negative"),
        ("voltage_volts", "not_finite"),
        ("current_amperes", "wrong_type"),
        ("energy_kilowatt_hours", "out_of_range"),
        ("relay_on", "wrong_type"),
        ("frequency_hertz", "unreadable"),
    }
    assert all(d.reason in plausible.REASONS for d in r.dropped)


def test_shown_value_is_cut_short() -> None:
    (drop,) = plausible.reading({"power_watts": "x" * 10_000}).dropped
    assert len(drop.shown) == plausible.SHOWN_CHARS


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(QUANTITIES)), ANY_VALUE, max_size=8))
def test_every_value_is_kept_in_bounds_or_dropped_with_a_reason(raw: dict) -> None:
    r = plausible.reading(raw)
    for key, value in r.values.items():
        q = QUANTITIES[key]
        assert isinstance(value, float) and math.isfinite(value)
        assert q.low <= value <= q.high
    dropped = {d.key for d in r.dropped}
    assert not dropped & set(r.values)
    assert set(r.values) | dropped == {k for k, v in raw.items() if v is not None}
