"""The OTLP resend buffer against a real OTLP/HTTP receiver that goes away and comes back."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from harness.otlp import Receiver
from harness.ports import free_port
from harness.telemetry import telemetry_over
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.export.otelenv import problems
from otelpower.export.selfmetrics import SelfMetrics
from otelpower.readers.native.spec import SPEC as NATIVE

PLUG = "48:22:54:00:00:01"
LABELS = {"house": "home", "room": "r", "shelf": "s", "device": "d", "device_id": PLUG}
POWER = "tplink_native_power_watts"


def powers(receiver: Receiver) -> list[float]:
    """The power value of every request the receiver took, in order."""
    return [
        v for i in range(len(receiver.requests)) for m, _, v, _ in receiver.points(i) if m == POWER
    ]


def value_of(receiver: Receiver, name: str) -> float | None:
    """The newest value of ``name`` (stale markers aside)."""
    found = [
        v
        for i in range(len(receiver.requests))
        for m, _, v, flags in receiver.points(i)
        if m == name and not flags
    ]
    return found[-1] if found else None


async def run(monkeypatch: pytest.MonkeyPatch, bound: str | None):
    """Exports of power 1 (up), 2 and 3 (receiver down), 4 (up again); the telemetry."""
    port = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    if bound is not None:
        monkeypatch.setenv("OTELPOWER_OTLP_RESEND_POINTS", bound)
    store = SnapshotStore()
    snap = DeviceSnapshot(PLUG, LABELS, DeviceStatus.OK, {"model": "P110"}, ())
    telemetry = telemetry_over(
        store, NATIVE, house="home", prometheus_host=None, export_interval_s=3600
    )
    SelfMetrics(telemetry.provider.get_meter("otelpower.self"), lambda: telemetry.exporter)
    receiver = Receiver()
    runner = await receiver.serve(port)

    async def export(power: float) -> None:
        store.put(replace(snap, readings=(Reading({"power_watts": power}),)))
        await asyncio.to_thread(telemetry.provider.force_flush, 10_000)

    try:
        await export(1)
        await runner.cleanup()  # the collector goes away (connection refused)
        await export(2)
        await export(3)
        runner = await receiver.serve(port)
        await export(4)
    finally:
        await asyncio.to_thread(telemetry.shutdown)
        await runner.cleanup()
    return telemetry, receiver


async def test_failed_exports_are_sent_again_oldest_first(monkeypatch) -> None:
    telemetry, receiver = await run(monkeypatch, None)
    assert powers(receiver)[:4] == [1, 2, 3, 4]
    buffer = telemetry.exporter.resend
    assert (buffer.resent_batches, buffer.buffered_points, buffer.dropped_points) == (2, 0, 0)
    assert telemetry.exporter.exports_failed == 2


async def test_past_the_bound_the_oldest_are_dropped_and_counted(monkeypatch) -> None:
    telemetry, receiver = await run(monkeypatch, "1")  # room for the newest batch only
    assert powers(receiver)[:2] == [1, 4]  # 2 was dropped when 3 came, 3 when 4 came
    buffer = telemetry.exporter.resend
    first = len(receiver.points(0))  # the same series in every batch
    assert buffer.dropped_points == 2 * first and buffer.buffered_points == 0
    # the self-metric says so in the export that went out after the drop
    assert value_of(receiver, "otelpower_export_points_dropped") == buffer.dropped_points


async def test_zero_turns_the_buffer_off(monkeypatch) -> None:
    _, receiver = await run(monkeypatch, "0")
    assert powers(receiver)[:2] == [1, 4]


def test_the_bound_is_checked() -> None:
    assert problems({"OTELPOWER_OTLP_RESEND_POINTS": "200000"}) == []
    assert problems({"OTELPOWER_OTLP_RESEND_POINTS": "lots"})
