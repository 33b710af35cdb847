"""The metrics contract on a real /metrics endpoint, fed from hand-made snapshots."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.promtext import find, one
from harness.promtext import scrape_fresh as scrape
from harness.wait import wait_for_sync
from otelpower.core import plausible
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.export.httpserver import Health
from otelpower.export.instruments import register_device_metrics
from otelpower.export.pipeline import Telemetry, make_resource, start_telemetry
from otelpower.readers.native.spec import SPEC as NATIVE

LABELS = {"house": "home", "room": "living", "shelf": "rack", "device": "tv"}
INFO = {"model": "P110", "firmware": "1.2.3", "transport": "KLAP v2"}


def labels(device_id: str, **extra: str) -> dict[str, str]:
    return {**LABELS, "device_id": device_id, **extra}


@pytest.fixture
def endpoint() -> Iterator[tuple[SnapshotStore, Telemetry]]:
    store = SnapshotStore()
    resource = make_resource(house="home", protocol="native", instance_id="home-native")
    telemetry = start_telemetry(
        resource, prometheus_host="127.0.0.1", prometheus_port=0, export_interval_s=60, environ={}
    )
    meter = telemetry.provider.get_meter("otelpower")
    register_device_metrics(
        meter, store, vendor="tplink", protocol="native", quantities=NATIVE.quantities
    )
    yield store, telemetry
    telemetry.shutdown()


def test_contract_names_labels_and_absent_fields(endpoint) -> None:
    store, telemetry = endpoint
    plug = "48:22:54:00:00:01"
    store.put(
        DeviceSnapshot(
            plug,
            labels(plug),
            DeviceStatus.OK,
            INFO,
            (
                plausible.reading(
                    {
                        "power_watts": 12.5,
                        "voltage_volts": 231.0,
                        "current_amperes": None,
                        "relay_on": 1.0,
                        "energy_kilowatt_hours": 3.25,
                    }
                ),
            ),
        )
    )
    s = scrape(telemetry)
    want = {**labels(plug), "protocol": "native"}
    assert one(s, "tplink_native_power_watts", **want) == 12.5
    assert one(s, "tplink_native_voltage_volts", **want) == 231.0
    assert one(s, "tplink_native_energy_kilowatt_hours_total", **want) == 3.25
    assert one(s, "tplink_native_relay_on", **want) == 1
    assert one(s, "tplink_native_up", **want) == 1
    assert one(s, "tplink_native_device_info", **want, **INFO) == 1
    # not measured -> absent, never 0
    assert not find(s, "tplink_native_current_amperes")
    assert not find(s, "tplink_native_energy_today_kilowatt_hours")
    # exact label set: no scope noise, no doubled unit suffixes
    (series_labels,) = find(s, "tplink_native_power_watts")
    assert {k for k, _ in series_labels} == {*LABELS, "device_id", "protocol"}
    assert not [n for n, _ in s if n.endswith(("_watts_watts", "_volts_volts"))]
    assert one(s, "target_info", service_instance_id="home-native", house="home") == 1


def test_down_device_keeps_only_up_and_info(endpoint) -> None:
    store, telemetry = endpoint
    plug = "48:22:54:00:00:02"
    reading = (Reading({"power_watts": 5.0}),)
    store.put(DeviceSnapshot(plug, labels(plug), DeviceStatus.OK, INFO, reading))
    assert one(scrape(telemetry), "tplink_native_power_watts") == 5.0
    store.put(DeviceSnapshot(plug, labels(plug), DeviceStatus.OFFLINE, INFO, reading))
    s = scrape(telemetry)
    assert not find(s, "tplink_native_power_watts")
    assert one(s, "tplink_native_up", device_id=plug) == 0
    assert one(s, "tplink_native_device_info", device_id=plug) == 1
    assert one(s, "tplink_native_device_status", device_id=plug, status="offline") == 1


def test_strip_outlets_are_labelled(endpoint) -> None:
    store, telemetry = endpoint
    strip = "48:22:54:00:00:03"
    readings = (
        Reading({"rssi_dbm": -50.0}),
        Reading({"power_watts": 1.0, "relay_on": 1.0}, outlet="1"),
        Reading({"power_watts": 2.0, "relay_on": 0.0}, outlet="2"),
    )
    store.put(DeviceSnapshot(strip, labels(strip), DeviceStatus.OK, INFO, readings))
    s = scrape(telemetry)
    power = find(s, "tplink_native_power_watts", device_id=strip)
    assert sorted(dict(lbl)["outlet"] for lbl in power) == ["1", "2"]
    assert sum(power.values()) == 3.0  # no strip total on top of the outlets
    assert one(s, "tplink_native_rssi_dbm", device_id=strip) == -50


def test_health_endpoints(endpoint) -> None:
    import urllib.error
    import urllib.request

    _, telemetry = endpoint

    def get(path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{telemetry.prometheus_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    assert get("/healthz")[0] == 200
    assert get("/readyz") == (503, "readers not started\n")
    telemetry.health.ready = True
    wait_for_sync(lambda: get("/readyz")[0] == 200, 5, what="health reaches the endpoint")
    telemetry.health.beat()
    assert get("/healthz")[0] == 200
    telemetry.health.last_beat = time.monotonic() - 31  # no tick for 31 s
    wait_for_sync(lambda: get("/healthz")[0] == 503, 5, what="health reaches the endpoint")
    assert "stalled" in get("/healthz")[1]


def test_health_logic() -> None:
    now = [1000.0]
    health = Health(clock=lambda: now[0])
    assert health.live() == (True, "ok: starting")
    health.beat()
    now[0] += 31
    ok, text = health.live()
    assert not ok and "stalled for 31s" in text
