"""Shared fixtures: emulated plugs on loopback and a config pointing at them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harness.otlp import Receiver
from otelpower.config import Config
from otelpower.config import parse_config as _parse
from otelpower.config.yamlsource import YamlDoc
from otelpower.readers import registry

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "python-kasa"


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
