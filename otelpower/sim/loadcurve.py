"""Deterministic live readings: a smooth load curve per outlet plus an energy counter."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

# (relative amplitude, period in seconds) of the sine terms that shape the load.
# The last one is a small fast wobble that stands in for measurement jitter.
_TERMS = ((0.30, 900.0), (0.10, 97.0), (0.03, 7.3))
_VOLT_WOBBLE = (0.008, 61.0)


@dataclass(frozen=True)
class Sample:
    """One reading of an outlet."""

    power_w: float
    voltage_v: float
    current_a: float
    energy_wh: float  # counter since the meter was created, plus its start value
    on: bool


class LoadCurve:
    """Power as a smooth function of wall-clock time; seeded per outlet."""

    def __init__(self, base_w: float, nominal_v: float, seed: int) -> None:
        rng = random.Random(seed)
        self.base_w = base_w
        self.nominal_v = nominal_v
        self._phases = [rng.uniform(0, 2 * math.pi) for _ in _TERMS]
        self._v_phase = rng.uniform(0, 2 * math.pi)

    def power(self, t: float) -> float:
        """Watts at time ``t`` (epoch seconds); sampled once per second like a real meter."""
        t = math.floor(t)
        shape = 1.0 + sum(
            a * math.sin(2 * math.pi * t / p + ph)
            for (a, p), ph in zip(_TERMS, self._phases, strict=True)
        )
        return self.base_w * shape

    def voltage(self, t: float) -> float:
        """Volts at time ``t``."""
        a, p = _VOLT_WOBBLE
        return self.nominal_v * (
            1.0 + a * math.sin(2 * math.pi * math.floor(t) / p + self._v_phase)
        )

    def energy_wh(self, t0: float, t1: float) -> float:
        """Integral of the (continuous) curve from ``t0`` to ``t1`` in Wh."""
        total = t1 - t0
        for (a, p), ph in zip(_TERMS, self._phases, strict=True):
            w = 2 * math.pi / p
            total -= a / w * (math.cos(w * t1 + ph) - math.cos(w * t0 + ph))
        return self.base_w * total / 3600.0


class Meter:
    """One outlet's meter: live curve or a fixed (static) reading, gated by the relay."""

    def __init__(
        self,
        curve: LoadCurve,
        *,
        start_wh: float,
        on: bool,
        static: Sample | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.curve = curve
        self.static = static
        self._clock = clock
        self._acc_wh = start_wh
        self._since = clock()
        self.on = on
        self.on_since = self._since

    def set_on(self, on: bool) -> None:
        """Switch the relay; energy accumulated so far is kept."""
        if on == self.on:
            return
        now = self._clock()
        if self.on and self.static is None:
            self._acc_wh += self.curve.energy_wh(self._since, now)
        self._since = now
        self.on = on
        self.on_since = now

    def energy_at(self, t: float) -> float:
        """Energy counter (Wh) at time ``t`` (not before the last relay switch)."""
        if self.static is not None:
            return self.static.energy_wh
        if not self.on or t <= self._since:
            return self._acc_wh
        return self._acc_wh + self.curve.energy_wh(self._since, t)

    def reset(self) -> None:
        """The counter restarts from 0 (the meter's statistics were erased)."""
        now = self._clock()
        self._acc_wh = -self.curve.energy_wh(self._since, now) if self.on else 0.0
        if self.static is not None:
            self.static = Sample(**{**self.static.__dict__, "energy_wh": 0.0})

    def sample(self, now: float | None = None) -> Sample:
        """Current reading."""
        now = self._clock() if now is None else now
        if self.static is not None:
            s = self.static
            if self.on:
                return s
            return Sample(0.0, s.voltage_v, 0.0, s.energy_wh, False)
        volts = self.curve.voltage(now)
        energy = self._acc_wh
        if not self.on:
            return Sample(0.0, volts, 0.0, energy, False)
        energy += self.curve.energy_wh(self._since, now)
        watts = self.curve.power(now)
        return Sample(watts, volts, watts / volts, energy, True)
