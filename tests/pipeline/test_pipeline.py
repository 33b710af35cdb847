"""Emulated plugs -> otelpower (OTLP) -> real collector -> real VictoriaMetrics / :8889.

Names and label sets are the metrics contract, compared exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness.backends import Collector, VictoriaMetrics
from harness.promtext import parse
from harness.wait import wait_for
from otelpower import app
from otelpower.config import Config
from otelpower.export.pipeline import Telemetry
from otelpower.readers.native.spec import SPEC as NATIVE
from otelpower.sim import PlugOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
POWER = "tplink_native_power_watts"
CONTRACT_LABELS = {"house", "room", "shelf", "device", "device_id", "protocol"}
IDENTITY_LABELS = {"job", "instance"}  # from service.name / service.instance.id
EXTRA_LABELS = {  # labels some metrics add to the contract set
    "tplink_native_device_info": {"model", "firmware", "transport", "alias"},
    "tplink_native_device_status": {"status"},
}
# Collector (WAL flush 200 ms) and VictoriaMetrics (latency offset 1 s) add
# this much to the two export intervals a value may wait for in the SDK.
PIPELINE_LATENCY_S = 2.0


def contract_names() -> set[str]:
    names = {"tplink_native_" + q.key + ("_total" if q.counter else "") for q in NATIVE.quantities}
    return names | {f"tplink_native_{n}" for n in ("up", "device_info", "device_status")}


def approx(a: float, b: float) -> bool:
    return abs(a - b) <= max(1e-3, abs(b) * 1e-3)


@dataclass
class Running:
    config: Config
    plugs: list[Any]
    telemetry: Telemetry
    started: float  # time.monotonic() when telemetry started

    def expected_power(self) -> dict[frozenset[tuple[str, str]], float]:
        """Every power series the contract expects: full label set -> emulated value."""
        out: dict[frozenset[tuple[str, str]], float] = {}
        for plug in self.plugs:
            dev = self.config.device(plug.mac)
            assert dev is not None
            base = {
                **dev.labels(self.config.house),
                "protocol": "native",
                "job": "otelpower",
                "instance": self.config.service_instance_id("native"),
            }
            truth = plug.readings()
            if "outlets" in truth:
                for i, outlet in enumerate(truth["outlets"], start=1):
                    labels = {**base, "outlet": str(i)}
                    out[frozenset(labels.items())] = outlet["power_w"]
            else:
                out[frozenset(base.items())] = truth["power_w"]
        return out


@pytest.fixture
async def running(simulator, otlp_env: float) -> AsyncIterator[Running]:
    """A single plug and a power strip (static readings), read by otelpower with OTLP on."""
    plugs = await simulator.start(
        [
            PlugOptions(PROFILES["p110_klap"], static=True),
            PlugOptions(PROFILES["hs300_xor"], static=True),
        ]
    )
    config = make_config(simulator.config_dict(), prometheus={"host": "127.0.0.1", "port": 0})
    started = time.monotonic()
    async with app.Runtime(config, "native") as runtime:
        assert runtime.telemetry and runtime.telemetry.otlp_enabled
        yield Running(config, plugs, runtime.telemetry, started)


def vm_power(vm: VictoriaMetrics) -> dict[frozenset[tuple[str, str]], float]:
    out = {}
    for item in vm.query(POWER):
        labels = {k: v for k, v in item["metric"].items() if k != "__name__"}
        assert item["metric"]["__name__"] == POWER
        out[frozenset(labels.items())] = float(item["value"][1])
    return out


def check_label_sets(label_sets: list[dict[str, str]]) -> None:
    """No label outside the contract (so no otel_scope_*), all contract labels present."""
    assert label_sets
    for labels in label_sets:
        name = labels["__name__"]
        allowed = CONTRACT_LABELS | IDENTITY_LABELS | EXTRA_LABELS.get(name, set())
        if name not in ("tplink_native_up", "tplink_native_device_info"):
            allowed = allowed | {"outlet"}
        keys = set(labels) - {"__name__"}
        assert keys >= CONTRACT_LABELS | IDENTITY_LABELS, labels
        assert keys <= allowed, f"unexpected labels {keys - allowed} on {labels}"


async def test_plug_value_in_victoria_metrics(
    running: Running, victoria_metrics: VictoriaMetrics, otlp_env: float
) -> None:
    expected = running.expected_power()
    assert len(expected) == 1 + 6  # the P110 and the six HS300 outlets
    budget = 2 * otlp_env + PIPELINE_LATENCY_S

    def complete():
        got = vm_power(victoria_metrics)
        return got if set(got) == set(expected) else None

    try:
        got = await wait_for(complete, timeout=budget, interval=0.2, in_thread=True)
    except AssertionError:
        got = await asyncio.to_thread(vm_power, victoria_metrics)
        pytest.fail(f"after {budget}s VictoriaMetrics has {got}, expected {expected}")
    elapsed = time.monotonic() - running.started
    assert elapsed <= budget
    for labels, value in expected.items():
        assert approx(got[labels], value), (dict(labels), got[labels], value)

    # The whole contract: names exact (counter with _total, no doubled unit), labels exact.
    series = await asyncio.to_thread(victoria_metrics.series, '{__name__=~"tplink_.+"}')
    names = {s["__name__"] for s in series}
    assert names == contract_names(), names ^ contract_names()
    check_label_sets(series)
    info = await asyncio.to_thread(victoria_metrics.series, "target_info")
    assert [{k: v for k, v in s.items() if k in ("job", "instance")} for s in info] == [
        {"job": "otelpower", "instance": "sim-native"}
    ]


async def test_plug_value_on_collector_prometheus_endpoint(
    running: Running, collector: Collector, otlp_env: float
) -> None:
    expected = running.expected_power()
    budget = 2 * otlp_env + PIPELINE_LATENCY_S

    def power():
        got = {
            labels: value
            for (name, labels), value in parse(collector.scrape()).items()
            if name == POWER
        }
        return got if set(got) == set(expected) else None

    got = await wait_for(power, timeout=budget, interval=0.2, in_thread=True)
    for labels, value in expected.items():
        assert approx(got[labels], value), (dict(labels), got[labels], value)

    series = parse(await asyncio.to_thread(collector.scrape))
    tplink = [{"__name__": name, **dict(labels)} for (name, labels) in series if "tplink" in name]
    names = {s["__name__"] for s in tplink}
    assert names == contract_names(), names ^ contract_names()
    check_label_sets(tplink)


def test_validate_real_config(collector_binary, tmp_path) -> None:
    """`otelcol validate` passes on the shipped config, with its defaults and with test env."""
    col = Collector(tmp_path, "http://127.0.0.1:1/api/v1/write", binary=collector_binary)
    result = col.validate()
    assert result.returncode == 0, result.stdout + result.stderr
    defaults = Collector(tmp_path, "", binary=collector_binary)
    defaults.env = {}  # every ${env:...:-default}
    result = defaults.validate()
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_rejects_a_broken_config(collector_binary, tmp_path) -> None:
    """validate really checks: a bad value in the same file fails it."""
    col = Collector(tmp_path, "http://127.0.0.1:1/api/v1/write", binary=collector_binary)
    col.env["PRW_WAL_FLUSH"] = "not-a-duration"
    result = col.validate()
    assert result.returncode != 0
