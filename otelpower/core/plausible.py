"""Plausibility of device values: nonsense is dropped with a reason, never exported.

A value is kept when it is a number inside its quantity's bounds (otelpower.core.quantities).
``None`` means "not measured" and is simply absent; everything else that is not kept is a
*dropped* value with one of ``REASONS``, counted in ``otelpower_values_dropped_total``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from otelpower.core.model import Dropped, Reading
from otelpower.core.quantities import QUANTITIES

REASONS = ("wrong_type", "not_finite", "negative", "out_of_range", "unreadable")


class Unreadable:
    """A value the client library could not make sense of (its getter raised)."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"<unreadable: {self.error}>"


SHOWN_CHARS = 40  # a dropped value is shown in logs cut to this length


def judge(key: str, value: Any) -> float | str:
    """The value as a float, or the reason it is dropped."""
    if isinstance(value, Unreadable):
        return "unreadable"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "wrong_type"
    number = float(value)
    if not math.isfinite(number):
        return "not_finite"
    q = QUANTITIES[key]  # a key outside the catalogue is a reader bug, not device input
    if q.low <= number <= q.high:
        return number
    return "negative" if number < 0 <= q.low else "out_of_range"


def reading(raw: Mapping[str, Any], outlet: str | None = None) -> Reading:
    """A Reading of the plausible values in ``raw``; the rest go to ``Reading.dropped``."""
    values: dict[str, float] = {}
    dropped: list[Dropped] = []
    for key, value in raw.items():
        if value is None:
            continue
        judged = judge(key, value)
        if isinstance(judged, float):
            values[key] = judged
        else:
            dropped.append(Dropped(key, judged, repr(value)[:SHOWN_CHARS]))
    return Reading(values, outlet, tuple(dropped))
