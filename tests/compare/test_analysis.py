"""The pure analysis of ``otelpower compare`` on hand-made series."""

from __future__ import annotations

import math

import pytest

from otelpower.compare.analysis import (
    DiffStats,
    PathSummary,
    UpStats,
    align,
    percentile,
    recommend,
)
from otelpower.compare.query import parse_duration, parse_time


def test_align_keeps_common_timestamps_only() -> None:
    native = [(10.0, 1.0), (11.0, 2.0), (12.0, 3.0), (14.0, math.nan)]
    matter = [(11.0004, 2.5), (12.0, 3.5), (13.0, 9.0), (14.0, 4.0)]
    assert align(native, matter) == [(11.0004, 2.0, 2.5), (12.0, 3.0, 3.5)]
    assert align([], matter) == []


def test_percentile_interpolates() -> None:
    assert percentile([3, 1, 2], 50) == 2
    assert percentile([0, 10], 95) == pytest.approx(9.5)
    assert percentile([7], 95) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_difference_stats_absolute_and_relative() -> None:
    pairs = [(101.0, 100.0), (99.0, 100.0), (102.0, 100.0), (100.0, 100.0)]
    d = DiffStats.of(pairs)
    assert d is not None
    assert d.n == 4
    assert d.bias_w == pytest.approx((1 - 1 + 2 + 0) / 4)
    assert d.abs_w.mean == pytest.approx(1.0)
    assert d.abs_w.median == pytest.approx(1.0)
    assert d.abs_w.p95 == pytest.approx(1.85)
    assert d.rel_pct is not None
    # |d| / mean(native, matter): 1/100.5, 1/99.5, 2/101, 0
    assert d.rel_pct.median == pytest.approx((100 / 100.5 + 100 / 99.5) / 2)


def test_relative_difference_skips_near_zero_readings() -> None:
    d = DiffStats.of([(0.2, 0.0), (0.0, 0.1)])
    assert d is not None and d.rel_pct is None and d.abs_w.median == pytest.approx(0.15)
    assert DiffStats.of([]) is None


def test_availability_and_recovery_from_up_series() -> None:
    up = [(float(t), v) for t, v in enumerate([1, 1, 0, 0, 0, 1, 1, 0, 1, 1])]
    s = UpStats.of(up)
    assert (s.samples, s.up_samples) == (10, 6)
    assert s.availability == pytest.approx(0.6)
    assert s.outages == 2
    assert s.recoveries == [3.0, 1.0]
    assert s.mttr_s == pytest.approx(2.0)
    assert not s.down_at_end


def test_up_series_edge_cases() -> None:
    # Starting down is not an outage; a gap does not end one; still down at the end.
    up = [(0.0, 0), (1.0, 1), (2.0, 0), (10.0, 0), (11.0, math.nan)]
    s = UpStats.of(up)
    assert s.outages == 1 and s.recoveries == [] and s.down_at_end
    assert s.availability == pytest.approx(0.25) and s.mttr_s is None
    assert UpStats.of([]).availability is None
    both = UpStats.combine([s, UpStats.of([(0.0, 1), (1.0, 0), (5.0, 1)])])
    assert both.samples == 7 and both.outages == 2 and both.recoveries == [4.0]


def path(protocol: str, ups: list[int], fields: int = 5) -> PathSummary:
    return PathSummary(
        protocol, UpStats.of([(float(i), v) for i, v in enumerate(ups)]), 0.1, fields
    )


AGREE = DiffStats.of([(100.0, 100.5)] * 10)
DISAGREE = DiffStats.of([(100.0, 80.0)] * 10)


def test_recommend_higher_availability() -> None:
    r = recommend([path("native", [1, 0, 0, 1]), path("matter", [1, 1, 1, 1])], AGREE)
    assert r.preferred == "matter"
    assert "50.0%" in r.reason and "100.0%" in r.reason
    assert r.warning is None and "agree" in r.reason


def test_recommend_tie_breaks() -> None:
    # Same availability (within a point) and outages: more fields, then native.
    many = [1] * 200
    r = recommend([path("native", many, 5), path("matter", many, 9)], AGREE)
    assert r.preferred == "matter" and "more fields" in r.reason
    r = recommend([path("native", many), path("matter", many)], AGREE)
    assert r.preferred == "native"
    # Within the margin but fewer outages wins.
    flappy = [1] * 100 + [0] + [1] * 99
    r = recommend([path("native", flappy), path("matter", many)], None)
    assert r.preferred == "matter" and "fewer outages" in r.reason


def test_recommend_flags_disagreement() -> None:
    r = recommend([path("native", [1, 1]), path("matter", [1, 0])], DISAGREE)
    assert r.preferred == "native"
    assert r.warning is not None and "disagree" in r.warning
    assert "Caution" in r.text()


def test_recommend_single_path_and_none() -> None:
    r = recommend([path("native", [1, 0])], None)
    assert r.preferred == "native" and "only native" in r.reason
    assert recommend([], None).preferred is None


def test_time_and_duration_arguments() -> None:
    now = 1_700_000_000.0
    assert parse_time("now", now) == now
    assert parse_time("-1h", now) == now - 3600
    assert parse_time("1699999000", now) == 1699999000
    assert parse_time("2023-11-14T22:13:20Z", now) == now
    assert parse_duration("15s") == 15 and parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120 and parse_duration("30") == 30
    for bad in ("soon", "2023-11-14T22:13:20"):
        with pytest.raises(ValueError):
            parse_time(bad, now)
    for bad in ("0s", "-5s", "5x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
