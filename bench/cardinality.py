"""What raising the SDK's series limit costs: N devices through the real instruments and SDK
(harness/fleet.py), each going through every status (seven label sets of device_status and
six of poll_errors per device, all kept by the SDK), against the same devices always ok
(the baseline, same run). Each in a fresh process; RSS growth and collection time.

    .venv/bin/python bench/cardinality.py [--devices 10000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from figures import Figure, log, report

from harness.fleet import HISTORY, Fleet
from harness.procstat import rss_mb
from otelpower.core.model import DeviceStatus
from otelpower.export import cardinality


def _run(n: int, history: bool) -> tuple[float, float]:
    """RSS growth (MB) over building and running the fleet, and its last collection (s)."""
    gc.collect()
    before = rss_mb()
    fleet = Fleet(n, views=cardinality.views())
    statuses = HISTORY if history else [DeviceStatus.OK] * len(HISTORY)
    for status in statuses:
        started = time.perf_counter()
        fleet.round(status)
        last = time.perf_counter() - started
    gc.collect()
    return rss_mb() - before, last


def bench_cardinality(n: int) -> list[Figure]:
    results = {}
    for history in (False, True):
        log(f"cardinality: {n} devices, {'every status' if history else 'always ok'}")
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as fresh:
            results[history] = fresh.submit(_run, n, history).result()
    (steady_mb, steady_s), (history_mb, history_s) = results[False], results[True]
    return [
        Figure(f"cardinality_rss_mb_{n}_always_ok", steady_mb, "MB"),
        Figure(f"cardinality_rss_mb_{n}_every_status", history_mb, "MB"),
        Figure(f"cardinality_every_status_vs_always_ok_{n}", history_mb / steady_mb, "x"),
        Figure(
            f"cardinality_kb_per_device_of_history_{n}", (history_mb - steady_mb) * 1024 / n, "kB"
        ),
        Figure(f"cardinality_round_s_{n}_always_ok", steady_s, "s"),
        Figure(f"cardinality_round_s_{n}_every_status", history_s, "s"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args(argv)
    figures = bench_cardinality(args.devices)
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
