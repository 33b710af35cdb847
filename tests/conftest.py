"""Shared fixtures: emulated plugs on loopback and a config pointing at them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.otlp import Receiver
from otelpower.config import Config
from otelpower.config import parse_config as _parse
from otelpower.config.yamlsource import YamlDoc
from otelpower.readers import registry

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "python-kasa"
TESTS = Path(__file__).resolve().parent

# --- `live`: the tests that use a test bed (`make unit` runs the others) -------------------
# A test is live when it takes one of these fixtures (emulated plugs, an OTLP receiver, the
# Matter bed, the collector, VictoriaMetrics, kustomize), lives under one of these paths, or
# its module says ``pytestmark = pytest.mark.live`` (it starts processes or plugs by itself).
# A new test is thus a unit test unless it uses a bed; a unit test slower than UNIT_SLOW_S is
# named at the end of the run, to be marked.
LIVE_FIXTURES = {
    "simulator",
    "sim",
    "receiver",
    "plug_network",
    "matter_server",
    "matter_client",
    "virtual_plug",
    "collector",
    "collector_binary",
    "victoria_metrics",
    "vm_binary",
    "prometheus_binary",
    "otlp_env",
    "kustomize",
    "renders",
}
LIVE_PATHS = (
    "pipeline/",
    "matter/",
    "k8s/",
    "dashboards/test_queries_live.py",
    "compare/test_compare_live.py",
    "test_images_run.py",
    "test_soak.py",
)
UNIT_SLOW_S = 5.0
_slow_units: list[tuple[str, float]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "live: uses a test bed (emulated plugs, processes, Matter, collector, VictoriaMetrics,"
        " docker); `make unit` (-m 'not live') leaves it out",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        where = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & LIVE_FIXTURES or where.startswith(LIVE_PATHS):
            item.add_marker(pytest.mark.live)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > UNIT_SLOW_S and "live" not in report.keywords:
        _slow_units.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _slow_units:
        terminalreporter.write_line(
            f"unit tests (not marked live) slower than {UNIT_SLOW_S:g}s: mark them"
            " `pytest.mark.live` if they use a test bed, to keep `make unit` quick:"
        )
        for nodeid, seconds in sorted(_slow_units, key=lambda x: -x[1]):
            terminalreporter.write_line(f"  {seconds:5.1f}s {nodeid}")


@pytest.fixture(autouse=True, scope="session")
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``otelpower sim`` keeps its plugs' addresses under $XDG_STATE_HOME without
    --config-out: the tests' processes keep theirs here, never in the user's home."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


@pytest.fixture
async def simulator() -> AsyncIterator[Any]:
    from otelpower.sim import Simulator

    sim = Simulator()
    try:
        yield sim
    finally:
        await sim.stop()


def make_config(data: dict[str, Any], env: dict[str, str] | None = None, **settings: Any) -> Config:
    """A Config from a dict (as the sim writes it), with test-friendly poll settings.

    Credentials come from ``env`` (KASA_USERNAME / KASA_PASSWORD), as in production.
    """
    merged = {
        **data,
        "poll": {"interval": 0.3, "timeout": 2, "backoff_max": 1, **settings.pop("poll", {})},
        **settings,
    }
    doc = YamlDoc(source="<test>", data=merged)
    return _parse(doc, env or {}, registry.specs())


@pytest.fixture
async def receiver(unused_tcp_port: int, monkeypatch) -> AsyncIterator[Receiver]:
    rec = Receiver()
    runner = await rec.serve(unused_tcp_port)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{unused_tcp_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    yield rec
    await runner.cleanup()
