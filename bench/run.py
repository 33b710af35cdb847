"""otelpower benchmarks: poll fan-out, /metrics latency, OTLP export, memory, staleness, Matter.

``make bench`` runs everything (``.venv/bin/python bench/run.py --help`` for the knobs) and
prints one table, then one JSON line per figure:
``{"figure": NAME, "value": NUMBER, "unit": UNIT, "cores": N}``. bench/README.md explains
each figure. Emulated plugs and the /metrics scraper run in child processes (emulator.py,
scrape.py) so that only the reader's own work is timed in this process; the reader runs on
the event loop production uses (otelpower.eventloop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from figures import Figure, log, report
from otlpsink import OtlpSink
from scrape import body_size, percentile, scrape

from harness.emulator import EmulatorProcess, raise_fd_limit
from harness.procstat import rss_mb
from otelpower import app, eventloop
from otelpower.config import Config, parse_config
from otelpower.config.yamlsource import YamlDoc
from otelpower.core.model import DeviceStatus
from otelpower.readers.native.reader import NativeReader


def make_config(data: dict[str, Any], **poll: Any) -> Config:
    """The emulator's plugs with bench settings (no discovery, pull endpoint on a free port)."""
    merged = {
        **data,
        "poll": {"interval": 1.0, "timeout": 10, "backoff_max": 1, **poll},
        "discovery": {"enabled": False},
        "prometheus": {"host": "127.0.0.1", "port": 0},
    }
    return parse_config(YamlDoc(source="<bench>", data=merged), {})


def not_ok(reader: NativeReader) -> int:
    return sum(1 for snap in reader.store.all() if snap.status is not DeviceStatus.OK)


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per minute."""
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    return statistics.linear_regression(xs, ys).slope * 60


# -- poll cycle ----------------------------------------------------------------------------


async def bench_poll(n: int, latency_s: float, seq_limit: int) -> list[Figure]:
    """One concurrent cycle (after a warm-up) vs the same plugs one after another."""
    emu = EmulatorProcess(n, latency_s)
    started = time.monotonic()
    data = await asyncio.to_thread(emu.start)
    log(f"poll N={n}: {n} plugs up in {time.monotonic() - started:.1f}s")
    reader = NativeReader(make_config(data, concurrency=n))
    try:
        t0 = time.perf_counter()
        await reader.poll_all()  # warm-up: discovery, KLAP handshake, connections
        log(f"poll N={n}: warm-up cycle {time.perf_counter() - t0:.2f}s, not ok {not_ok(reader)}")

        emu_cpu0 = await asyncio.to_thread(emu.cpu_s)
        cpu0, t0 = time.process_time(), time.perf_counter()
        await reader.poll_all()
        cycle_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        emu_cpu_s = await asyncio.to_thread(emu.cpu_s) - emu_cpu0
        failed = not_ok(reader)
        log(f"poll N={n}: concurrent cycle {cycle_s:.3f}s, cpu {cpu_s:.3f}s, not ok {failed}")

        cycles, t0 = 3, time.perf_counter()
        for _ in range(cycles):
            await reader.poll_all()
        saturated = cycles * n / (time.perf_counter() - t0)

        plugs = reader._plugs[: seq_limit or n]
        t0 = time.perf_counter()
        for plug in plugs:
            await reader._poll(plug)
        seq_s = (time.perf_counter() - t0) * n / len(plugs)
        failed += not_ok(reader)
        log(
            f"poll N={n}: sequential {seq_s:.2f}s"
            + (f" (extrapolated from {len(plugs)} plugs)" if len(plugs) < n else "")
        )
    finally:
        await reader.close()
        await asyncio.to_thread(emu.stop)
    return [
        Figure(f"poll_cycle_s_{n}", cycle_s, "s"),
        Figure(f"poll_sequential_s_{n}", seq_s, "s"),
        Figure(f"poll_speedup_vs_sequential_{n}", seq_s / cycle_s, "x"),
        Figure(f"polls_per_s_saturated_{n}", saturated, "polls/s"),
        Figure(f"cpu_ms_per_poll_{n}", cpu_s * 1000 / n, "ms"),
        Figure(f"emulator_cpu_ms_per_poll_{n}", emu_cpu_s * 1000 / n, "ms"),
        Figure(f"emulator_busy_share_of_cycle_{n}", emu_cpu_s / cycle_s, "cores"),
        Figure(f"poll_failures_{n}", failed, "polls"),
    ]


# -- a running reader: /metrics, OTLP export, memory ------------------------------------


class Running:
    """``otelpower run`` in this process: N emulated plugs, pull endpoint, OTLP to a sink."""

    def __init__(self, n: int, latency_s: float, interval_s: float) -> None:
        self.n, self.latency_s, self.interval_s = n, latency_s, interval_s
        self.emu = EmulatorProcess(n, latency_s)
        self.sink = OtlpSink()

    async def __aenter__(self) -> Running:
        data = await asyncio.to_thread(self.emu.start)
        os.environ.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=self.sink.url,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_METRIC_EXPORT_INTERVAL=str(int(self.interval_s * 1000)),
        )
        config = make_config(data, interval=self.interval_s)
        self.running = contextlib.AsyncExitStack()
        runtime = await self.running.enter_async_context(app.Runtime(config, "native", port=0))
        self.reader, self.telemetry = runtime.reader(), runtime.telemetry
        self.url = f"http://127.0.0.1:{self.telemetry.prometheus_port}/metrics"
        for _ in range(600):  # up to 2 minutes for every plug to answer
            if not not_ok(self.reader):
                break
            await asyncio.sleep(0.2)
        log(f"run N={self.n}: polling every {self.interval_s:g}s, not ok {not_ok(self.reader)}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.running.aclose()
        self.sink.close()
        await asyncio.to_thread(self.emu.stop)

    async def scrapes(self, pool: ProcessPoolExecutor, count: int, gzip: bool = True) -> list:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, scrape, self.url, count, gzip)


def scrape_figures(suffix: str, latencies: list[float]) -> list[Figure]:
    return [
        Figure(f"scrape_p50_ms_{suffix}", percentile(latencies, 50) * 1000, "ms"),
        Figure(f"scrape_p99_ms_{suffix}", percentile(latencies, 99) * 1000, "ms"),
    ]


async def bench_scrape(n: int, latency_s: float, count: int, pool) -> list[Figure]:
    async with Running(n, latency_s, interval_s=5.0) as run:
        await asyncio.sleep(2)
        latencies = await run.scrapes(pool, count)
        size = await asyncio.to_thread(body_size, run.url)
    log(f"scrape N={n}: p99 {percentile(latencies, 99) * 1000:.1f} ms, body {size} bytes")
    return [*scrape_figures(str(n), latencies), Figure(f"metrics_bytes_{n}", size, "bytes")]


async def bench_long(n: int, latency_s: float, duration_s: float, count: int, pool) -> list:
    """N plugs polled every 15 s for ``duration_s``: memory, then scrapes, export, slow plugs."""
    figures: list[Figure] = []
    async with Running(n, latency_s, interval_s=15.0) as run:  # the shipped default interval
        began, samples = time.monotonic(), []
        while (elapsed := time.monotonic() - began) < duration_s:
            samples.append((elapsed, rss_mb()))
            await asyncio.sleep(5)
        samples.append((time.monotonic() - began, rss_mb()))
        steady = [s for s in samples if s[0] >= min(120.0, duration_s / 3)]
        log(f"long N={n}: RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MB")
        assert run.telemetry._server is not None and run.telemetry._server._proc is not None
        endpoint_pid = run.telemetry._server._proc.pid
        assert endpoint_pid is not None
        figures += [
            Figure(f"rss_mb_{n}", samples[-1][1], "MB"),
            Figure(f"rss_mb_{n}_max", max(rss for _, rss in steady), "MB"),
            Figure(f"rss_mb_{n}_metrics_process", rss_mb(endpoint_pid), "MB"),
            Figure(f"rss_slope_mb_per_min_{n}", slope_per_min(steady), "MB/min"),
            Figure(f"rss_minutes_{n}", duration_s / 60, "min"),
        ]
        figures += scrape_figures(str(n), await run.scrapes(pool, count))
        assert run.telemetry.exposition is not None
        render_s = run.telemetry.exposition.current().cost_s
        figures.append(Figure(f"render_s_{n}", render_s, "s"))
        figures += scrape_figures(f"{n}_identity", await run.scrapes(pool, count, gzip=False))
        figures.append(
            Figure(f"metrics_bytes_{n}", await asyncio.to_thread(body_size, run.url), "bytes")
        )

        t0 = time.perf_counter()
        await asyncio.to_thread(run.telemetry.provider.force_flush, 60_000)
        figures += [
            Figure(f"otlp_export_ms_{n}", (time.perf_counter() - t0) * 1000, "ms"),
            Figure(f"otlp_export_bytes_{n}", run.sink.sizes[-1], "bytes"),
        ]

        slow_s = 2.0
        await asyncio.to_thread(run.emu.set_latency, slow_s)
        await asyncio.sleep(3 * run.interval_s)  # a few cycles of slow plugs
        figures += scrape_figures(f"{n}_slow_plugs", await run.scrapes(pool, count))
        log(f"long N={n}: scrapes repeated with plugs answering after {slow_s:g}s")
    return figures


def long_in_fresh_process(n: int, latency_s: float, duration_s: float, count: int) -> list:
    """bench_long in a new interpreter, so its RSS is what ``otelpower run`` would have and
    not what the poll and scrape phases left behind in this one."""
    raise_fd_limit()
    logging.basicConfig(level=logging.ERROR)

    async def go() -> list[Figure]:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            return await bench_long(n, latency_s, duration_s, count, pool)

    return eventloop.run(go())


# -- main ----------------------------------------------------------------------------------


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


async def main_async(args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    for n in sizes(args.poll):
        figures += await bench_poll(n, args.latency, args.seq_limit)
    if args.tpap:
        from tpap import bench_tpap

        figures += await asyncio.to_thread(bench_tpap, args.tpap, args.latency)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        for n in sizes(args.scrape):
            figures += await bench_scrape(n, args.latency, args.scrapes, pool)
    if args.long:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as fresh:
            figures += await asyncio.get_running_loop().run_in_executor(
                fresh,
                long_in_fresh_process,
                args.long,
                args.latency,
                args.minutes * 60,
                args.scrapes,
            )
    if args.endpoint:
        from endpoint import bench_endpoint

        figures += await asyncio.to_thread(bench_endpoint, args.endpoint, args.scrapes)
    if not args.skip_pipeline:
        from pipeline import bench_matter, bench_stale

        figures += await bench_stale()
        figures += await bench_matter()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--poll", default="100,1000", help="plug counts for the poll cycle")
    parser.add_argument("--scrape", default="10,100", help="plug counts for short /metrics runs")
    parser.add_argument("--long", type=int, default=1000, help="plugs for the long run (0: skip)")
    parser.add_argument(
        "--tpap", type=int, default=1000, help="plugs per transport for TPAP vs KLAP (0: skip)"
    )
    parser.add_argument(
        "--endpoint", type=int, default=500, help="slow clients against /metrics (0: skip)"
    )
    parser.add_argument("--minutes", type=float, default=10, help="length of the long run")
    parser.add_argument("--scrapes", type=int, default=200, help="GETs per scrape figure")
    parser.add_argument("--latency", type=float, default=0.05, help="plug reply delay, s")
    parser.add_argument(
        "--seq-limit",
        type=int,
        default=0,
        help="time the sequential baseline on this many plugs and extrapolate (0 = all)",
    )
    parser.add_argument(
        "--skip-pipeline", action="store_true", help="no collector/VictoriaMetrics/Matter figures"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    raise_fd_limit()
    figures = eventloop.run(main_async(args))
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
