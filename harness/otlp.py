"""An OTLP/HTTP metrics receiver on loopback: keeps every request, can refuse some."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb


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

    async def handle(self, request: web.Request) -> web.Response:
        msg = pb.ExportMetricsServiceRequest()
        msg.ParseFromString(await request.read())
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=503)
        self.requests.append(msg)
        return web.Response(
            body=pb.ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def serve(self, port: int) -> web.AppRunner:
        """Serve POST /v1/metrics on 127.0.0.1:``port``; ``cleanup()`` the runner to stop."""
        app = web.Application()
        app.router.add_post("/v1/metrics", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner
