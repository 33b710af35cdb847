"""What ``otelpower sim`` remembers between runs: its plugs' addresses, ports and MACs.

A config written by one run (``--config-out``, or the YAML it prints) then matches the next
run's plugs. The file is JSON::

    {"version": 1, "block": "127.A.B",
     "plugs": [{"host": "127.A.B.1", "port": 41234, "mac": "48:22:54:AA:BB:01"}, ...]}

Plug *n* of a run takes entry *n*; plugs past the list get new addresses in the same block.
A file that cannot be read or makes no sense is reported (file and reason) and replaced.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otelpower.config import normalize_mac

VERSION = 1
_BLOCK = re.compile(r"127\.(\d{1,3})\.(\d{1,3})")


class StateError(ValueError):
    """The state file is unreadable or not a sim state; the message names the file."""


@dataclass
class SavedPlug:
    host: str
    port: int
    mac: str


@dataclass
class SimState:
    block: str  # "127.A.B"
    plugs: list[SavedPlug] = field(default_factory=list)


def default_path(config_out: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """Beside ``--config-out`` (``demo.yaml`` -> ``demo.yaml.sim-state.json``): the state
    belongs to the config it keeps valid; without one, ``$XDG_STATE_HOME/otelpower/sim.json``
    (``~/.local/state`` when unset)."""
    if config_out is not None:
        return config_out.with_name(config_out.name + ".sim-state.json")
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "otelpower" / "sim.json"


def _block(value: Any, where: str) -> str:
    m = _BLOCK.fullmatch(value) if isinstance(value, str) else None
    if m is None or not (1 <= int(m[1]) <= 254 and int(m[2]) <= 255):
        raise StateError(f"{where}: 'block' must look like 127.A.B, got {value!r}")
    return value


def _plug(raw: Any, block: str, where: str) -> SavedPlug:
    if not isinstance(raw, dict):
        raise StateError(f"{where}: must be an object with host, port and mac")
    host, port, mac = raw.get("host"), raw.get("port"), raw.get("mac")
    if not isinstance(host, str) or not re.fullmatch(re.escape(block) + r"\.\d{1,3}", host):
        raise StateError(f"{where}.host: must be an address in {block}.0/24, got {host!r}")
    if not 1 <= int(host.rsplit(".", 1)[1]) <= 254:
        raise StateError(f"{where}.host: {host!r} is not a plug address")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise StateError(f"{where}.port: must be a port number 1-65535, got {port!r}")
    try:
        mac = normalize_mac(str(mac)) if isinstance(mac, str) else None
    except ValueError:
        mac = None
    if mac is None:
        raise StateError(f"{where}.mac: must be a MAC address, got {raw.get('mac')!r}")
    return SavedPlug(host, port, mac)


def load(path: Path) -> SimState | None:
    """The state in ``path``; None when there is none yet. Raises StateError naming the file
    and the reason when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: cannot read it ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise StateError(f"{path}: not an otelpower sim state (version {VERSION})")
    block = _block(data.get("block"), str(path))
    plugs = data.get("plugs", [])
    if not isinstance(plugs, list):
        raise StateError(f"{path}: 'plugs' must be a list")
    saved = [_plug(p, block, f"{path}: plugs[{i}]") for i, p in enumerate(plugs)]
    hosts = [p.host for p in saved]
    if len(set(hosts)) != len(hosts):
        raise StateError(f"{path}: 'plugs' lists an address twice")
    return SimState(block, saved)


def save(path: Path, state: SimState) -> None:
    """Write ``state`` atomically (a half-written file is never left behind)."""
    data = {
        "version": VERSION,
        "block": state.block,
        "plugs": [{"host": p.host, "port": p.port, "mac": p.mac} for p in state.plugs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
