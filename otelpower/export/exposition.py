"""Constant-time scrapes: /metrics is rendered in the background and served from memory.

Rendering the exposition (OTel collect + Prometheus text) costs about 0.7 ms per plug, so a
scrape that rendered on demand would take ~1 s with 1,000 plugs and grow with the plug
count. Instead one thread renders when the snapshots change and every scrape gets the
latest rendering (plain or gzip) at the cost of copying bytes.

Pacing: a change that adds or removes series (a plug going up or down) is rendered as soon
as the previous rendering is done, so a vanished plug leaves /metrics at once. Other value
changes are batched: a rendering waits until the changes pause for ``SETTLE_S`` (a poll
cycle's burst is over), at most ``CAP_S``, and comes at least ``value_gap_s`` after the
previous one and late enough that rendering uses at most ``1 / COST_FACTOR`` of one core. A
poll cycle is then one rendering, whose collection also goes out over OTLP
(otelpower.export.shared_reader). Without changes it renders every ``max_age_s``.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from otelpower.export.threads import start_thread

log = logging.getLogger(__name__)

#: value-only changes wait until rendering would use at most 1/COST_FACTOR of a core (~8 s
#: between renderings at 1k plugs; a Prometheus scrape interval is 15-60 s)
COST_FACTOR = 10.0
#: value changes are rendered once they pause this long (the end of a poll cycle's burst) ...
SETTLE_S = 0.25
#: ... or this long after the first of them
CAP_S = 2.0
#: a rendering that keeps failing is logged again after this, with the count
FAILURE_LOG_EVERY_S = 300.0


@dataclass(frozen=True, slots=True)
class Rendering:
    body: bytes
    gzipped: bytes
    rendered_at: float  # time.monotonic(): CLOCK_MONOTONIC, the same in every process
    cost_s: float
    seq: int = 0  # increases with every rendering


class IsolatingRegistry(CollectorRegistry):
    """A registry whose collectors fail alone: one that raises is left out of that
    rendering (and reported to ``failed``) while the others are rendered."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self._order: list[Collector] = []
        self.failed: Callable[[Exception], None] = lambda exc: None

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self._order.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        self._order.remove(collector)

    def collect(self) -> Iterable[Metric]:
        for collector in list(self._order):
            try:
                families = list(collector.collect())
            except Exception as exc:
                self.failed(exc)
                continue
            yield from families


class CachedExposition:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        min_gap_s: float = 0.25,
        max_age_s: float = 5.0,
        value_gap_s: float = 0.25,
    ) -> None:
        self._registry = registry
        self._min_gap_s = min_gap_s
        self._max_age_s = max_age_s
        self._value_gap_s = max(min_gap_s, value_gap_s)
        self._changed_at = 0.0  # time.monotonic() of the newest change
        self._lock = threading.Lock()  # one rendering at a time
        self._wake = threading.Condition()
        self._dirty = False
        self._urgent = False
        self._stopped = False
        self._current: Rendering | None = None
        self._seq = 0
        self._thread: threading.Thread | None = None
        self.failures = 0  # renderings that raised (otelpower_render_failures_total)
        self._failure_logged: float | None = None  # monotonic time of the last such line
        self._failures_logged = 0
        if isinstance(registry, IsolatingRegistry):
            registry.failed = self._failed
        self.listeners: list[Callable[[Rendering], None]] = []  # called after each rendering

    def start(self) -> None:
        self._thread = start_thread(self._loop, "metrics-render")

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def invalidate(self, urgent: bool = False) -> None:
        """Data changed; ``urgent`` when series appeared or vanished."""
        with self._wake:
            # the renderer wakes for the first change and an urgent one, not for each
            wake = not self._dirty or (urgent and not self._urgent)
            self._dirty = True
            self._urgent = self._urgent or urgent
            self._changed_at = time.monotonic()
            if wake:
                self._wake.notify()

    def current(self) -> Rendering | None:
        """The latest rendering; renders once, in the caller, before the first is ready."""
        rendering = self._current
        return rendering if rendering is not None else self.render()

    def render(self) -> Rendering | None:
        """Render now; when that fails, the failure is counted and the latest good
        rendering returned (None before the first)."""
        try:
            return self._render()
        except Exception as exc:  # a failing collector must not end rendering or OTLP
            self._failed(exc)
            return self._current

    def _failed(self, exc: Exception) -> None:
        """One line for the first failure, then one every FAILURE_LOG_EVERY_S with the count."""
        self.failures += 1
        now = time.monotonic()
        if self._failure_logged is not None and now - self._failure_logged < FAILURE_LOG_EVERY_S:
            return
        since = self.failures - self._failures_logged
        self._failure_logged, self._failures_logged = now, self.failures
        log.warning(
            "rendering the metrics failed (%s: %s): %d time(s) since the last such line "
            "(otelpower_render_failures_total); the rest is rendered, or else the last "
            "good rendering served until it is too old",
            type(exc).__name__,
            str(exc)[:200],
            since,
        )

    def _render(self) -> Rendering:
        with self._lock:
            started = time.perf_counter()
            body = generate_latest(self._registry)
            self._seq += 1
            rendering = Rendering(
                body,
                gzip.compress(body, 1),
                time.monotonic(),
                time.perf_counter() - started,
                self._seq,
            )
            self._current = rendering
            for listener in self.listeners:
                listener(rendering)
            return rendering

    def _loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._stopped or self._dirty, self._max_age_s)
                self._settle()
                if self._stopped:
                    return
                self._dirty = False
                self._urgent = False
            rendering = self.render()
            self._pace(0.0 if rendering is None else rendering.cost_s)

    def _settle(self) -> None:
        """(Holding ``_wake``) wait until value changes pause for SETTLE_S, at most CAP_S;
        an urgent change or none at all (``max_age_s``) does not wait."""
        cap = time.monotonic() + CAP_S
        while self._dirty and not (self._urgent or self._stopped):
            now = time.monotonic()
            until = min(self._changed_at + SETTLE_S, cap)
            if now >= until:
                return
            self._wake.wait(until - now)

    def _pace(self, cost: float) -> None:
        """Sleep until the next rendering may start; an urgent change cuts the wait short."""
        relaxed = time.monotonic() + max(self._value_gap_s, COST_FACTOR * cost) - cost
        soon = time.monotonic() + max(0.0, self._min_gap_s - cost)
        with self._wake:
            while not self._stopped:
                now = time.monotonic()
                until = soon if self._urgent else relaxed
                if now >= until:
                    return
                self._wake.wait(until - now)
