"""otelpower's own health: poll latency, errors and last success per device, exports.

Per device there is one series each for the last poll's duration and the last success (and
one per kind of error seen): a histogram per device was 12 series a plug, half of /metrics and
of every collection. The latency distribution is one histogram per protocol.

The PollRecorder of otelpower.core.publisher: every reader's publisher calls ``poll()``
after every poll; everything is in-process bookkeeping (no I/O).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otelpower.core.model import DeviceStatus, Reading

#: a poll never outlasts poll.timeout (default 10 s); 9 bounds keep /metrics small at 1k plugs
POLL_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SelfMetrics:
    """Instruments on ``meter``; without a meter every call is a no-op (one-shot commands)."""

    def __init__(
        self,
        meter: Meter | None = None,
        exporter_stats: Callable[[], Any] | None = None,
        render_failures: Callable[[], int] | None = None,
    ) -> None:
        self._last_success: dict[tuple[str, str, str], float] = {}
        self._last_duration: dict[tuple[str, str, str], float] = {}
        self._meter = meter
        if meter is None:
            return
        self._duration = meter.create_histogram(
            "otelpower_poll_duration_seconds",
            unit="s",
            description="Time polls took (connect, read, or fail), every device of a protocol",
            explicit_bucket_boundaries_advisory=POLL_BUCKETS_S,
        )
        meter.create_observable_gauge(
            "otelpower_last_poll_duration_seconds",
            callbacks=[self._observe(self._last_duration)],
            unit="s",
            description="Time the last poll of each device took (connect, read, or fail)",
        )
        self._errors = meter.create_counter(
            "otelpower_poll_errors",
            description="Failed polls by kind (offline, timeout, auth_failed, unsupported, error)",
        )
        self._dropped = meter.create_counter(
            "otelpower_values_dropped",
            description="Device values not exported as data, by quantity and reason"
            " (wrong_type, not_finite, negative, out_of_range, unreadable)",
        )
        meter.create_observable_gauge(
            "otelpower_last_success_timestamp_seconds",
            callbacks=[self._observe(self._last_success)],
            unit="s",
            description="Unix time of the last successful poll of each device",
        )
        if exporter_stats is not None:
            self._register_exports(meter, exporter_stats)
        if render_failures is not None:
            meter.create_observable_counter(
                "otelpower_render_failures",
                callbacks=[lambda _: [Observation(render_failures())]],
                description="Renderings of /metrics that failed in part or in whole",
            )

    def poll(
        self, protocol: str, device_id: str, device: str, seconds: float, status: DeviceStatus
    ) -> None:
        if self._meter is None:
            return
        key = (protocol, device_id, device)
        self._duration.record(seconds, {"protocol": protocol})
        self._last_duration[key] = seconds
        if status is DeviceStatus.OK:
            self._last_success[key] = time.time()
        else:
            labels = {"protocol": protocol, "device_id": device_id, "device": device}
            self._errors.add(1, {**labels, "kind": str(status)})

    def dropped(
        self, protocol: str, device_id: str, device: str, readings: Iterable[Reading]
    ) -> None:
        """Count the values a poll dropped (otelpower.core.publisher logs them)."""
        if self._meter is None:
            return
        labels = {"protocol": protocol, "device_id": device_id, "device": device}
        for reading in readings:
            for drop in reading.dropped:
                self._dropped.add(1, {**labels, "quantity": drop.key, "reason": drop.reason})

    @staticmethod
    def _observe(
        values: dict[tuple[str, str, str], float],
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            for (protocol, device_id, device), value in list(values.items()):
                labels = {"protocol": protocol, "device_id": device_id, "device": device}
                yield Observation(value, labels)

        return callback

    @staticmethod
    def _register_exports(meter: Meter, stats: Callable[[], Any]) -> None:
        def exports(_: CallbackOptions) -> Iterable[Observation]:
            s = stats()
            yield Observation(s.exports_ok, {"result": "success"})
            yield Observation(s.exports_failed, {"result": "failure"})

        def markers(_: CallbackOptions) -> Iterable[Observation]:
            yield Observation(stats().markers_sent)

        meter.create_observable_counter(
            "otelpower_exports", callbacks=[exports], description="OTLP exports by result"
        )
        meter.create_observable_counter(
            "otelpower_stale_markers_sent",
            callbacks=[markers],
            description="Stale markers delivered for vanished series",
        )

        def dropped(_: CallbackOptions) -> Iterable[Observation]:
            if (buffer := getattr(stats(), "resend", None)) is not None:
                yield Observation(buffer.dropped_points)

        def buffered(_: CallbackOptions) -> Iterable[Observation]:
            if (buffer := getattr(stats(), "resend", None)) is not None:
                yield Observation(buffer.buffered_points)

        meter.create_observable_counter(
            "otelpower_export_points_dropped",
            callbacks=[dropped],
            description="OTLP data points dropped unsent, oldest first, at the resend buffer's"
            " bound (OTELPOWER_OTLP_RESEND_POINTS)",
        )
        meter.create_observable_gauge(
            "otelpower_export_buffered_points",
            callbacks=[buffered],
            description="OTLP data points waiting in the resend buffer (the collector did not"
            " take them yet)",
        )
