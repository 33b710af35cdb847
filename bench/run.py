"""otelpower benchmarks: the product as it runs (product.py), the reader alone, staleness, Matter.

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
import logging
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from figures import Figure, log, report
from product import Plan, measure

from harness.emulator import EmulatorProcess, raise_fd_limit
from otelpower import eventloop
from otelpower.config import Config, parse_config
from otelpower.config.yamlsource import YamlDoc
from otelpower.core.model import DeviceStatus
from otelpower.readers import registry
from otelpower.readers.native.reader import NativeReader


def make_config(data: dict[str, Any], **poll: Any) -> Config:
    """The emulator's plugs with bench settings (no discovery, pull endpoint on a free port)."""
    merged = {
        **data,
        "poll": {"interval": 1.0, "timeout": 10, "backoff_max": 1, **poll},
        "discovery": {"enabled": False},
        "prometheus": {"host": "127.0.0.1", "port": 0},
    }
    return parse_config(YamlDoc(source="<bench>", data=merged), {}, registry.specs())


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

        plugs = reader.devices[: seq_limit or n]
        t0 = time.perf_counter()
        for plug in plugs:
            await reader.poll(plug.device_id)
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


# -- main ----------------------------------------------------------------------------------


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def product_plans(args: argparse.Namespace) -> list[Plan]:
    """KLAP plugs at each count (the largest also goes through the outage and the memory
    run, last), and each other transport at ``--transport-plugs``."""
    counts = sorted(sizes(args.product))
    if not counts:
        return []
    plans = [Plan(n, "p110_klap", args.cycles) for n in counts[:-1]]
    if args.transport_plugs:
        plans += [Plan(args.transport_plugs, p, args.cycles) for p in args.transports.split(",")]
    big = Plan(counts[-1], "p110_klap", args.cycles, outage=True, outage_s=args.outage)
    return [*plans, replace(big, minutes=args.minutes)]


async def main_async(args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    for plan in product_plans(args):
        figures += await asyncio.to_thread(measure, plan)
    for n in sizes(args.poll):
        figures += await bench_poll(n, args.latency, args.seq_limit)
    if args.tpap:
        from tpap import bench_tpap

        figures += await asyncio.to_thread(bench_tpap, args.tpap, args.latency)
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
    parser.add_argument(
        "--product",
        default="10,100,1000",
        help="KLAP plug counts for `otelpower run` measured as it runs (bench/product.py; the"
        " largest also goes through the outage and the memory run; empty: skip)",
    )
    parser.add_argument(
        "--transports",
        default="kp115_xor,p110_aes,p110_tpap",
        help="emulator profiles of the other transports, run as the product too",
    )
    parser.add_argument("--transport-plugs", type=int, default=100, help="plugs of each (0: skip)")
    parser.add_argument("--cycles", type=int, default=4, help="poll intervals per steady window")
    parser.add_argument("--outage", type=float, default=300, help="seconds the plugs stay off")
    parser.add_argument(
        "--poll", default="100,1000", help="plug counts for the isolated reader's poll cycle"
    )
    parser.add_argument(
        "--tpap", type=int, default=1000, help="plugs per transport for TPAP vs KLAP (0: skip)"
    )
    parser.add_argument(
        "--endpoint", type=int, default=500, help="slow clients against /metrics (0: skip)"
    )
    parser.add_argument(
        "--minutes", type=float, default=60, help="length of the largest product run (memory)"
    )
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
