"""``otelpower run``: readers + telemetry in one process, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Protocol

from otelpower.config import Config
from otelpower.metrics import Quantity, register_device_metrics
from otelpower.model import SnapshotStore
from otelpower.selfmetrics import SelfMetrics
from otelpower.telemetry import Telemetry, make_resource, start_telemetry

log = logging.getLogger(__name__)

PROTOCOLS = ("native", "matter", "all")
SWITCH_INTERVAL_S = 0.001


class Reader(Protocol):
    """What every reader module provides (see otelpower/readers/)."""

    vendor: str
    protocol: str
    quantities: tuple[Quantity, ...]
    store: SnapshotStore
    self_metrics: SelfMetrics

    async def run(self) -> None: ...


def build_readers(config: Config, protocol: str) -> list[Reader]:
    readers: list[Reader] = []
    if protocol in ("native", "all"):
        from otelpower.readers.native import NativeReader

        readers.append(NativeReader(config))
    if protocol in ("matter", "all"):
        from otelpower.readers.matter import MatterReader

        readers.append(MatterReader(config))
    return readers


def start(config: Config, protocol: str, readers: list[Reader], port: int | None) -> Telemetry:
    # Short GIL turns for the renderer and the thread feeding the /metrics process while the
    # poller is busy. Set when /metrics was served from a thread here (p99 ~60 ms without it at
    # 1k plugs); bench/ figures are measured with it; whether it still helps is open (issue 7).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    resource = make_resource(
        house=config.house, protocol=protocol, instance_id=config.service_instance_id(protocol)
    )
    telemetry = start_telemetry(
        resource,
        prometheus_host=config.prometheus_host,
        prometheus_port=config.prometheus_port if port is None else port,
        export_interval_s=config.poll_interval,
    )
    meter = telemetry.provider.get_meter("otelpower")
    exporter = telemetry.exporter
    self_metrics = SelfMetrics(meter, (lambda: exporter) if exporter is not None else None)
    for reader in readers:
        reader.self_metrics = self_metrics
        telemetry.watch(reader.store)
        register_device_metrics(
            meter,
            reader.store,
            vendor=reader.vendor,
            protocol=reader.protocol,
            quantities=reader.quantities,
        )
        register_self = getattr(reader, "register_self_metrics", None)
        if register_self is not None:
            register_self(meter)
    return telemetry


async def _heartbeat(telemetry: Telemetry) -> None:
    """Tick for /healthz: a stalled event loop stops the ticks and fails liveness."""
    while True:
        telemetry.health.beat()
        await asyncio.sleep(1.0)


async def run(config: Config, protocol: str, port: int | None = None) -> None:
    readers = build_readers(config, protocol)
    telemetry = start(config, protocol, readers, port)
    log.info(
        "otelpower: %d device(s)%s, protocol %s, OTLP %s",
        len(config.owned_devices()),
        f" (shard {config.shard} of {len(config.devices)})" if config.shard else "",
        protocol,
        "on" if telemetry.otlp_enabled else "off (set OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(r.run(), name=f"reader {r.protocol}") for r in readers]
    tasks.append(asyncio.create_task(_heartbeat(telemetry), name="heartbeat"))
    telemetry.health.ready = True
    waiter = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not waiter and not t.cancelled() and t.exception()]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
    finally:
        for task in (waiter, *tasks):
            task.cancel()
        await asyncio.gather(waiter, *tasks, return_exceptions=True)
        telemetry.shutdown()
        log.info("otelpower stopped")
