"""The one configuration file: every plug by MAC, its place in the house, and the settings.

The core keys (house, devices, poll, prometheus) are parsed here; each reader's own sections
(per device and at the top level) by the parsers its ReaderSpec declares. Validation
collects every problem before failing, each named by file, key path and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from otelpower.config.fields import Fields, SectionParser, kind
from otelpower.config.sharding import Shard
from otelpower.config.yamlsource import ConfigError, Path_, YamlDoc, load_yaml
from otelpower.core.quantities import DEFAULT_VENDOR, OTHER_VENDOR

__all__ = [
    "UNASSIGNED",
    "Config",
    "ConfigError",
    "DeviceConfig",
    "ReaderKeys",
    "load_config",
    "normalize_mac",
]


class ReaderKeys(Protocol):
    """What the config needs of a reader (a ``ReaderSpec``; config/ imports no reader)."""

    @property
    def name(self) -> str: ...
    @property
    def vendor(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def any_vendor(self) -> bool: ...
    @property
    def sections(self) -> Mapping[str, SectionParser]: ...
    @property
    def device_sections(self) -> Mapping[str, SectionParser]: ...


_MAC_HEX = re.compile(r"^[0-9a-f]{12}$")
_MAC_SEPARATED = re.compile(r"^[0-9a-f]{2}([:-])([0-9a-f]{2}\1){4}[0-9a-f]{2}$")


def normalize_mac(value: str) -> str:
    """``48-22-54-00-00-01`` / ``482254000001`` / any case -> ``48:22:54:00:00:01``."""
    text = value.strip().lower()
    if _MAC_SEPARATED.match(text):
        text = text.replace(":", "").replace("-", "")
    if not _MAC_HEX.match(text):
        raise ValueError(f"not a MAC address: {value!r} (expected e.g. 48:22:54:00:00:01)")
    if text in ("000000000000", "ffffffffffff"):
        raise ValueError(f"{value!r} is not a plug's MAC address (all zeros or broadcast)")
    return ":".join(text[i : i + 2] for i in range(0, 12, 2))


UNASSIGNED = "unassigned"  # room and shelf of a plug the file does not list


@dataclass(frozen=True)
class DeviceConfig:
    device_id: str
    room: str
    shelf: str
    device: str  # "" when the file leaves it out: the plug's own name (alias) is used
    #: per-device reader sections, by key, as their ReaderSpec parsed them
    sections: Mapping[str, Any] = field(default_factory=dict)
    #: the readers that read this plug (``protocols:``, by reader name or protocol label);
    #: None: every reader run that reads its maker's devices
    protocols: frozenset[str] | None = None
    vendor: str = DEFAULT_VENDOR  # its maker (``vendor:``, or implied by a maker's section)

    def reads(self, reader: ReaderKeys) -> bool:
        """Whether ``reader`` reads this plug: a maker's reader reads only that maker's
        devices, a standard's reader any maker's; ``protocols:`` narrows it further."""
        if not reader.any_vendor and reader.vendor != self.vendor:
            return False
        return self.protocols is None or bool({reader.name, reader.protocol} & self.protocols)

    def section(self, name: str) -> Any:
        """The parsed section ``name`` of this device, or None when it has none."""
        return self.sections.get(name)

    def name(self, alias: str = "") -> str:
        """The ``device`` label: the file's name, else the plug's alias, else its MAC."""
        return self.device or alias.strip() or self.device_id

    def labels(self, house: str, alias: str = "") -> dict[str, str]:
        return {
            "house": house,
            "room": self.room,
            "shelf": self.shelf,
            "device": self.name(alias),
            "device_id": self.device_id,
        }

    @classmethod
    def unlisted(cls, device_id: str, vendor: str = DEFAULT_VENDOR) -> DeviceConfig:
        """A plug found on the network that the file does not list (adopted)."""
        return cls(device_id, UNASSIGNED, UNASSIGNED, "", vendor=vendor)


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
    prometheus_host: str = "0.0.0.0"
    prometheus_port: int = 9464
    #: TLS and basic auth of the endpoint: a web config file (exporter-toolkit format)
    prometheus_web_config: str | None = None
    #: where /metrics is served: "auto" (a process of its own past a hundred devices),
    #: "separate" (always one of its own) or "inline" (a thread of this process)
    prometheus_process: str = "auto"
    #: top-level reader sections, by key, as their ReaderSpec parsed them
    sections: Mapping[str, Any] = field(default_factory=dict)
    shard: Shard | None = None  # set by ``otelpower run --shard i/N``
    #: whether the file has a ``devices:`` list (without one, readers export what they find)
    devices_listed: bool = True
    #: how many devices the file lists (``devices`` is this shard's part once sharded)
    listed: int | None = None

    def sharded(self, shard: Shard) -> Config:
        """This shard's part: only the devices it owns are kept (a replica of a 20,000-plug
        file holds its 1/N, not the whole list); ``listed`` keeps the file's count."""
        owned = tuple(d for d in self.devices if shard.owns(d.device_id))
        return replace(self, shard=shard, devices=owned, listed=len(self.devices))

    def section(self, name: str) -> Any:
        """The parsed top-level section ``name`` (its parser's default when absent)."""
        return self.sections.get(name)

    def with_section(self, name: str, value: Any) -> Config:
        return replace(self, sections={**self.sections, name: value})

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

    def owned_devices(self, reader: ReaderKeys | None = None) -> tuple[DeviceConfig, ...]:
        """This process's devices (its shard's); with ``reader``, those that reader reads."""
        return tuple(
            d
            for d in self.devices
            if self.owns(d.device_id) and (reader is None or d.reads(reader))
        )

    def endpoint_process(self) -> bool:
        """Whether /metrics gets a process of its own (prometheus.process): a large fleet
        keeps this process busy enough to delay scrapes; a small one is not worth ~11 MB."""
        if self.prometheus_process == "auto":
            return len(self.owned_devices()) > INLINE_MAX_DEVICES
        return self.prometheus_process == "separate"

    def device(self, device_id: str) -> DeviceConfig | None:
        return next((d for d in self.devices if d.device_id == device_id), None)


DEFAULT_HOUSE = "home"
PROCESS_CHOICES = ("auto", "separate", "inline")
#: prometheus.process auto: up to this many devices (this shard's), /metrics is served inline
INLINE_MAX_DEVICES = 100
NO_FILE = "(no config file)"

_TOP_KEYS = {"house", "instance_id", "devices", "poll", "prometheus"}
_DEVICE_KEYS = {"device_id", "room", "shelf", "device", "protocols", "vendor"}


def _parse_protocols(
    r: Fields, m: dict[str, Any], path: Path_, specs: tuple[ReaderKeys, ...]
) -> frozenset[str] | None:
    """``protocols: [<reader or protocol>, ...]``: which readers read the plug (absent: all
    that read its maker's devices)."""
    if "protocols" not in m:
        return None
    known = list(dict.fromkeys(n for s in specs for n in (s.protocol, s.name)))
    value, where, names = m["protocols"], (*path, "protocols"), ", ".join(known)
    if not isinstance(value, list) or not value:
        got = "an empty list" if value == [] else kind(value)
        r.doc.problem(where, f"must be a non-empty list of protocols ({names}), got {got}")
        return None
    out = set()
    for i, item in enumerate(value):
        if isinstance(item, str) and item in known:
            out.add(item)
        else:
            r.doc.problem((*where, i), f"unknown protocol {item!r}; expected one of {names}")
    for spec in specs:
        for key in spec.device_sections:
            if key in m and out and not {spec.name, spec.protocol} & out:
                r.doc.problem((*path, key), f"is set, but protocols leaves {spec.name} out")
    return frozenset(out)


def _parse_vendor(r: Fields, m: dict[str, Any], path: Path_, specs: tuple[ReaderKeys, ...]) -> str:
    """``vendor:`` (the plug's maker), implied by a maker's own device section,
    default ``tplink``: names its metrics and decides which maker's reader reads it."""
    makers = {key: s.vendor for s in specs if not s.any_vendor for key in s.device_sections}
    implied = {makers[key]: key for key in m if key in makers}
    allowed = list(dict.fromkeys([*(s.vendor for s in specs), OTHER_VENDOR]))
    vendor = r.text(m, "vendor", path)
    if vendor is not None and vendor not in allowed:
        r.doc.problem(
            (*path, "vendor"), f"unknown vendor {vendor!r}; expected one of {', '.join(allowed)}"
        )
        vendor = None
    if len(implied) > 1:
        keys = " and ".join(sorted(implied.values()))
        r.doc.problem(path, f"has {keys}: sections of two makers (one plug has one maker)")
    elif implied and vendor is not None and vendor not in implied:
        (key,) = implied.values()
        r.doc.problem((*path, "vendor"), f"is {vendor!r}, but {key} is another maker's section")
    return vendor or next(iter(implied), DEFAULT_VENDOR)


def _parse_device(
    r: Fields,
    raw: Any,
    path: Path_,
    parsers: Mapping[str, SectionParser],
    specs: tuple[ReaderKeys, ...],
) -> DeviceConfig | None:
    if not isinstance(raw, dict):
        r.doc.problem(path, f"each device must be a mapping, got {kind(raw)}")
        return None
    m = r.mapping(raw, path, _DEVICE_KEYS | set(parsers))
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
    name = r.text(m, "device", path) or ""
    sections = {key: parse(r, m[key], (*path, key)) for key, parse in parsers.items() if key in m}
    reads = _parse_protocols(r, m, path, specs)
    vendor = _parse_vendor(r, m, path, specs)
    if reads and not any(
        (s.any_vendor or s.vendor == vendor) and {s.name, s.protocol} & reads for s in specs
    ):
        r.doc.problem(
            (*path, "protocols"),
            f"no reader it names reads a {vendor!r} plug (vendor: {vendor}); nothing would read it",
        )
    if device_id is None or room is None or shelf is None:
        return None
    return DeviceConfig(device_id, room, shelf, name, sections, reads, vendor)


def _claim(section: Any) -> tuple[tuple[str, ...], str] | None:
    """What a device section says only one device may have (e.g. a plug's address):
    ``(key path inside the section, text)``, from its optional ``claim()``."""
    claim = getattr(section, "claim", None)
    return claim() if callable(claim) else None


def _sections(specs: Iterable[ReaderKeys], kind_: str) -> dict[str, SectionParser]:
    return {key: parse for spec in specs for key, parse in getattr(spec, kind_).items()}


def parse_config(doc: YamlDoc, environ: Mapping[str, str], specs: Iterable[ReaderKeys]) -> Config:
    """Validate ``doc``: the core keys here, each reader's sections by its spec (the
    registry's ``specs()``: config/ imports no reader)."""
    specs = tuple(specs)
    top_parsers, device_parsers = _sections(specs, "sections"), _sections(specs, "device_sections")
    r = Fields(doc, environ)
    if doc.data is None:
        doc.data = {}  # an empty file: every default, plugs found by discovery
    top = r.mapping(doc.data, (), _TOP_KEYS | set(top_parsers))
    house = r.text(top, "house", ()) or DEFAULT_HOUSE

    devices: list[DeviceConfig] = []
    raw_devices = top.get("devices")
    if "devices" not in top:
        pass  # no inventory: the readers export every plug they find
    elif raw_devices is None or raw_devices == []:
        doc.problem(
            ("devices",),
            "is empty: list your plugs, or leave 'devices' out to export every plug found",
        )
    elif not isinstance(raw_devices, list):
        doc.problem(("devices",), f"must be a list, got {kind(raw_devices)}")
    else:
        seen: dict[str, int] = {}
        places: dict[tuple[str, str, str], int] = {}
        claimed: dict[str, int] = {}
        for i, raw in enumerate(raw_devices):
            dev = _parse_device(r, raw, ("devices", i), device_parsers, specs)
            if dev is None:
                continue
            if dev.device_id in seen:
                doc.problem(
                    ("devices", i, "device_id"),
                    f"{dev.device_id} is already used by devices[{seen[dev.device_id]}]",
                )
                continue
            seen[dev.device_id] = i
            place = (dev.room, dev.shelf, dev.device)
            if dev.device and place in places:
                doc.problem(
                    ("devices", i, "device"),
                    f"room {dev.room!r}, shelf {dev.shelf!r}, device {dev.device!r} is already"
                    f" used by devices[{places[place]}] (their series would be mixed up)",
                )
            places.setdefault(place, i)
            for key, section in dev.sections.items():
                if (claim := _claim(section)) is None:
                    continue
                sub, what = claim
                if what in claimed:
                    doc.problem(
                        ("devices", i, key, *sub),
                        f"{what} is already used by devices[{claimed[what]}]"
                        " (two devices cannot be the same plug)",
                    )
                claimed.setdefault(what, i)
            devices.append(dev)

    poll = r.mapping(
        top.get("poll"), ("poll",), {"interval", "timeout", "concurrency", "backoff_max"}
    )
    prom = r.mapping(
        top.get("prometheus"), ("prometheus",), {"host", "port", "web_config", "process"}
    )
    web_config = r.text(prom, "web_config", ("prometheus",))
    if web_config and not Path(web_config).is_absolute() and doc.source != NO_FILE:
        web_config = str(Path(doc.source).parent / web_config)  # next to the config file
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
        prometheus_host=r.text(prom, "host", ("prometheus",)) or "0.0.0.0",
        prometheus_port=r.integer(prom, "port", ("prometheus",), 9464, 0, 65535) or 0,
        prometheus_web_config=web_config,
        prometheus_process=r.choice(prom, "process", ("prometheus",), "auto", PROCESS_CHOICES),
        sections={key: parse(r, top.get(key), (key,)) for key, parse in top_parsers.items()},
        devices_listed="devices" in top,
    )
    doc.raise_if_problems()
    return config


def load_config(
    path: Path | str | None,
    environ: Mapping[str, str] | None = None,
    *,
    specs: Iterable[ReaderKeys],
) -> Config:
    """Load and validate ``path`` (None: no file, every default) with the readers' sections
    (``otelpower.readers.registry.load_config`` passes every registered one); raises
    ConfigError listing every problem found."""
    env = dict(os.environ if environ is None else environ)
    doc = YamlDoc(source=NO_FILE, data=None) if path is None else load_yaml(Path(path), env)
    return parse_config(doc, env, specs)
