"""Pure arithmetic on series: alignment, differences, availability, recovery, verdicts.

A series is a list of ``(unix_seconds, value)`` points, as a range query returns them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from otelpower.readers import registry

Points = Sequence[tuple[float, float]]

# the readers' protocols (registry order: the direct path first); the report compares the
# native and Matter paths of each plug
PROTOCOLS = registry.protocols()
# Readings below this (on both paths) are left out of the relative difference (0 W / 0 W).
MIN_RELATIVE_W = 1.0
# Availability closer than this (fraction, i.e. 1 percentage point) counts as a tie.
AVAILABILITY_MARGIN = 0.01
# Median relative difference above this means the paths disagree: investigate first.
DISAGREE_PCT = 5.0


def align(a: Points, b: Points) -> list[tuple[float, float, float]]:
    """``(t, a, b)`` for every timestamp (to the millisecond) present in both series."""
    index = {round(t * 1000): v for t, v in a}
    out = []
    for t, v in b:
        key = round(t * 1000)
        if key in index and not math.isnan(index[key]) and not math.isnan(v):
            out.append((t, index[key], v))
    out.sort()
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stat:
    mean: float
    median: float
    p95: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat | None:
        if not values:
            return None
        return cls(sum(values) / len(values), percentile(values, 50), percentile(values, 95))


@dataclass(frozen=True)
class DiffStats:
    """native - matter over aligned points: bias, absolute (W) and relative (%) spread."""

    n: int
    bias_w: float  # mean of the signed difference
    abs_w: Stat
    rel_pct: Stat | None  # None when every aligned pair was below MIN_RELATIVE_W

    @classmethod
    def of(cls, pairs: Iterable[tuple[float, float]]) -> DiffStats | None:
        """From ``(native, matter)`` pairs; None without any."""
        diffs, rel = [], []
        for native, matter in pairs:
            d = native - matter
            diffs.append(d)
            scale = (abs(native) + abs(matter)) / 2
            if max(abs(native), abs(matter)) >= MIN_RELATIVE_W:
                rel.append(abs(d) / scale * 100.0)
        abs_stat = Stat.of([abs(d) for d in diffs])
        if abs_stat is None:
            return None
        return cls(len(diffs), sum(diffs) / len(diffs), abs_stat, Stat.of(rel))


@dataclass(frozen=True)
class UpStats:
    """From a 0/1 ``up`` series: share of samples up, and outages that ended (1→0→1)."""

    samples: int = 0
    up_samples: int = 0
    outages: int = 0  # 1→0 transitions
    recoveries: list[float] = field(default_factory=list)  # seconds from first 0 to next 1
    down_at_end: bool = False

    @property
    def availability(self) -> float | None:
        return self.up_samples / self.samples if self.samples else None

    @property
    def mttr_s(self) -> float | None:
        return sum(self.recoveries) / len(self.recoveries) if self.recoveries else None

    @classmethod
    def of(cls, points: Points) -> UpStats:
        """Gaps (no sample) are unknown: neither up nor down, and they do not end an outage."""
        samples = up = outages = 0
        recoveries: list[float] = []
        prev: bool | None = None
        down_since: float | None = None
        for t, v in sorted(points):
            if math.isnan(v):
                continue
            is_up = v >= 0.5
            samples += 1
            up += is_up
            if prev is True and not is_up:
                outages += 1
                down_since = t
            elif is_up and down_since is not None:
                recoveries.append(t - down_since)
                down_since = None
            prev = is_up
        return cls(samples, up, outages, recoveries, down_at_end=prev is False)

    @classmethod
    def combine(cls, parts: Iterable[UpStats]) -> UpStats:
        parts = list(parts)
        return cls(
            samples=sum(p.samples for p in parts),
            up_samples=sum(p.up_samples for p in parts),
            outages=sum(p.outages for p in parts),
            recoveries=[r for p in parts for r in p.recoveries],
            down_at_end=any(p.down_at_end for p in parts),
        )


@dataclass(frozen=True)
class PathSummary:
    """What the verdict weighs for one protocol (of one device, or overall)."""

    protocol: str
    up: UpStats
    p99_s: float | None = None
    fields: int = 0


@dataclass(frozen=True)
class Recommendation:
    preferred: str | None
    reason: str
    warning: str | None = None

    def text(self) -> str:
        head = f"prefer **{self.preferred}**" if self.preferred else "no preference possible"
        out = f"{head}: {self.reason}"
        return f"{out}. **Caution:** {self.warning}" if self.warning else out


def _pct(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.1f}%"


def recommend(paths: Sequence[PathSummary], diff: DiffStats | None) -> Recommendation:
    """Higher availability wins (beyond AVAILABILITY_MARGIN); then fewer outages; then
    the path with more fields; then native (direct, no controller in between). When the
    paths disagree by more than DISAGREE_PCT (median), say so: a path may be miscalibrated.
    """
    with_data = [p for p in paths if p.up.availability is not None]
    if not with_data:
        return Recommendation(None, "no up series on either path")
    if len(with_data) == 1:
        only = with_data[0]
        return Recommendation(
            only.protocol,
            f"only {only.protocol} has data (availability {_pct(only.up.availability)})",
        )
    by = {p.protocol: p for p in with_data}
    n, m = by["native"], by["matter"]
    an, am = n.up.availability or 0.0, m.up.availability or 0.0
    avail = f"availability native {_pct(an)} vs matter {_pct(am)}"
    if abs(an - am) > AVAILABILITY_MARGIN:
        winner = n if an > am else m
        reason = f"higher {avail}"
        if winner.up.mttr_s is not None:
            reason += f", mean time to recover {winner.up.mttr_s:.1f} s"
    elif n.up.outages != m.up.outages:
        winner = n if n.up.outages < m.up.outages else m
        reason = (
            f"{avail} (a tie within {AVAILABILITY_MARGIN * 100:g} points), fewer outages"
            f" ({n.up.outages} native vs {m.up.outages} matter)"
        )
    elif n.fields != m.fields:
        winner = n if n.fields > m.fields else m
        reason = f"{avail} (a tie), more fields ({n.fields} native vs {m.fields} matter)"
    else:
        winner = n
        reason = f"{avail} (a tie); native reads the plug directly"
    warning = None
    if diff is not None and diff.rel_pct is not None and diff.rel_pct.median > DISAGREE_PCT:
        warning = (
            f"the paths disagree: median |native - matter| {diff.abs_w.median:.2f} W"
            f" ({diff.rel_pct.median:.1f}% > {DISAGREE_PCT:g}%); check the plug's calibration"
            " and units and keep both paths until that is explained"
        )
    elif diff is not None:
        rel = "n/a" if diff.rel_pct is None else f"{diff.rel_pct.median:.1f}%"
        reason += f"; the readings agree (median |diff| {diff.abs_w.median:.2f} W, {rel})"
    return Recommendation(winner.protocol, reason, warning)
