"""No silent series loss at scale: the SDK's limit on label sets per metric (2,000 by default,
never forgotten with cumulative temporality) is raised, and reaching it is logged."""

from __future__ import annotations

import logging

import pytest

from harness.fleet import HISTORY, Fleet, mac, points
from harness.ports import free_port
from otelpower.core.model import DeviceStatus
from otelpower.export import cardinality


def test_default_sdk_limit_loses_devices_this_is_why() -> None:
    fleet = Fleet(600, views=[])
    for status in HISTORY:
        data = fleet.round(status)
    fleet.shutdown()
    statuses = points(data, "tplink_native_device_status")
    assert {"otel.metric.overflow": True} in statuses  # 600 x 7 statuses > 2,000


def test_10000_devices_through_every_status_keep_every_series(caplog) -> None:
    fleet = Fleet(10_000, views=cardinality.views())
    with caplog.at_level(logging.ERROR, logger="otelpower.export.cardinality"):
        for status in HISTORY:
            data = fleet.round(status)
    fleet.shutdown()
    assert not caplog.records
    every = {mac(i) for i in range(10_000)}
    up = points(data, "tplink_native_up")
    assert {p["device_id"] for p in up} == every and len(up) == 10_000
    status = points(data, "tplink_native_device_status")
    assert {p["device_id"] for p in status if p["status"] == "ok"} == every
    for name in ("tplink_native_power_watts", "tplink_native_energy_kilowatt_hours"):
        assert {p["device_id"] for p in points(data, name)} == every, name
    errors = points(data, "otelpower_poll_errors")
    assert len(errors) == 10_000 * (len(HISTORY) - 1)  # a series per device and kind
    assert not any("otel.metric.overflow" in p for p in up + status + errors)


def test_reaching_the_limit_is_one_loud_line_per_metric(caplog) -> None:
    from otelpower.export.cardinality import OverflowWatch

    fleet = Fleet(30, views=cardinality.views(limit=50))
    watch = OverflowWatch(limit=50)
    with caplog.at_level(logging.ERROR, logger="otelpower.export.cardinality"):
        for status in (*HISTORY, DeviceStatus.OFFLINE, DeviceStatus.OK):
            watch.check(fleet.round(status))
    fleet.shutdown()
    named = sorted(r.getMessage().split()[0] for r in caplog.records)
    assert "tplink_native_device_status" in named and "otelpower_poll_errors" in named
    assert len(named) == len(set(named))  # once each
    assert all("--shard" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("otlp", [False, True])
def test_the_running_pipeline_serves_more_than_the_sdk_default(otlp: bool, monkeypatch) -> None:
    """Through start_telemetry as `run` builds it: 3,000 label sets of one metric, all on
    /metrics (the SDK's default would fold 1,001 of them into the overflow series)."""
    from opentelemetry.metrics import Observation

    from otelpower.export import pipeline

    env = {"OTEL_METRICS_EXPORTER": "otlp,prometheus" if otlp else "prometheus"}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # the last export
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1"  # is refused at once
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the SDK's exporter reads os.environ
    telemetry = pipeline.start_telemetry(
        pipeline.make_resource(house="h", protocol="native", instance_id="i"),
        prometheus_host="127.0.0.1",
        prometheus_port=0,
        export_interval_s=3600,
        environ=env,
    )
    try:
        telemetry.provider.get_meter("t").create_observable_gauge(
            "many", callbacks=[lambda _: [Observation(1, {"n": str(i)}) for i in range(3000)]]
        )
        assert telemetry.exposition is not None
        rendering = telemetry.exposition.render()
        assert rendering is not None
        body = rendering.body.decode()
        assert body.count("\nmany{") == 3000 and "overflow" not in body
    finally:
        telemetry.shutdown()
