"""Per-device log rate limit (pure logic)."""

from __future__ import annotations

from otelpower.core.logthrottle import LogThrottle


def test_burst_then_window() -> None:
    t = LogThrottle(burst=3, window_s=10)
    assert [t.allow("a", now=float(i)) for i in range(5)] == [True, True, True, False, False]
    assert t.allow("b", now=4.0)  # per key
    assert not t.allow("a", now=9.9)
    assert t.allow("a", now=10.0)  # the first line left the window
    assert not t.allow("a", now=10.5)
