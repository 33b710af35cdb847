"""The one configuration file: every plug by MAC, its place in the house, and the settings.

Validation collects every problem before failing, each named by file, key path and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otelpower.sharding import Shard
from otelpower.yamlsource import ConfigError, Path_, YamlDoc, load_yaml

__all__ = [
    "Config",
    "ConfigError",
    "CredentialsConfig",
    "DeviceConfig",
    "load_config",
    "normalize_mac",
]

_MAC_HEX = re.compile(r"^[0-9a-f]{12}$")
_MAC_SEPARATED = re.compile(r"^[0-9a-f]{2}([:-])([0-9a-f]{2}\1){4}[0-9a-f]{2}$")
_LABEL = re.compile(r"^[^\x00-\x1f]{1,128}$")


def normalize_mac(value: str) -> str:
    """``48-22-54-00-00-01`` / ``482254000001`` / any case -> ``48:22:54:00:00:01``."""
    text = value.strip().lower()
    if _MAC_SEPARATED.match(text):
        text = text.replace(":", "").replace("-", "")
    if not _MAC_HEX.match(text):
        raise ValueError(f"not a MAC address: {value!r} (expected e.g. 48:22:54:00:00:01)")
    return ":".join(text[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class NativeTarget:
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class DeviceConfig:
    device_id: str
    room: str
    shelf: str
    device: str
    native: NativeTarget | None = None
    matter_node_id: int | None = None

    def labels(self, house: str) -> dict[str, str]:
        return {
            "house": house,
            "room": self.room,
            "shelf": self.shelf,
            "device": self.device,
            "device_id": self.device_id,
        }


@dataclass(frozen=True)
class CredentialsConfig:
    """Plug account credentials. ``repr`` never shows the password."""

    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def present(self) -> bool:
        return bool(self.username or self.password)


@dataclass(frozen=True)
class Config:
    source: str
    house: str
    devices: tuple[DeviceConfig, ...]
    instance_id: str | None = None
    poll_interval: float = 15.0
    poll_timeout: float = 10.0
    concurrency: int = 64
    backoff_max: float = 300.0
    discovery_enabled: bool = True
    discovery_interval: float = 300.0
    discovery_targets: tuple[str, ...] = ("255.255.255.255",)
    prometheus_host: str = "0.0.0.0"
    prometheus_port: int = 9464
    matter_url: str | None = None
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    shard: Shard | None = None  # set by ``otelpower run --shard i/N``

    def service_instance_id(self, protocol: str) -> str:
        """Stable across restarts: configured, else derived from house and protocol.

        Each shard is its own instance, so replicas never write the same series.
        """
        base = self.instance_id or f"{self.house}-{protocol}"
        if self.shard is None or self.shard.count == 1:
            return base
        return f"{base}-shard{self.shard.index}of{self.shard.count}"

    def owns(self, device_id: str) -> bool:
        """Whether this process reads ``device_id`` (always, unless sharded)."""
        return self.shard is None or self.shard.owns(device_id)

    def owned_devices(self) -> tuple[DeviceConfig, ...]:
        return tuple(d for d in self.devices if self.owns(d.device_id))

    def device(self, device_id: str) -> DeviceConfig | None:
        return next((d for d in self.devices if d.device_id == device_id), None)


_TOP_KEYS = {
    "house",
    "instance_id",
    "devices",
    "poll",
    "discovery",
    "prometheus",
    "matter",
    "credentials",
}
_DEVICE_KEYS = {"device_id", "room", "shelf", "device", "native", "matter"}


class _Reader:
    """Typed getters over a YamlDoc that record problems instead of raising."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc

    def mapping(self, value: Any, path: Path_, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.doc.problem(path, f"must be a mapping, got {_kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.doc.problem((*path, key), f"unknown key (allowed: {hint})")
        return value

    def text(self, m: dict[str, Any], key: str, path: Path_, *, required: bool = False) -> Any:
        value = m.get(key)
        if value is None:
            if required:
                self.doc.problem((*path, key), "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.doc.problem((*path, key), f"must be a string, got {_kind(value)}")
            return None
        value = str(value)
        if not _LABEL.match(value):
            self.doc.problem((*path, key), "must be 1-128 printable characters")
            return None
        return value

    def _from_env(self, value: Any, path: Path_, kind: type) -> Any:
        """Numbers that came from ${VAR} arrive as text; read them as numbers."""
        if isinstance(value, str) and path in self.doc.from_env:
            try:
                return kind(value)
            except ValueError:
                return value
        return value

    def number(
        self, m: dict[str, Any], key: str, path: Path_, default: float, lo: float, hi: float
    ) -> float:
        value = self._from_env(m.get(key, default), (*path, key), float)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.doc.problem((*path, key), f"must be a number, got {_kind(value)}")
            return default
        if not lo <= value <= hi:
            self.doc.problem((*path, key), f"must be between {lo:g} and {hi:g}, got {value:g}")
            return default
        return float(value)

    def integer(
        self, m: dict[str, Any], key: str, path: Path_, default: int | None, lo: int, hi: int
    ) -> int | None:
        value = self._from_env(m.get(key, default), (*path, key), int)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.doc.problem((*path, key), f"must be an integer, got {_kind(value)}")
            return default
        if not lo <= value <= hi:
            self.doc.problem((*path, key), f"must be between {lo} and {hi}, got {value}")
            return default
        return value

    def flag(self, m: dict[str, Any], key: str, path: Path_, default: bool) -> bool:
        value = m.get(key, default)
        if not isinstance(value, bool):
            self.doc.problem((*path, key), f"must be true or false, got {_kind(value)}")
            return default
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", bool: "a boolean", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _parse_device(r: _Reader, raw: Any, path: Path_) -> DeviceConfig | None:
    if not isinstance(raw, dict):
        r.doc.problem(path, f"each device must be a mapping, got {_kind(raw)}")
        return None
    m = r.mapping(raw, path, _DEVICE_KEYS)
    device_id = None
    raw_id = m.get("device_id")
    if raw_id is None:
        r.doc.problem((*path, "device_id"), "is required (the plug's MAC address)")
    else:
        try:
            device_id = normalize_mac(r.doc.raw.get((*path, "device_id"), str(raw_id)))
        except ValueError as exc:
            r.doc.problem((*path, "device_id"), str(exc))
    room = r.text(m, "room", path, required=True)
    shelf = r.text(m, "shelf", path, required=True)
    name = r.text(m, "device", path, required=True)

    native = None
    if "native" in m:
        npath = (*path, "native")
        nm = r.mapping(m["native"], npath, {"host", "port"})
        native = NativeTarget(
            host=r.text(nm, "host", npath),
            port=r.integer(nm, "port", npath, None, 1, 65535),
        )
    node_id = None
    if "matter" in m:
        mpath = (*path, "matter")
        mm = r.mapping(m["matter"], mpath, {"node_id"})
        node_id = r.integer(mm, "node_id", mpath, None, 1, 2**64 - 1)
    if device_id is None or room is None or shelf is None or name is None:
        return None
    return DeviceConfig(device_id, room, shelf, name, native, node_id)


def _parse_credentials(r: _Reader, raw: Any, environ: dict[str, str]) -> CredentialsConfig:
    """Credentials from ${VAR} references or mounted secret files; never literal passwords."""
    path: Path_ = ("credentials",)
    keys = {"username", "password", "username_file", "password_file"}
    m = r.mapping(raw, path, keys)
    if "password" in m and (*path, "password") not in r.doc.from_env:
        r.doc.problem(
            (*path, "password"),
            "a literal password is not allowed in the file; use ${KASA_PASSWORD} or password_file",
        )
    values: dict[str, str] = {}
    for name in ("username", "password"):
        file_key = f"{name}_file"
        if m.get(file_key) is not None:  # a null *_file counts as absent
            file_path = r.text(m, file_key, path)
            if file_path is not None:
                try:
                    values[name] = Path(file_path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    r.doc.problem((*path, file_key), f"cannot read secret file: {exc.strerror}")
        elif name in m and m[name] is not None:
            values[name] = str(m[name])
        else:
            values[name] = environ.get(f"KASA_{name.upper()}", "")
    # a *_file of the wrong type is already a problem, reported by raise_if_problems
    return CredentialsConfig(values.get("username", ""), values.get("password", ""))


def _ws_url(r: _Reader, m: dict[str, Any]) -> str | None:
    url = r.text(m, "url", ("matter",))
    if url is not None and not url.startswith(("ws://", "wss://")):
        r.doc.problem(("matter", "url"), f"must be a ws:// or wss:// URL, got {url!r}")
        return None
    return url


def parse_config(doc: YamlDoc, environ: dict[str, str]) -> Config:
    r = _Reader(doc)
    if doc.data is None:
        doc.problem((), "the file is empty; expected at least 'house' and 'devices'")
        doc.raise_if_problems()
    top = r.mapping(doc.data, (), _TOP_KEYS)
    if not top and not doc.problems:
        doc.problem((), "expected a mapping with 'house' and 'devices'")
    house = r.text(top, "house", (), required=True) or ""

    devices: list[DeviceConfig] = []
    raw_devices = top.get("devices")
    if raw_devices is None:
        doc.problem(("devices",), "is required (a list of plugs)")
    elif not isinstance(raw_devices, list):
        doc.problem(("devices",), f"must be a list, got {_kind(raw_devices)}")
    else:
        seen: dict[str, int] = {}
        for i, raw in enumerate(raw_devices):
            dev = _parse_device(r, raw, ("devices", i))
            if dev is None:
                continue
            if dev.device_id in seen:
                doc.problem(
                    ("devices", i, "device_id"),
                    f"{dev.device_id} is already used by devices[{seen[dev.device_id]}]",
                )
                continue
            seen[dev.device_id] = i
            devices.append(dev)

    poll = r.mapping(
        top.get("poll"), ("poll",), {"interval", "timeout", "concurrency", "backoff_max"}
    )
    disc = r.mapping(top.get("discovery"), ("discovery",), {"enabled", "interval", "targets"})
    prom = r.mapping(top.get("prometheus"), ("prometheus",), {"host", "port"})
    matter = r.mapping(top.get("matter"), ("matter",), {"url"})

    targets: tuple[str, ...] = ("255.255.255.255",)
    if "targets" in disc:
        raw_targets = disc["targets"]
        if not isinstance(raw_targets, list) or not all(isinstance(t, str) for t in raw_targets):
            doc.problem(("discovery", "targets"), "must be a list of addresses")
        else:
            targets = tuple(raw_targets)

    interval = r.number(poll, "interval", ("poll",), 15.0, 0.1, 86400)
    timeout = r.number(poll, "timeout", ("poll",), min(10.0, interval), 0.1, 3600)
    config = Config(
        source=doc.source,
        house=house,
        devices=tuple(devices),
        instance_id=r.text(top, "instance_id", ()),
        poll_interval=interval,
        poll_timeout=timeout,
        concurrency=r.integer(poll, "concurrency", ("poll",), 64, 1, 100_000) or 64,
        backoff_max=r.number(poll, "backoff_max", ("poll",), 300.0, 1, 86400),
        discovery_enabled=r.flag(disc, "enabled", ("discovery",), True),
        discovery_interval=r.number(disc, "interval", ("discovery",), 300.0, 1, 86400),
        discovery_targets=targets,
        prometheus_host=r.text(prom, "host", ("prometheus",)) or "0.0.0.0",
        prometheus_port=r.integer(prom, "port", ("prometheus",), 9464, 0, 65535) or 0,
        matter_url=_ws_url(r, matter),
        credentials=_parse_credentials(r, top.get("credentials"), environ),
    )
    doc.raise_if_problems()
    return config


def load_config(path: Path | str, environ: dict[str, str] | None = None) -> Config:
    """Load and validate ``path``; raises ConfigError listing every problem found."""
    env = dict(os.environ if environ is None else environ)
    return parse_config(load_yaml(Path(path), env), env)
