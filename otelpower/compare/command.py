"""``otelpower compare``: query, analyse, draw, write; exit 0 ok, 1 no data/backend, 2 usage."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from otelpower.cliargs import positive_float
from otelpower.compare.collect import collect
from otelpower.compare.query import MAX_POINTS, PromClient, QueryError, parse_duration, parse_time
from otelpower.compare.report import Analysis, analyse, render, summary
from otelpower.readers.base import Command

EXIT_OK = 0
EXIT_NO_DATA = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Options:
    url: str
    start: str = "-1h"
    end: str = "now"
    step: str = "15s"
    devices: tuple[str, ...] = ()
    out: Path = Path("compare-report")
    timeout: float = 30.0


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _normalize_device(text: str) -> str:
    from otelpower.config import normalize_mac

    try:
        return normalize_mac(text)
    except ValueError:
        return text  # not a MAC: match the device_id label as given


def run(opts: Options) -> int:
    try:
        now = time.time()
        start, end = parse_time(opts.start, now), parse_time(opts.end, now)
        step = parse_duration(opts.step)
        client = PromClient(opts.url, opts.timeout)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if start >= end:
        _error(f"--start ({opts.start}) must be before --end ({opts.end})")
        return EXIT_USAGE
    if (end - start) / step > MAX_POINTS:
        _error(
            f"--step {opts.step} gives {(end - start) / step:.0f} points per series over this"
            f" range (the API allows {MAX_POINTS}); use a larger step"
        )
        return EXIT_USAGE
    try:
        from otelpower.compare import charts

        charts.require_matplotlib()
    except ImportError:
        _error("the charts need matplotlib: pip install 'otelpower[report]'")
        return EXIT_USAGE

    device_ids = [_normalize_device(d) for d in opts.devices]
    try:
        collected = collect(client, start, end, step, device_ids)
    except QueryError as exc:
        _error(str(exc))
        return EXIT_NO_DATA
    if not collected.devices:
        which = f" for device(s) {', '.join(device_ids)}" if device_ids else ""
        _error(
            f"{client.base_url} has no tplink_native_*/tplink_matter_* series{which} between"
            f" {opts.start} and {opts.end}: nothing to compare"
        )
        return EXIT_NO_DATA

    analysis = analyse(collected, client.base_url)
    try:
        opts.out.mkdir(parents=True, exist_ok=True)
        _draw(analysis, opts.out)
        report = opts.out / "report.md"
        report.write_text(render(analysis), encoding="utf-8")
    except OSError as exc:
        _error(f"{opts.out}: cannot write the report: {exc}")
        return EXIT_USAGE
    print(summary(analysis, str(report)))
    return EXIT_OK


def _draw(analysis: Analysis, out: Path) -> None:
    from otelpower.compare import charts

    used: set[str] = set()
    for r in analysis.compared:
        base = charts.slug(r.data.device)
        if base in used:
            base = f"{base}-{charts.slug(r.data.device_id)}"
        used.add(base)
        r.charts = {"power": f"{base}-power.png", "diff": f"{base}-diff.png"}
        charts.power_chart(r.data, out / r.charts["power"], analysis.collected.step)
        charts.diff_chart(r.data, out / r.charts["diff"])
    devices = [r.data for r in analysis.compared + analysis.single]
    availability = {
        (r.data.device_id, p): s.availability
        for r in analysis.compared + analysis.single
        for p, s in r.up.items()
    }
    if devices:
        analysis.availability_chart = "availability.png"
        charts.availability_chart(devices, availability, out / analysis.availability_chart)


def _arguments(cmp: argparse.ArgumentParser) -> None:
    cmp.add_argument("--url", required=True, help="backend, e.g. http://localhost:8428")
    cmp.add_argument("--start", default="-1h", help="-1h, RFC 3339 or unix seconds")
    cmp.add_argument("--end", default="now", help="now, -5m, RFC 3339 or unix seconds")
    cmp.add_argument("--step", default="15s", help="range query resolution (default 15s)")
    cmp.add_argument(
        "--device", action="append", default=[], metavar="DEVICE_ID", help="only this MAC"
    )
    cmp.add_argument("--out", type=Path, default=Path("compare-report"), metavar="DIR")
    cmp.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="per query (default 30)",
    )


def _run(args: argparse.Namespace) -> int:
    return run(
        Options(
            url=args.url,
            start=args.start,
            end=args.end,
            step=args.step,
            devices=tuple(args.device),
            out=args.out,
            timeout=args.timeout,
        )
    )


COMMAND = Command(
    "compare",
    "native vs Matter from VictoriaMetrics/Prometheus: report.md + charts",
    _arguments,
    _run,
    epilog="example:\n  otelpower compare --url http://localhost:8428 --start -6h --out report\n",
)
