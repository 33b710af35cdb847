"""``otelpower run``: readers + telemetry in one process, until SIGTERM/SIGINT.

``Runtime`` starts the chosen readers (otelpower.readers.registry) and the export pipeline
(otelpower.export) and stops them again; ``run()`` is ``otelpower run`` on top of it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from otelpower import eventloop
from otelpower.config import UNASSIGNED, Config
from otelpower.config.schema import NO_FILE
from otelpower.core.model import SnapshotStore
from otelpower.export.instruments import register_device_metrics
from otelpower.export.pipeline import Telemetry, make_resource, start_telemetry
from otelpower.export.selfmetrics import SelfMetrics
from otelpower.readers import registry
from otelpower.readers.base import Reader

log = logging.getLogger(__name__)

#: the cyclic GC's thresholds (Python's: 700, 10, 10). At 1,000 plugs the default collected
#: the young generation ~25 times a second and the whole heap twice a poll interval, 0.5 s of
#: CPU every 15 s (a quarter of the process); this collects the young one ~1/s and the whole
#: heap every few minutes (bench/README.md)
GC_THRESHOLDS = (20_000, 20, 10)


class Runtime:
    """The readers ``protocol`` chooses and their telemetry, as one unit.

    ``async with Runtime(config, protocol) as rt:`` builds the readers, starts the telemetry
    (/metrics, OTLP) and runs every reader as a task; leaving the block cancels them and
    shuts the telemetry down (flushing OTLP). ``port`` overrides prometheus.port.
    """

    def __init__(self, config: Config, protocol: str, port: int | None = None) -> None:
        self.config = config
        self.protocol = protocol
        self.port = port
        self.readers: list[Reader] = []
        self.telemetry: Telemetry | None = None
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def prometheus_port(self) -> int | None:
        return self.telemetry.prometheus_port if self.telemetry else None

    def reader(self, name: str | None = None) -> Reader:
        """The running reader ``name`` (the only one when None)."""
        if name is None:
            (only,) = self.readers
            return only
        return next(r for r in self.readers if r.spec.name == name)

    def start(self) -> Telemetry:
        """Build readers and telemetry without running the readers (see ``__aenter__``)."""
        config = self.config
        telemetry = start_telemetry(
            make_resource(
                house=config.house,
                protocol=self.protocol,
                instance_id=config.service_instance_id(self.protocol),
            ),
            prometheus_host=config.prometheus_host,
            prometheus_port=config.prometheus_port if self.port is None else self.port,
            export_interval_s=config.poll_interval,
            web_config=config.prometheus_web_config,
            endpoint_process=config.endpoint_process(),
        )
        self.telemetry = telemetry
        try:
            meter = telemetry.provider.get_meter("otelpower")
            exporter = telemetry.exporter
            exposition = telemetry.exposition
            recorder = SelfMetrics(
                meter,
                (lambda: exporter) if exporter is not None else None,
                (lambda: exposition.failures) if exposition is not None else None,
            )
            for spec in registry.runnable(self.protocol, config)[0]:
                reader = spec.create(config, SnapshotStore(), recorder)
                self.readers.append(reader)
                telemetry.watch(reader.store)
                register_device_metrics(
                    meter,
                    reader.store,
                    vendor=spec.vendor,
                    protocol=spec.protocol,
                    quantities=spec.quantities,
                    vendors=registry.metric_vendors(spec),
                )
                reader.register_metrics(meter)
        except BaseException:
            telemetry.shutdown()
            raise
        if telemetry.exposition is not None:
            telemetry.exposition.invalidate(urgent=True)  # the devices' `pending`, scrapeable now
        return telemetry

    async def __aenter__(self) -> Runtime:
        telemetry = self.start()
        self.tasks = [
            asyncio.create_task(r.run(), name=f"reader {r.spec.name}") for r in self.readers
        ]
        self.tasks.append(asyncio.create_task(_heartbeat(telemetry), name="heartbeat"))
        telemetry.health.ready = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        # bounded: a task that does not end (a client library awaiting what never comes)
        # must not keep the process from stopping; where it waits is logged
        done, stuck = await asyncio.wait(self.tasks, timeout=STOP_TASKS_S)  # never empty
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: Runtime.wait has raised a reader's already
        for task in stuck:
            where = "; ".join(
                f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno}" for f in task.get_stack()
            )
            log.warning("%s did not stop within %g s (at %s)", task.get_name(), STOP_TASKS_S, where)
        if self.telemetry is not None:
            # flushes OTLP: in a thread, as the receiver may be served by this very loop
            await asyncio.shield(asyncio.to_thread(self.telemetry.shutdown))
        log.info("otelpower stopped")

    async def wait(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; a reader that dies raises its exception here."""
        waiter = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([waiter, *self.tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        failed = [t for t in done if t is not waiter and not t.cancelled() and t.exception()]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]


#: logged by ``run()`` when there is no config file, so that a container or unit started
#: without one says what it does instead of looking misconfigured
ZERO_CONFIG_LOG = (
    "no config file: zero-config, every plug discovery finds is exported, named by its alias,"
    f" in room and shelf {UNASSIGNED!r}; to name and place plugs, give a config file"
    " (config.example.yaml)"
)


#: how long stopping waits for the readers' tasks to end once cancelled
STOP_TASKS_S = 10.0


async def _heartbeat(telemetry: Telemetry) -> None:
    """Tick for /healthz: a stalled event loop stops the ticks and fails liveness."""
    while True:
        telemetry.health.beat()
        await asyncio.sleep(1.0)


async def run(config: Config, protocol: str, port: int | None = None) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    runtime = Runtime(config, protocol, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    eventloop.guard(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with runtime:
        assert runtime.telemetry is not None
        if config.source == NO_FILE:
            log.info(ZERO_CONFIG_LOG)
        log.info(
            "otelpower: %d device(s) in %s%s%s, protocol %s, /metrics %s, OTLP %s",
            len(config.owned_devices()),
            config.source,
            f" (shard {config.shard} of {config.listed})" if config.shard else "",
            "" if config.devices_listed else ", and every plug discovery finds",
            protocol,
            "on" if runtime.prometheus_port is not None else "off",
            "on" if runtime.telemetry.otlp_enabled else "off (set OTEL_EXPORTER_OTLP_ENDPOINT)",
        )
        await runtime.wait(stop)
