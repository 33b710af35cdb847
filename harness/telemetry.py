"""The export pipeline over a store the test fills itself, as app.Runtime builds it."""

from __future__ import annotations

from otelpower.core.model import SnapshotStore
from otelpower.export.instruments import register_device_metrics
from otelpower.export.pipeline import Telemetry, make_resource, start_telemetry
from otelpower.readers import registry
from otelpower.readers.base import ReaderSpec


def telemetry_over(
    store: SnapshotStore,
    spec: ReaderSpec,
    *,
    house: str,
    prometheus_host: str | None,
    export_interval_s: float,
) -> Telemetry:
    """Telemetry with ``spec``'s instruments reading ``store`` (no reader runs)."""
    resource = make_resource(house=house, protocol=spec.name, instance_id=f"{house}-{spec.name}")
    telemetry = start_telemetry(
        resource,
        prometheus_host=prometheus_host,
        prometheus_port=0,
        export_interval_s=export_interval_s,
    )
    register_device_metrics(
        telemetry.provider.get_meter("otelpower"),
        store,
        vendor=spec.vendor,
        protocol=spec.protocol,
        quantities=spec.quantities,
        vendors=registry.metric_vendors(spec),
    )
    return telemetry
