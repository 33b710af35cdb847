"""A forward wall-clock step (NTP setting a Pi's clock at boot) is not an age: staleness of
the newest rendering is judged on the monotonic clock, so /metrics and /readyz keep serving."""

from __future__ import annotations

import time

from otelpower.export.exposition import Rendering
from otelpower.export.httpserver import STALE_RENDERING_S, Health


def test_a_wall_clock_step_does_not_make_the_rendering_stale(monkeypatch) -> None:
    health = Health()
    health.beat()
    health.ready = True
    rendering = Rendering(b"", b"", time.monotonic(), 0.001, 1)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # the clock jumps an hour
    assert health.stale(rendering) is None
    assert health.readiness(rendering) == (True, "ok")


def test_an_old_rendering_is_still_stale() -> None:
    health = Health()
    health.beat()
    old = Rendering(b"", b"", time.monotonic() - STALE_RENDERING_S - 1, 0.001, 1)
    assert "rendering is" in (health.stale(old) or "")
