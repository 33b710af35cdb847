"""Command line: run, check, discover, read, sim. The surface is stable; scripts build on it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from otelpower import __version__, eventloop
from otelpower.app import PROTOCOLS
from otelpower.config import ConfigError, load_config
from otelpower.pullserver import PullServerError
from otelpower.sharding import parse_shard

log = logging.getLogger("otelpower")

EXIT_CONFIG = 2
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="otelpower",
        description="Smart-plug power readings (TP-Link Kasa/Tapo) as OpenTelemetry metrics.",
    )
    p.add_argument("--version", action="version", version=f"otelpower {__version__}")
    p.add_argument("--log-level", default=os.environ.get("OTELPOWER_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="poll the configured plugs and serve/push metrics")
    run.add_argument("config", type=Path, metavar="CONFIG")
    run.add_argument("--protocol", choices=PROTOCOLS, default="native")
    run.add_argument("--prometheus-port", type=int, metavar="PORT")
    run.add_argument("--matter-server", metavar="URL", help="Matter server ws://HOST:PORT/ws")
    run.add_argument(
        "--shard",
        metavar="i/N",
        default=os.environ.get("OTELPOWER_SHARD"),
        help="read only the device_ids that hash to i of N replicas (env OTELPOWER_SHARD)",
    )

    check = sub.add_parser("check", help="validate a config file without running")
    check.add_argument("config", type=Path, metavar="CONFIG")

    disc = sub.add_parser("discover", help="find plugs on the LAN; print a table and YAML")
    disc.add_argument("--json", action="store_true", help="print JSON instead")
    disc.add_argument(
        "--target",
        action="append",
        metavar="ADDR",
        help="broadcast or unicast address to probe (repeatable; default 255.255.255.255)",
    )
    disc.add_argument("--wait", type=float, default=3.0, metavar="SECONDS")

    read = sub.add_parser("read", help="poll one plug once and print its readings")
    read.add_argument("host", metavar="HOST[:PORT]")
    read.add_argument("--json", action="store_true")
    read.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")

    sim = sub.add_parser("sim", help="serve emulated plugs on loopback")
    sim.add_argument("--profile", action="append", type=Path, default=[], metavar="FILE")
    sim.add_argument("--count", type=int, default=None, metavar="N")
    sim.add_argument("--static", action="store_true", help="serve the profile's own readings")
    sim.add_argument("--config-out", type=Path, metavar="PATH")
    sim.add_argument(
        "--matter",
        action="store_true",
        help="also a virtual Matter plug mirroring the first plug (same MAC and load curve)",
    )
    sim.add_argument(
        "--matter-server",
        metavar="URL",
        help="commission it into this Matter server (default: start a local one)",
    )

    cmp = sub.add_parser(
        "compare", help="native vs Matter from VictoriaMetrics/Prometheus: report.md + charts"
    )
    cmp.add_argument("--url", required=True, help="backend, e.g. http://localhost:8428")
    cmp.add_argument("--start", default="-1h", help="-1h, RFC 3339 or unix seconds")
    cmp.add_argument("--end", default="now", help="now, -5m, RFC 3339 or unix seconds")
    cmp.add_argument("--step", default="15s", help="range query resolution (default 15s)")
    cmp.add_argument(
        "--device", action="append", default=[], metavar="DEVICE_ID", help="only this MAC"
    )
    cmp.add_argument("--out", type=Path, default=Path("compare-report"), metavar="DIR")
    cmp.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("kasa").setLevel(logging.ERROR)  # we report per-device state ourselves
    handler = {
        "run": _cmd_run,
        "check": _cmd_check,
        "discover": _cmd_discover,
        "read": _cmd_read,
        "sim": _cmd_sim,
        "compare": _cmd_compare,
    }[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _cmd_run(args: argparse.Namespace) -> int:
    from otelpower import app

    config = load_config(args.config)
    if args.matter_server:
        config = replace(config, matter_url=args.matter_server)
    if args.shard:
        try:
            config = replace(config, shard=parse_shard(args.shard))
        except ValueError as exc:
            print(f"error: --shard: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if args.protocol in ("matter", "all") and not config.matter_url:
        print(
            f"error: {config.source}: --protocol {args.protocol} needs a Matter server:"
            " set matter.url in the config or pass --matter-server ws://HOST:5580/ws",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        eventloop.run(app.run(config, args.protocol, args.prometheus_port))
    except PullServerError as exc:
        print(f"error: {config.source}: prometheus: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    native = sum(1 for d in config.devices if d.native and d.native.host)
    matter = sum(1 for d in config.devices if d.matter_node_id is not None)
    print(
        f"{config.source}: OK: house {config.house!r}, {len(config.devices)} device(s)"
        f" ({native} with a native host, {len(config.devices) - native} by discovery,"
        f" {matter} with a Matter node id); poll every {config.poll_interval:g}s,"
        f" Prometheus on {config.prometheus_host}:{config.prometheus_port}"
    )
    return 0


def _credentials():  # -> kasa.Credentials | None
    from kasa import Credentials

    user, password = os.environ.get("KASA_USERNAME", ""), os.environ.get("KASA_PASSWORD", "")
    return Credentials(user, password) if user or password else None


def _split_host(text: str) -> tuple[str, int | None]:
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host and not host.endswith(":"):
        return host.strip("[]"), int(port)
    return text, None


def _cmd_read(args: argparse.Namespace) -> int:
    from otelpower.readers.oneshot import read_plug

    host, port = _split_host(args.host)
    try:
        result = asyncio.run(read_plug(host, port, _credentials(), args.timeout))
    except Exception as exc:
        from otelpower.readers.native import REMEDIES, classify

        status, detail = classify(exc, args.timeout)
        print(f"error: {args.host}: {status}: {detail}; {REMEDIES[status]}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_reading(result)
    return 0


def _print_reading(result: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        return "-" if value is None else str(value)

    print(f"{result['model']} {result['mac']} ({result['transport']}, fw {result['firmware']})")
    rows = [("", result), *((f"outlet {i}", o) for i, o in enumerate(result.get("outlets", []), 1))]
    for name, r in rows:
        print(
            f"  {name:<9} power {fmt(r['power_w'])} W  voltage {fmt(r['voltage_v'])} V"
            f"  current {fmt(r['current_a'])} A  today {fmt(r['energy_today_kwh'])} kWh"
            f"  month {fmt(r['energy_month_kwh'])} kWh  total {fmt(r['energy_total_kwh'])} kWh"
            f"  relay {fmt(r['relay_on'])}"
        )


def _cmd_discover(args: argparse.Namespace) -> int:
    from otelpower.readers.oneshot import discover_plugs, yaml_snippet

    rows = asyncio.run(
        discover_plugs(args.target or ["255.255.255.255"], args.wait, _credentials())
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no plugs answered (check that this host is on the plugs' LAN)", file=sys.stderr)
        return 0
    header = ("MAC", "IP", "MODEL", "FIRMWARE", "TRANSPORT", "ENERGY")
    table = [header] + [
        (r["mac"], r["ip"], r["model"], r["firmware"] or "?", r["transport"], r["energy"])
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print("\n# paste into your config under 'devices:'")
    print(yaml_snippet(rows))
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from otelpower.sim.server import serve

    username = os.environ.get("KASA_USERNAME", "")
    password = os.environ.get("KASA_PASSWORD", "")
    try:
        eventloop.run(
            _until_signal(
                serve(
                    args.profile,
                    args.count,
                    args.static,
                    args.config_out,
                    username,
                    password,
                    matter=args.matter or bool(args.matter_server),
                    matter_server=args.matter_server,
                )
            )
        )
    except (ValueError, RuntimeError) as exc:  # bad profile, Matter bed not installed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from otelpower.compare.command import Options, run

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


async def _until_signal(coro: Any) -> None:
    """Run ``coro`` until it ends or SIGTERM/SIGINT cancels it."""
    import contextlib
    import signal

    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    raise SystemExit(main())
