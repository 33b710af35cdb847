"""Device profiles: python-kasa ``dump_devinfo`` JSON dumps, validated and classified."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from otelpower.config import normalize_mac

Family = Literal["smart", "iot"]
TRANSPORTS = ("KLAP v2", "KLAP v1", "AES", "XOR", "TPAP")


@dataclass(frozen=True)
class ChildProfile:
    """One outlet of a strip, as found in the dump."""

    index: int
    alias: str | None  # None when the dump masked it
    dump_id: str  # id as written in the dump (often scrubbed)
    on: bool
    methods: dict[str, Any] = field(default_factory=dict)  # SMART: per-child method replies


@dataclass(frozen=True)
class Profile:
    """A validated device dump and what was derived from it."""

    path: Path
    data: dict[str, Any]
    family: Family
    model: str  # e.g. "P110(EU)", "HS300(US)"
    device_type: str  # e.g. "SMART.TAPOPLUG", "IOT.SMARTPLUGSWITCH"
    transport: str  # one of TRANSPORTS
    login_version: int | None  # discovery "lv"
    mac: str | None  # normalised MAC from the dump (usually masked)
    alias: str | None  # None when masked
    children: tuple[ChildProfile, ...]
    discovery: dict[str, Any] | None  # discovery "result" body, if the dump has one

    @property
    def model_base(self) -> str:
        """Model without the region suffix: "P110"."""
        return self.model.partition("(")[0]

    @property
    def us(self) -> bool:
        """True for 120 V markets."""
        return any(tag in self.model for tag in ("(US)", "(CA)", "(JP)", "(TW)"))

    @property
    def sysinfo(self) -> dict[str, Any]:
        """IOT ``system.get_sysinfo`` (empty for SMART)."""
        return self.data.get("system", {}).get("get_sysinfo", {})

    @property
    def device_info(self) -> dict[str, Any]:
        """SMART ``get_device_info`` (empty for IOT)."""
        return self.data.get("get_device_info", {})

    @property
    def components(self) -> dict[str, int]:
        """SMART component name -> version."""
        return components_of(self.data)


def components_of(data: dict[str, Any]) -> dict[str, int]:
    """SMART component name -> version, from a dump or a child's method table."""
    comps = data.get("component_nego", {}).get("component_list", [])
    return {str(c["id"]): int(c["ver_code"]) for c in comps}


def _masked(value: Any) -> bool:
    text = str(value or "")
    return not text or "MASKED" in text or text.startswith("I01BU0tFRF")


def _disco_result(data: dict[str, Any]) -> dict[str, Any] | None:
    disco = data.get("discovery_result")
    if disco is None:
        return None
    if not isinstance(disco, dict):
        raise ValueError("discovery_result is not an object")
    return disco.get("result", disco)


def load_profile(path: Path | str) -> Profile:
    """Load and classify a dump; raise ValueError naming the file on any problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as ex:
        raise ValueError(f"profile {path}: cannot read JSON: {ex}") from ex
    if not isinstance(data, dict):
        raise ValueError(f"profile {path}: top level is not a JSON object")
    try:
        return _classify(path, data)
    except (KeyError, TypeError, ValueError, AttributeError) as ex:
        raise ValueError(f"profile {path}: {ex}") from ex


def _classify(path: Path, data: dict[str, Any]) -> Profile:
    disco = _disco_result(data)
    schm = (disco or {}).get("mgt_encrypt_schm") or {}
    encrypt = schm.get("encrypt_type")
    lv = schm.get("lv")
    if "get_device_info" in data:
        family: Family = "smart"
        info = data["get_device_info"]
        if not isinstance(info, dict) or ("device_on" not in info and "type" not in info):
            raise ValueError("get_device_info lacks device_on/type")
        if "component_list" not in data.get("component_nego", {}):
            raise ValueError("SMART dump lacks component_nego.component_list")
        model = (disco or {}).get("device_model") or info.get("model")
        device_type = info.get("type") or (disco or {}).get("device_type")
        transport = {"KLAP": "KLAP v2", "AES": "AES", "TPAP": "TPAP", None: "KLAP v2"}.get(encrypt)
        raw_mac = info.get("mac")
        alias = info.get("nickname")
        children = _smart_children(data)
    elif "get_sysinfo" in data.get("system", {}):
        family = "iot"
        info = data["system"]["get_sysinfo"]
        model = info.get("model")
        device_type = info.get("mic_type") or info.get("type")
        if encrypt is None or encrypt == "XOR":
            transport = "XOR"
        elif encrypt == "KLAP":
            transport = "KLAP v2" if (lv or 0) >= 2 else "KLAP v1"
        else:
            transport = None
        raw_mac = info.get("mac") or info.get("mic_mac")
        alias = info.get("alias")
        children = tuple(
            ChildProfile(
                index=i,
                alias=None if _masked(c.get("alias")) else c.get("alias"),
                dump_id=str(c.get("id", i)),
                on=bool(c.get("state", 1)),
            )
            for i, c in enumerate(info.get("children", []))
        )
        if "get_realtime" not in data.get("emeter", {}):
            raise ValueError("IOT dump lacks emeter.get_realtime (no energy meter)")
    else:
        raise ValueError("neither SMART get_device_info nor IOT system.get_sysinfo found")
    if transport is None:
        raise ValueError(f"unsupported encrypt_type {encrypt!r} for a {family} device")
    if not model or not device_type:
        raise ValueError("cannot determine model / device type")
    if family == "smart" and "energy_monitoring" not in components_of(data) and not children:
        raise ValueError("SMART dump has no energy_monitoring component")
    mac = None
    if raw_mac:
        try:
            mac = normalize_mac(str(raw_mac))
        except ValueError:
            mac = None
    if alias and family == "smart":
        alias = _b64_text(alias)
    return Profile(
        path=path,
        data=data,
        family=family,
        model=str(model),
        device_type=str(device_type),
        transport=transport,
        login_version=lv,
        mac=mac,
        alias=None if _masked(alias) else alias,
        children=children,
        discovery=disco,
    )


def _b64_text(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value


def _smart_children(data: dict[str, Any]) -> tuple[ChildProfile, ...]:
    listing = data.get("get_child_device_list", {}).get("child_device_list", [])
    per_child = data.get("child_devices", {})
    out = []
    for i, c in enumerate(listing):
        dump_id = str(c.get("device_id", i))
        nick = c.get("nickname")
        alias = _b64_text(nick) if nick else None
        out.append(
            ChildProfile(
                index=i,
                alias=None if _masked(alias) or _masked(nick) else alias,
                dump_id=dump_id,
                on=bool(c.get("device_on", True)),
                methods=dict(per_child.get(dump_id, {})),
            )
        )
    return tuple(out)
