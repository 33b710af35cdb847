"""Stale markers over OTLP, against a real OTLP/HTTP receiver: once per vanish, never lost."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb

from otelpower.metrics import NATIVE_QUANTITIES, register_device_metrics
from otelpower.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.telemetry import Telemetry, make_resource, start_telemetry

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


@dataclass
class Receiver:
    requests: list[pb.ExportMetricsServiceRequest] = field(default_factory=list)
    fail_next: int = 0

    def points(self, index: int) -> list[tuple[str, str, float, int]]:
        """(metric, device_id, value, flags) of every gauge/sum point of request ``index``."""
        out = []
        for rm in self.requests[index].resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    body = m.gauge if m.HasField("gauge") else m.sum if m.HasField("sum") else None
                    for p in body.data_points if body else []:
                        attrs = {a.key: a.value.string_value for a in p.attributes}
                        value = p.as_double if p.HasField("as_double") else p.as_int
                        out.append((m.name, attrs.get("device_id", ""), value, p.flags))
        return out

    def markers(self, index: int) -> set[tuple[str, str]]:
        return {(m, d) for m, d, v, f in self.points(index) if f & 1 and math.isnan(v)}


@pytest.fixture
async def receiver(unused_tcp_port: int, monkeypatch) -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        msg = pb.ExportMetricsServiceRequest()
        msg.ParseFromString(await request.read())
        if rec.fail_next:
            rec.fail_next -= 1
            return web.Response(status=503)
        rec.requests.append(msg)
        return web.Response(
            body=pb.ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    app = web.Application()
    app.router.add_post("/v1/metrics", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{unused_tcp_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    yield rec
    await runner.cleanup()


def pipeline(store: SnapshotStore) -> Telemetry:
    resource = make_resource(house="h", protocol="native", instance_id="h-native")
    telemetry = start_telemetry(
        resource, prometheus_host=None, prometheus_port=0, export_interval_s=3600
    )  # exports only when we flush
    register_device_metrics(
        telemetry.provider.get_meter("otelpower"),
        store,
        vendor="tplink",
        protocol="native",
        quantities=NATIVE_QUANTITIES,
    )
    return telemetry


async def flush(telemetry: Telemetry) -> None:
    await asyncio.to_thread(telemetry.provider.force_flush, 10_000)


POWER = "tplink_native_power_watts"
ENERGY = "tplink_native_energy_kilowatt_hours"


async def test_marker_once_per_vanish_and_values_return(receiver: Receiver) -> None:
    store = SnapshotStore()
    store.put(snap(A))
    store.put(snap(B))
    telemetry = pipeline(store)
    try:
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
    finally:
        await asyncio.to_thread(telemetry.shutdown)


async def test_marker_survives_a_failed_export(receiver: Receiver) -> None:
    store = SnapshotStore()
    store.put(snap(A))
    telemetry = pipeline(store)
    try:
        await flush(telemetry)
        store.put(snap(A, DeviceStatus.OFFLINE))
        receiver.fail_next = 10  # every try of the next export fails
        await flush(telemetry)
        assert len(receiver.requests) == 1
        receiver.fail_next = 0
        await flush(telemetry)
        assert (POWER, A) in receiver.markers(1)
    finally:
        await asyncio.to_thread(telemetry.shutdown)


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
    store = SnapshotStore()
    store.put(snap(A))
    telemetry = pipeline(store)
    try:
        await flush(telemetry)
        store.put(snap(A, DeviceStatus.OFFLINE))
        await flush(telemetry)
        assert receiver.markers(1) == set()
        assert not [p for p in receiver.points(1) if p[0] == POWER]
    finally:
        await asyncio.to_thread(telemetry.shutdown)
