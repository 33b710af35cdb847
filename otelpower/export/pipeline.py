"""One MeterProvider per process: Prometheus pull endpoint and optional OTLP push.

The pull endpoint is rendered here (otelpower.export.exposition) and served by a small process of
its own (otelpower.export.pullserver) or, for a small fleet, a thread of this one
(otelpower.export.inlineserver). OTLP is configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables and is off when no endpoint is set.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from otelpower import __version__
from otelpower.core.model import SnapshotStore
from otelpower.export import cardinality, otelenv
from otelpower.export.exposition import CachedExposition, IsolatingRegistry
from otelpower.export.httpserver import Health
from otelpower.export.inlineserver import InlineServer
from otelpower.export.otlp import otlp_exporter
from otelpower.export.pullserver import PullServer
from otelpower.export.shared_reader import (
    SharedReader,
    WatchedPeriodicReader,
    WatchedPrometheusReader,
)
from otelpower.export.stale import StaleMarkingExporter

log = logging.getLogger(__name__)

SERVICE_NAME = "otelpower"
#: how long stopping waits for the collector to take the last values and stale markers
#: (docker stop's grace is 10 s); not at all while exports are failing
SHUTDOWN_S = 5.0


def make_resource(
    *, house: str, protocol: str, instance_id: str, environ: Mapping[str, str] | None = None
) -> Resource:
    """Our attributes over OTEL_RESOURCE_ATTRIBUTES; OTEL_SERVICE_NAME names the service."""
    env = os.environ if environ is None else environ
    return Resource.create(
        {
            "service.name": otelenv.service_name(env, SERVICE_NAME),
            "service.version": __version__,
            "service.instance.id": instance_id,
            "house": house,
            "protocol": protocol,
        }
    )


@dataclass
class Telemetry:
    provider: MeterProvider
    registry: CollectorRegistry
    prometheus_port: int | None = None
    otlp_enabled: bool = False
    health: Health = field(default_factory=Health)
    exporter: StaleMarkingExporter | None = None
    exposition: CachedExposition | None = None
    _server: PullServer | InlineServer | None = field(default=None, repr=False)

    def watch(self, store: SnapshotStore) -> None:
        """Re-render /metrics whenever ``store`` changes."""
        if self.exposition is not None:
            store.listen(self.exposition.invalidate)

    def shutdown(self) -> None:
        """Flush OTLP (for ``SHUTDOWN_S`` at most) and stop the HTTP endpoint; safe to call
        twice."""
        if self.exposition is not None:
            self.exposition.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        watchdog = None
        if self.exporter is not None:
            if self.exporter.failing:
                self.exporter.abort()
            else:
                watchdog = threading.Timer(SHUTDOWN_S, self.exporter.abort)
                watchdog.daemon = True
                watchdog.start()
        try:
            self.provider.shutdown(timeout_millis=SHUTDOWN_S * 1000)
        finally:
            if watchdog is not None:
                watchdog.cancel()


def start_telemetry(
    resource: Resource,
    *,
    prometheus_host: str | None,
    prometheus_port: int,
    export_interval_s: float,
    environ: Mapping[str, str] | None = None,
    web_config: str | None = None,
    endpoint_process: bool = True,
) -> Telemetry:
    """Build the provider; ``prometheus_host=None`` disables the pull endpoint, and so does
    OTEL_METRICS_EXPORTER without ``prometheus`` (or OTEL_SDK_DISABLED=true).
    ``endpoint_process``: /metrics served by a process of its own, else by a thread."""
    env = os.environ if environ is None else environ
    registry = IsolatingRegistry()
    ProcessCollector(registry=registry)
    wanted = otelenv.metrics_exporters(env)
    if wanted is not None and "prometheus" not in wanted:
        prometheus_host = None
    exporter = otlp_exporter(env, None if wanted is None else "otlp" in wanted)
    interval_ms = float(env.get("OTEL_METRIC_EXPORT_INTERVAL", export_interval_s * 1000))
    # one reader, so one copy of every series (see otelpower.export.shared_reader)
    shared: SharedReader | None = None
    reader: MetricReader | None
    if prometheus_host is None:
        reader = (
            None
            if exporter is None
            else WatchedPeriodicReader(exporter, export_interval_millis=interval_ms)
        )
    elif exporter is None:
        reader = WatchedPrometheusReader(scope_info_enabled=False, registry=registry)
    else:
        reader = shared = SharedReader(registry, exporter, interval_ms / 1000)
    provider = MeterProvider(
        resource=resource,
        metric_readers=[] if reader is None else [reader],
        views=cardinality.views(),
    )
    telemetry = Telemetry(provider, registry, otlp_enabled=exporter is not None, exporter=exporter)
    if prometheus_host is not None:
        serving = PullServer if endpoint_process else InlineServer
        server = serving(prometheus_host, prometheus_port, telemetry.health, web_config)
        telemetry.prometheus_port = server.start()  # PullServerError when the port is taken
        telemetry._server = server
        # without changes, a rendering every interval (at most 20 s: the endpoint calls a
        # rendering older than 30 s stale); value changes at most every third of it
        exposition = CachedExposition(
            registry,
            max_age_s=max(1.0, min(export_interval_s, 20.0)),
            value_gap_s=min(5.0, export_interval_s / 3),
        )
        exposition.listeners.append(server.publish)
        exposition.render()  # served before this returns
        exposition.start()
        telemetry.exposition = exposition
        if shared is not None:
            shared.refresh = exposition.render
            shared.start()
        scheme = "https" if server.tls else "http"
        log.info("Prometheus metrics on %s://%s:%d/metrics", scheme, prometheus_host, server.port)
    return telemetry
