"""OTLP push: the standard env vars turn it on, over gRPC and HTTP/protobuf, to a real receiver."""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from dataclasses import replace

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as pb_grpc

from harness.otlp import Receiver
from harness.telemetry import telemetry_over
from harness.wait import wait_for
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.export.pipeline import otlp_exporter
from otelpower.readers.native.spec import SPEC as NATIVE

PLUG = "48:22:54:00:00:01"
LABELS = {"house": "home", "room": "r", "shelf": "s", "device": "d", "device_id": PLUG}


def summarize(requests: list[pb.ExportMetricsServiceRequest]) -> tuple[dict, set[str]]:
    resource: dict = {}
    names: set[str] = set()
    for req in requests:
        for rm in req.resource_metrics:
            resource = {a.key: a.value.string_value for a in rm.resource.attributes}
            for sm in rm.scope_metrics:
                names |= {m.name for m in sm.metrics}
    return resource, names


def native_telemetry(store: SnapshotStore, prometheus_host: str | None):
    """Telemetry as the app builds it for a native reader over ``store`` (export every 0.2 s)."""
    return telemetry_over(
        store, NATIVE, house="home", prometheus_host=prometheus_host, export_interval_s=0.2
    )


def run_provider(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store = SnapshotStore()
    store.put(
        DeviceSnapshot(
            PLUG, LABELS, DeviceStatus.OK, {"model": "P110"}, (Reading({"power_watts": 7.0}),)
        )
    )
    telemetry = native_telemetry(store, None)
    assert telemetry.otlp_enabled
    return telemetry


def check(requests: list) -> None:
    resource, names = summarize(requests)
    assert resource["service.name"] == "otelpower"
    assert resource["service.instance.id"] == "home-native"
    assert resource["house"] == "home" and resource["protocol"] == "native"
    assert {"tplink_native_power_watts", "tplink_native_up"} <= names


async def test_otlp_http(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = run_provider({}, monkeypatch)  # the receiver fixture set the OTLP/HTTP env
    try:
        exporter = telemetry.exporter
        assert exporter is not None
        # the receiver has a request before the exporter has counted it
        await wait_for(lambda: len(receiver.requests) >= 2 and exporter.exports_ok >= 2)
    finally:
        await asyncio.to_thread(telemetry.shutdown)
    check(receiver.requests)


def test_otlp_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[pb.ExportMetricsServiceRequest] = []
    got = threading.Event()

    class Service(pb_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            received.append(request)
            got.set()
            return pb.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_MetricsServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    telemetry = run_provider(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        },
        monkeypatch,
    )
    try:
        assert got.wait(10)
    finally:
        telemetry.shutdown()
        server.stop(0)
    check(received)


def test_otlp_off_without_endpoint_and_bad_protocol() -> None:
    assert otlp_exporter({}) is None
    with pytest.raises(ValueError, match="not supported"):
        otlp_exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"})


async def test_pull_and_otlp_share_one_reader(receiver: Receiver) -> None:
    """Both on: one SDK reader; exports carry what /metrics shows; a flush never doubles lines."""
    store = SnapshotStore()
    snapshot = DeviceSnapshot(
        PLUG, LABELS, DeviceStatus.OK, {"model": "P110"}, (Reading({"power_watts": 7.0}),)
    )
    store.put(snapshot)
    telemetry = native_telemetry(store, "127.0.0.1")
    try:
        assert len(telemetry.provider._metric_readers) == 1
        await wait_for(lambda: ("tplink_native_power_watts", PLUG, 7.0, 0) in last_points(receiver))
        store.put(replace(snapshot, readings=(Reading({"power_watts": 9.5}),)))
        await asyncio.to_thread(telemetry.provider.force_flush, 10_000)
        assert ("tplink_native_power_watts", PLUG, 9.5, 0) in last_points(receiver)
        assert telemetry.exposition is not None
        text = telemetry.exposition.render().body.decode()
        lines = [line for line in text.splitlines() if line.startswith("tplink_native_power")]
        assert len(lines) == 1 and lines[0].endswith(" 9.5"), lines
    finally:
        await asyncio.to_thread(telemetry.shutdown)
    assert ("tplink_native_power_watts", PLUG) in receiver.markers(len(receiver.requests) - 1)


def last_points(receiver: Receiver) -> list:
    return receiver.points(len(receiver.requests) - 1) if receiver.requests else []


@pytest.mark.parametrize("failing", [False, True])
async def test_shutdown_does_not_wait_on_a_refusing_collector(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failing
) -> None:
    """The SDK retries a refused export for its whole timeout (here 30 s), and stopping used
    to wait for it three times over (the export in flight, the last one, the markers).
    ``failing=False``: stopping during the first export's retries waits ``SHUTDOWN_S`` at most;
    ``True``: once an export failed, not at all."""
    from otelpower.export.pipeline import SHUTDOWN_S

    receiver.fail_next = 1_000_000
    timeout = "1" if failing else "30"  # 1: the first export gives up after one backoff
    telemetry = run_provider({"OTEL_EXPORTER_OTLP_TIMEOUT": timeout}, monkeypatch)
    exporter = telemetry.exporter
    assert exporter is not None
    try:
        if failing:
            await wait_for(lambda: exporter.failing, timeout=30)
        else:
            await wait_for(lambda: receiver.fail_next < 1_000_000, timeout=30)  # it is retrying
    finally:
        started = asyncio.get_running_loop().time()
        await asyncio.to_thread(telemetry.shutdown)
        took = asyncio.get_running_loop().time() - started
    assert took < 3 * SHUTDOWN_S, took  # unbounded: 30 s and more
    # as the watchdog fires before or during the markers' export
    said = ("stopped without waiting longer", "could not send stale markers")
    assert any(line in caplog.text for line in said), caplog.text
    assert receiver.requests == []


def test_plain_http_goes_without_requests() -> None:
    """A plain http:// collector: the SDK's urllib3 transport; TLS, a proxy or a credential
    provider: the SDK's default (requests), whose CA bundle and proxy handling users rely on."""
    from otelpower.export.otlp import _plain_http_transport

    http = "http://collector:4318"
    assert type(_plain_http_transport({}, http)).__name__ == "Urllib3HTTPTransport"
    assert type(_plain_http_transport({}, None)).__name__ == "Urllib3HTTPTransport"  # localhost
    assert _plain_http_transport({}, "https://collector:4318") is None
    assert _plain_http_transport({"https_proxy": "http://proxy:3128"}, http) is None
    assert _plain_http_transport({"HTTP_PROXY": "http://proxy:3128"}, http) is None
    provider = {"OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER": "mine"}
    assert _plain_http_transport(provider, http) is None
