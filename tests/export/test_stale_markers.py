"""Stale markers over OTLP, against a real OTLP/HTTP receiver: once per vanish, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from harness.otlp import Receiver
from harness.telemetry import telemetry_over
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.export.pipeline import Telemetry
from otelpower.readers.native.spec import SPEC as NATIVE

A, B = "48:22:54:00:00:0a", "48:22:54:00:00:0b"


def snap(device_id: str, status: DeviceStatus = DeviceStatus.OK) -> DeviceSnapshot:
    labels = {
        "house": "h",
        "room": "r",
        "shelf": "s",
        "device": device_id[-2:],
        "device_id": device_id,
    }
    readings = (Reading({"power_watts": 5.0, "energy_kilowatt_hours": 1.5}),)
    return DeviceSnapshot(
        device_id, labels, status, {"model": "P110"}, readings if status is DeviceStatus.OK else ()
    )


def pipeline(store: SnapshotStore) -> Telemetry:
    # exports only when we flush
    return telemetry_over(store, NATIVE, house="h", prometheus_host=None, export_interval_s=3600)


@asynccontextmanager
async def running(*devices: str) -> AsyncIterator[tuple[SnapshotStore, Telemetry]]:
    """A store with these devices up and the pipeline over it; shut down on the way out."""
    store = SnapshotStore()
    for device_id in devices:
        store.put(snap(device_id))
    telemetry = pipeline(store)
    try:
        yield store, telemetry
    finally:
        await asyncio.to_thread(telemetry.shutdown)


async def flush(telemetry: Telemetry) -> None:
    await asyncio.to_thread(telemetry.provider.force_flush, 10_000)


POWER = "tplink_native_power_watts"
ENERGY = "tplink_native_energy_kilowatt_hours"


async def test_marker_once_per_vanish_and_values_return(receiver: Receiver) -> None:
    async with running(A, B) as (store, telemetry):
        await flush(telemetry)
        assert receiver.markers(0) == set()
        store.put(snap(A, DeviceStatus.OFFLINE))
        await flush(telemetry)
        marked = receiver.markers(1)
        assert {(POWER, A), (ENERGY, A)} <= marked
        assert ("tplink_native_device_status", A) in marked  # status="ok" series ended
        assert not {(POWER, B), (ENERGY, B)} & marked
        assert (POWER, B, 5.0, 0) in receiver.points(1)
        await flush(telemetry)
        assert receiver.markers(2) == set()  # not twice for the same vanish
        store.put(snap(A))
        await flush(telemetry)
        assert (POWER, A, 5.0, 0) in receiver.points(3)


async def test_marker_survives_a_failed_export(receiver: Receiver) -> None:
    async with running(A) as (store, telemetry):
        await flush(telemetry)
        store.put(snap(A, DeviceStatus.OFFLINE))
        receiver.fail_next = 10  # every try of the next export fails
        await flush(telemetry)
        assert len(receiver.requests) == 1
        receiver.fail_next = 0
        await flush(telemetry)
        assert (POWER, A) in receiver.markers(1)


async def test_every_live_series_marked_at_shutdown(receiver: Receiver) -> None:
    store = SnapshotStore()
    store.put(snap(A))
    store.put(snap(B))
    telemetry = pipeline(store)
    await flush(telemetry)
    await asyncio.to_thread(telemetry.shutdown)
    marked = set().union(*(receiver.markers(i) for i in range(1, len(receiver.requests))))
    assert {(POWER, A), (POWER, B), (ENERGY, A), (ENERGY, B)} <= marked
    assert ("tplink_native_up", A) in marked
    for i in range(1, len(receiver.requests)):  # each series marked once
        points = [(m, d) for m, d, v, f in receiver.points(i) if f & 1]
        assert len(points) == len(set(points))


async def test_control_run_without_markers(receiver: Receiver, monkeypatch) -> None:
    monkeypatch.setenv("OTELPOWER_STALE_MARKERS", "false")
    async with running(A) as (store, telemetry):
        await flush(telemetry)
        store.put(snap(A, DeviceStatus.OFFLINE))
        await flush(telemetry)
        assert receiver.markers(1) == set()
        assert not [p for p in receiver.points(1) if p[0] == POWER]


async def test_a_collector_outage_is_two_log_lines(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an ERROR and a WARNING from the SDK at every export: one line when exports start
    failing (with the SDK's reason), one when they work again."""
    with caplog.at_level(logging.INFO):
        async with running(A) as (_, telemetry):
            await flush(telemetry)
            receiver.fail_next = 1000
            for _ in range(3):
                await flush(telemetry)
            receiver.fail_next = 0
            await flush(telemetry)
    lines = [
        r for r in caplog.records if r.levelno >= logging.INFO and "OTLP export" in r.getMessage()
    ]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.INFO], [
        r.getMessage() for r in lines
    ]
    assert "503" in lines[0].getMessage() or "Service Unavailable" in lines[0].getMessage()
    assert "3 export(s) failed" in lines[1].getMessage()
    sdk = [
        r
        for r in caplog.records
        if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING
    ]
    assert not sdk, [r.getMessage() for r in sdk]


def test_a_series_is_its_own_key_and_keeps_no_copy_of_its_attributes() -> None:
    """The series of the last export are held between exports (~15k at 1,000 plugs): by the
    data point's own attributes, compared as mappings, not by a frozenset of their items."""
    from opentelemetry.sdk.metrics.export import (
        Gauge,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from otelpower.export.stale import _series

    def data(points: list[NumberDataPoint]) -> MetricsData:
        metric = Metric(POWER, "", "W", Gauge(points))
        scope = ScopeMetrics(InstrumentationScope("otelpower"), [metric], "")
        return MetricsData([ResourceMetrics(Resource({"house": "h"}), [scope], "")])

    a, b = {"device_id": A, "room": "r"}, {"device_id": B, "room": "r"}
    first = _series(data([NumberDataPoint(a, 1, 2, 5.0), NumberDataPoint(b, 1, 2, 6.0)]))
    assert {id(s.attributes) for s in first} == {id(a), id(b)}
    reordered = {"room": "r", "device_id": A}  # same series, a later start: still equal
    again = _series(data([NumberDataPoint(reordered, 3, 4, 7.0)]))
    assert again < first and first - again == {s for s in first if s.attributes is b}
