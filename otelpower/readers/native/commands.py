"""``otelpower discover`` and ``otelpower read HOST``: the native reader's subcommands."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from otelpower.cliargs import host_and_port, positive_float
from otelpower.readers.base import Command

EXIT_FAILED = 1


def _clients(timeout: float, allow_aes: bool) -> Any:  # links.Clients
    from otelpower.readers.native.links import Clients

    user, password = os.environ.get("KASA_USERNAME", ""), os.environ.get("KASA_PASSWORD", "")
    return Clients(user, password, timeout, allow_aes=allow_aes)


def _allow_aes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-aes",
        action="store_true",
        help="log in to plugs that speak AES too: its login sends the account password to"
        " whatever answers at that address (KLAP and TPAP plugs prove themselves first)",
    )


def _read_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "host",
        metavar="HOST[:PORT]",
        type=host_and_port,
        help="the plug's address; the port only when it is not the protocol's default",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead")
    _allow_aes(p)
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up after this long (default 10)",
    )


def _read(args: argparse.Namespace) -> int:
    from otelpower.readers.native.errors import classify
    from otelpower.readers.native.oneshot import read_plug
    from otelpower.readers.native.remedies import REMEDIES

    host, port = args.host
    where = f"{host}:{port}" if port else host
    try:
        clients = _clients(args.timeout, args.allow_aes)
        result = asyncio.run(read_plug(host, port, clients, args.timeout))
    except Exception as exc:
        status, detail = classify(exc, args.timeout)
        if "allow_aes" in detail:  # the remedy as this command takes it
            detail += "; here: --allow-aes"
        print(f"error: {where}: {status}: {detail}; {REMEDIES[status]}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_reading(result)
    return 0


def _quantity(value: Any, unit: str) -> str:
    return "n/a" if value is None else f"{value} {unit}"


def _relay(value: Any) -> str:
    return "n/a" if value is None else ("on" if value else "off")


def reading_lines(result: dict[str, Any]) -> list[str]:
    """``read``'s text: a header line, then one line of readings (per outlet for a strip);
    words, not Python values: relay ``on``/``off``, ``n/a`` where the plug reports nothing."""
    name = f"{result['alias']!r}: " if result.get("alias") else ""
    lines = [
        f"{name}{result['model'] or 'unknown model'} {result['mac']}"
        f" ({result['transport']}, firmware {result['firmware'] or 'n/a'})"
    ]
    rows = [("", result), *((f"outlet {i}", o) for i, o in enumerate(result.get("outlets", []), 1))]
    for label, r in rows:
        lines.append(
            f"  {label:<9} power {_quantity(r['power_w'], 'W')}"
            f"  voltage {_quantity(r['voltage_v'], 'V')}"
            f"  current {_quantity(r['current_a'], 'A')}"
            f"  today {_quantity(r['energy_today_kwh'], 'kWh')}"
            f"  month {_quantity(r['energy_month_kwh'], 'kWh')}"
            f"  total {_quantity(r['energy_total_kwh'], 'kWh')}"
            f"  relay {_relay(r['relay_on'])}"
        )
    return lines


def _print_reading(result: dict[str, Any]) -> None:
    print("\n".join(reading_lines(result)))


def _discover_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead")
    _allow_aes(p)
    p.add_argument(
        "--target",
        action="append",
        metavar="ADDR",
        help="broadcast or unicast address to probe (repeatable; default 255.255.255.255)",
    )
    p.add_argument(
        "--wait",
        type=positive_float,
        default=3.0,
        metavar="SECONDS",
        help="how long to listen for answers (default 3)",
    )


def _discover(args: argparse.Namespace) -> int:
    from otelpower.readers.native.oneshot import discover_plugs, yaml_snippet

    clients = _clients(10.0, args.allow_aes)
    rows = asyncio.run(discover_plugs(args.target or ["255.255.255.255"], args.wait, clients))
    if not rows:
        if args.json:
            print("[]")
        print("no plugs answered (check that this host is on the plugs' LAN)", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("MAC", "IP", "NAME", "MODEL", "FIRMWARE", "TRANSPORT", "ENERGY")
    table = [header] + [
        (
            r["mac"],
            r["ip"],
            r["alias"] or "?",
            r["model"],
            r["firmware"] or "?",
            r["transport"],
            r["energy"],
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print("\n# paste into your config under 'devices:'")
    print(yaml_snippet(rows))
    return 0


ACCOUNT = "environment: KASA_USERNAME, KASA_PASSWORD (the TP-Link account owning the plugs)\n"
DISCOVER = Command(
    "discover",
    "find plugs on the LAN; print a table and YAML",
    _discover_arguments,
    _discover,
    epilog="examples:\n  otelpower discover\n  otelpower discover --target 192.168.20.255 --json\n"
    + ACCOUNT,
)
READ = Command(
    "read",
    "poll one plug once and print its readings",
    _read_arguments,
    _read,
    epilog="examples:\n  otelpower read 192.168.1.20\n  otelpower read 192.168.1.23:9999 --json\n"
    + ACCOUNT,
)
