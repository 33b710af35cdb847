"""The real pipeline as processes: VictoriaMetrics and the otelcol-otelpower collector.

Fixtures
    ``victoria_metrics``  a started :class:`VictoriaMetrics` (free port, data in tmp_path)
    ``collector``         a started :class:`Collector` writing to ``victoria_metrics``, run from
                          collector-config/config.yaml (the real file; only env vars differ)
    ``otlp_env``          points the OTel SDK of this process at ``collector`` (OTEL_* env vars
                          via monkeypatch) and returns the export interval in seconds
    ``collector_binary``  path of build/otelcol-otelpower (skips when missing, outside CI)
    ``prometheus_binary`` Debian's prometheus (the same way), for tests that scrape with it

The process classes live in harness/backends.py (bench/ uses them too). Tests needing other
collector settings can call ``collector.restart(env={...})`` or build their own ``Collector``.

When the binaries are missing the tests skip, unless CI is set: there ``make test`` builds
them first (``make collector victoria-metrics prometheus``), so missing binaries are a failure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends import (
    COLLECTOR_BINARY,
    PROMETHEUS_BINARY,
    VM_BINARY,
    Collector,
    VictoriaMetrics,
)

# Export interval the ``otlp_env`` fixture gives the SDK.
EXPORT_INTERVAL_S = 2.0


def require_binary(path: Path, make_target: str) -> Path:
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = f"{path} is missing: run `make {make_target}`"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so `make test` should have built it)")
    pytest.skip(reason)


@pytest.fixture
def collector_binary() -> Path:
    return require_binary(COLLECTOR_BINARY, "collector")


@pytest.fixture
def vm_binary() -> Path:
    return require_binary(VM_BINARY, "victoria-metrics")


@pytest.fixture
def prometheus_binary() -> Path:
    return require_binary(PROMETHEUS_BINARY, "prometheus")


@pytest.fixture
def victoria_metrics(vm_binary: Path, tmp_path: Path) -> Iterator[VictoriaMetrics]:
    vm = VictoriaMetrics(tmp_path, binary=vm_binary)
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture
def collector(
    collector_binary: Path, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> Iterator[Collector]:
    col = Collector(tmp_path, victoria_metrics.write_url, binary=collector_binary)
    col.start()
    try:
        yield col
    finally:
        col.stop()


def point_otlp_at(
    col: Collector, monkeypatch: pytest.MonkeyPatch, timeout_s: int | None = None
) -> None:
    """OTLP/gRPC to ``col`` every EXPORT_INTERVAL_S, each export given up after
    ``timeout_s`` (None: the SDK's default); no other OTEL_EXPORTER_OTLP_* variable."""
    for key in list(os.environ):
        if key.startswith("OTEL_EXPORTER_OTLP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.otlp_grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    if timeout_s is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", str(timeout_s))
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", str(math.floor(EXPORT_INTERVAL_S * 1000)))


@pytest.fixture
def otlp_env(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> float:
    """OTLP/gRPC to ``collector`` every EXPORT_INTERVAL_S; returns that interval (s)."""
    point_otlp_at(collector, monkeypatch)
    return EXPORT_INTERVAL_S
