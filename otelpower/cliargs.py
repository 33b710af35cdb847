"""Argument types for the command line: each rejects a bad value with one line naming it."""

from __future__ import annotations

import argparse
import math
import re

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RELATIVE = re.compile(r"^-\d+(\.\d+)?[smhdw]$")


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def host_and_port(text: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address."""
    value = text.strip()
    if not value:
        raise argparse.ArgumentTypeError("empty host")
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"{text!r} is not [IPv6] or [IPv6]:PORT")
        return host, _plug_port(rest[1:], text) if rest else None
    if value.count(":") > 1:  # a bare IPv6 address
        return value, None
    host, sep, rest = value.partition(":")
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} has no host")
    return host, _plug_port(rest, text) if sep else None


def _plug_port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{whole!r}: the port must be 1 to 65535")
    return int(text)


def join_relative_times(argv: list[str], options: set[str]) -> list[str]:
    """``--start -1h`` as ``--start=-1h`` (argparse takes ``-1h`` for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv) and _RELATIVE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out
