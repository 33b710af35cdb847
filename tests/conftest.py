"""Shared fixtures: emulated plugs on loopback and a config pointing at them."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb

from otelpower.config import Config
from otelpower.config import parse_config as _parse
from otelpower.yamlsource import YamlDoc

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
    return _parse(doc, env or {})


async def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


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
