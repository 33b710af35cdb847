"""Fixtures for the dashboard tests: the real pipeline (VictoriaMetrics + collector, and
Prometheus) of tests/pipeline, re-exported so that tests here can request them."""

from tests.pipeline.conftest import (  # noqa: F401  (fixtures)
    collector,
    collector_binary,
    otlp_env,
    prometheus_binary,
    victoria_metrics,
    vm_binary,
)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "live: runs the pipeline (emulated + Matter plugs, collector, VictoriaMetrics, Prometheus)",
    )
