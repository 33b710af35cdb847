"""``otelpower sim``: serve emulated plugs on loopback (and a virtual Matter plug)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from otelpower import eventloop
from otelpower.cliargs import positive_int
from otelpower.readers.base import Command

EXIT_USAGE = 2
# otelpower.sim.shelly.MODELS' keys (not imported here: it needs aiohttp; a test compares)
SHELLY_MODELS = ("plus-plug-s", "plug-s-gen3", "pro-4pm")


def _arguments(sim: argparse.ArgumentParser) -> None:
    sim.add_argument("--profile", action="append", type=Path, default=[], metavar="FILE")
    sim.add_argument(
        "--count",
        type=positive_int,
        default=None,
        metavar="N",
        help="how many plugs (default: one per built-in profile)",
    )
    sim.add_argument("--static", action="store_true", help="serve the profile's own readings")
    sim.add_argument("--config-out", type=Path, metavar="PATH")
    sim.add_argument(
        "--fresh",
        action="store_true",
        help="new addresses, ports and MACs for the plugs (default: the last run's, so a config"
        " written then still matches)",
    )
    sim.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="where they are kept (default: beside --config-out as PATH.sim-state.json, else"
        " $XDG_STATE_HOME/otelpower/sim.json)",
    )
    sim.add_argument(
        "--tpap",
        action="store_true",
        help="serve every Tapo (SMART) profile over TPAP, as firmware 1.4.x does",
    )
    sim.add_argument(
        "--tpap-tls",
        type=int,
        choices=(0, 1, 2),
        help="implies --tpap: over HTTP (0, the default), self-signed HTTPS (1), or cloud"
        " certificates (2: no client supports it)",
    )
    sim.add_argument(
        "--shelly",
        action="append",
        default=[],
        choices=SHELLY_MODELS,
        metavar="MODEL",
        help=f"also a Shelly Gen2+ device: {', '.join(SHELLY_MODELS)} (repeatable;"
        " SHELLY_PASSWORD turns on its digest authentication)",
    )
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


def _run(args: argparse.Namespace) -> int:
    from otelpower.sim.serve import serve
    from otelpower.sim.state import default_path

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
                    tpap_tls=args.tpap_tls
                    if args.tpap_tls is not None
                    else (0 if args.tpap else None),
                    state=args.state or default_path(args.config_out),
                    fresh=args.fresh,
                    shelly=args.shelly,
                    shelly_password=os.environ.get("SHELLY_PASSWORD", ""),
                )
            )
        )
    except (ValueError, RuntimeError) as exc:  # bad profile, Matter bed not installed
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


async def _until_signal(coro: Any) -> None:
    """Run ``coro`` until it ends or SIGTERM/SIGINT cancels it."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


# the emulator speaks python-kasa's transports with the crypto python-kasa brings along
COMMAND = Command(
    "sim",
    "serve emulated plugs on loopback",
    _arguments,
    _run,
    requires=("aiohttp", "cryptography"),
    extra="native",
    epilog="examples:\n  otelpower sim --config-out sim.yaml     then: otelpower run sim.yaml\n"
    "  otelpower sim --count 20 --tpap\n"
    "  otelpower sim --fresh                   new addresses instead of the last run's\n"
    "  otelpower sim --shelly pro-4pm          a Shelly Pro 4PM beside the plugs\n"
    "environment: KASA_USERNAME, KASA_PASSWORD (the account the emulated plugs accept),"
    " SHELLY_PASSWORD (the Shelly devices' admin password; unset: no authentication)\n",
)
