"""One MeterProvider per process: Prometheus pull endpoint and optional OTLP push.

The pull endpoint is rendered here (otelpower.exposition) and served by a small process of
its own (otelpower.pullserver). OTLP is configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables and is off when no endpoint is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from otelpower import __version__
from otelpower.exposition import CachedExposition
from otelpower.httpserver import Health
from otelpower.model import SnapshotStore
from otelpower.pullserver import PullServer
from otelpower.sharedreader import SharedReader
from otelpower.stale import StaleMarkingExporter, flag_markers

log = logging.getLogger(__name__)

SERVICE_NAME = "otelpower"


def make_resource(*, house: str, protocol: str, instance_id: str) -> Resource:
    return Resource.create(
        {
            "service.name": SERVICE_NAME,
            "service.version": __version__,
            "service.instance.id": instance_id,
            "house": house,
            "protocol": protocol,
        }
    )


def otlp_exporter(environ: Mapping[str, str]) -> StaleMarkingExporter | None:
    """The OTLP metric exporter the standard env vars ask for, or None when unset.

    Vanished series get stale markers (see otelpower.stale) unless
    ``OTELPOWER_STALE_MARKERS=false``.
    """
    endpoint = environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    exporter: MetricExporter
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        class GrpcExporter(OTLPMetricExporter):
            def _translate_data(self, data):  # type: ignore[no-untyped-def]
                request = super()._translate_data(data)
                flag_markers(request)
                return request

        exporter = GrpcExporter()
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpOTLPMetricExporter,
        )

        class HttpExporter(HttpOTLPMetricExporter):
            def _export_batch(self, export_request):  # type: ignore[no-untyped-def]
                flag_markers(export_request)
                return super()._export_batch(export_request)

        exporter = HttpExporter()
    else:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (use grpc or http/protobuf)"
        )
    markers = environ.get("OTELPOWER_STALE_MARKERS", "true").lower()
    return StaleMarkingExporter(exporter, markers=markers not in ("0", "false", "no", "off"))


@dataclass
class Telemetry:
    provider: MeterProvider
    registry: CollectorRegistry
    prometheus_port: int | None = None
    otlp_enabled: bool = False
    health: Health = field(default_factory=Health)
    exporter: StaleMarkingExporter | None = None
    exposition: CachedExposition | None = None
    _server: PullServer | None = field(default=None, repr=False)

    def watch(self, store: SnapshotStore) -> None:
        """Re-render /metrics whenever ``store`` changes."""
        if self.exposition is not None:
            store.listen(self.exposition.invalidate)

    def shutdown(self) -> None:
        """Flush OTLP and stop the HTTP endpoint; safe to call twice."""
        if self.exposition is not None:
            self.exposition.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.provider.shutdown()


def start_telemetry(
    resource: Resource,
    *,
    prometheus_host: str | None,
    prometheus_port: int,
    export_interval_s: float,
    environ: Mapping[str, str] | None = None,
) -> Telemetry:
    """Build the provider; ``prometheus_host=None`` disables the pull endpoint."""
    env = os.environ if environ is None else environ
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    exporter = otlp_exporter(env)
    interval_ms = float(env.get("OTEL_METRIC_EXPORT_INTERVAL", export_interval_s * 1000))
    # one reader, so one copy of every series (see otelpower.sharedreader)
    shared: SharedReader | None = None
    reader: MetricReader | None
    if prometheus_host is None:
        reader = (
            None
            if exporter is None
            else PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)
        )
    elif exporter is None:
        reader = PrometheusMetricReader(scope_info_enabled=False, registry=registry)
    else:
        reader = shared = SharedReader(registry, exporter, interval_ms / 1000)
    provider = MeterProvider(resource=resource, metric_readers=[] if reader is None else [reader])
    telemetry = Telemetry(provider, registry, otlp_enabled=exporter is not None, exporter=exporter)
    if prometheus_host is not None:
        server = PullServer(prometheus_host, prometheus_port, telemetry.health)
        telemetry.prometheus_port = server.start()  # PullServerError when the port is taken
        telemetry._server = server
        exposition = CachedExposition(registry, max_age_s=max(1.0, min(export_interval_s, 10.0)))
        exposition.listeners.append(server.publish)
        exposition.render()  # served before this returns
        exposition.start()
        telemetry.exposition = exposition
        if shared is not None:
            shared.refresh = exposition.render
            shared.start()
        log.info("Prometheus metrics on http://%s:%d/metrics", prometheus_host, server.port)
    return telemetry
