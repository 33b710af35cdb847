"""Matter attribute values (as the server's WebSocket API sends them) to readings. Pure.

Attributes are kept raw, keyed by ``"endpoint/cluster/attribute"`` in decimal; structs are
dicts keyed by field tag as a string, octet strings are base64, null is None.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otelpower.config import normalize_mac
from otelpower.core import plausible
from otelpower.core.model import Reading
from otelpower.core.quantities import (
    APPARENT_POWER,
    CURRENT,
    ENERGY_EXPORTED,
    ENERGY_TOTAL,
    FREQUENCY,
    POWER,
    POWER_FACTOR,
    REACTIVE_POWER,
    RELAY_ON,
    VOLTAGE,
)

Attributes = Mapping[str, Any]

ON_OFF = 0x0006
DESCRIPTOR = 0x001D
BASIC_INFORMATION = 0x0028
GENERAL_DIAGNOSTICS = 0x0033
ELECTRICAL_POWER = 0x0090
ELECTRICAL_ENERGY = 0x0091
POWER_TOPOLOGY = 0x009C

_PARTS_LIST = 3
_AVAILABLE_ENDPOINTS = 0
_NETWORK_INTERFACES = 0
_HARDWARE_ADDRESS = "4"
_ENERGY = "0"  # EnergyMeasurementStruct.energy, mWh

# ElectricalPowerMeasurement attribute -> (quantity key, scale to our unit)
_POWER_ATTRIBUTES: dict[int, tuple[str, float]] = {
    8: (POWER.key, 1e-3),  # ActivePower mW
    4: (VOLTAGE.key, 1e-3),  # Voltage mV
    5: (CURRENT.key, 1e-3),  # ActiveCurrent mA
    10: (APPARENT_POWER.key, 1e-3),  # ApparentPower mVA
    9: (REACTIVE_POWER.key, 1e-3),  # ReactivePower mVAR
    17: (POWER_FACTOR.key, 1e-4),  # PowerFactor in 1/100 of a percent
    14: (FREQUENCY.key, 1e-3),  # Frequency mHz
}
# used only when the primary attribute is absent or null (Tapo P110M sends RMS values)
_FALLBACKS: dict[str, tuple[int, float]] = {
    VOLTAGE.key: (11, 1e-3),  # RMSVoltage mV
    CURRENT.key: (12, 1e-3),  # RMSCurrent mA
    POWER.key: (13, 1e-3),  # RMSPower mW
}
_ENERGY_ATTRIBUTES: dict[int, str] = {1: ENERGY_TOTAL.key, 2: ENERGY_EXPORTED.key}

# BasicInformation attribute -> info label
_INFO: dict[int, str] = {1: "vendor", 3: "product", 15: "serial", 10: "firmware"}

#: what the reader keeps fresh by reading on a timer (per endpoint that has the cluster)
FRESH_ATTRIBUTES: dict[int, tuple[int, ...]] = {
    ELECTRICAL_POWER: (*_POWER_ATTRIBUTES, *(a for a, _ in _FALLBACKS.values())),
    ELECTRICAL_ENERGY: tuple(_ENERGY_ATTRIBUTES),
    ON_OFF: (0,),
}


def path(endpoint: int, cluster: int, attribute: int) -> str:
    return f"{endpoint}/{cluster}/{attribute}"


def endpoints_with(attrs: Attributes, cluster: int) -> list[int]:
    """Endpoints that carry ``cluster`` (any of its attributes), in order."""
    found = set()
    for key in attrs:
        parts = key.split("/")
        if len(parts) == 3 and parts[1] == str(cluster):
            found.add(int(parts[0]))
    return sorted(found)


def fresh_paths(attrs: Attributes) -> list[str]:
    """Concrete attribute paths worth re-reading for this node's layout."""
    out = []
    for cluster, attributes in FRESH_ATTRIBUTES.items():
        for endpoint in endpoints_with(attrs, cluster):
            if cluster == ON_OFF and endpoint == 0:
                continue
            out += [
                path(endpoint, cluster, a)
                for a in attributes
                if path(endpoint, cluster, a) in attrs
            ]
    return out


def has_energy(attrs: Attributes) -> bool:
    return bool(endpoints_with(attrs, ELECTRICAL_POWER) or endpoints_with(attrs, ELECTRICAL_ENERGY))


def hardware_addresses(attrs: Attributes) -> list[str]:
    """MACs from GeneralDiagnostics NetworkInterfaces (0/51/0); non-MAC (EUI-64) skipped."""
    interfaces = attrs.get(path(0, GENERAL_DIAGNOSTICS, _NETWORK_INTERFACES)) or []
    macs = []
    for iface in interfaces if isinstance(interfaces, list) else []:
        raw = iface.get(_HARDWARE_ADDRESS) if isinstance(iface, dict) else None
        try:
            data = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, ValueError):
            continue
        if len(data) == 6 and any(data):
            macs.append(normalize_mac(data.hex()))
    return macs


def vendor_id(attrs: Attributes) -> int | None:
    """The node's BasicInformation VendorID (a number the CSA assigns to each maker)."""
    value = attrs.get(path(0, BASIC_INFORMATION, 2))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def device_info(attrs: Attributes) -> dict[str, str]:
    info = {}
    for attribute, label in _INFO.items():
        value = attrs.get(path(0, BASIC_INFORMATION, attribute))
        info[label] = "" if value is None else str(value)
    return info


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # null (absent), or not a number at all
    return float(value)


def _meter_values(attrs: Attributes, endpoint: int) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for attribute, (key, scale) in _POWER_ATTRIBUTES.items():
        raw = _number(attrs.get(path(endpoint, ELECTRICAL_POWER, attribute)))
        values[key] = None if raw is None else raw * scale
    for key, (attribute, scale) in _FALLBACKS.items():
        if values.get(key) is None:
            raw = _number(attrs.get(path(endpoint, ELECTRICAL_POWER, attribute)))
            values[key] = None if raw is None else raw * scale
    for attribute, key in _ENERGY_ATTRIBUTES.items():
        struct = attrs.get(path(endpoint, ELECTRICAL_ENERGY, attribute))
        mwh = _number(struct.get(_ENERGY)) if isinstance(struct, dict) else None
        values[key] = None if mwh is None else mwh / 1e6  # mWh -> kWh
    return values


def _int_list(value: Any) -> list[int]:
    return [v for v in value if isinstance(v, int)] if isinstance(value, list) else []


def _relay_endpoint(attrs: Attributes, meter: int, switches: list[int]) -> int | None:
    """The OnOff endpoint a meter measures: itself, its PowerTopology set, or its tree."""
    candidates = [
        meter,
        *_int_list(attrs.get(path(meter, POWER_TOPOLOGY, _AVAILABLE_ENDPOINTS))),
        *_int_list(attrs.get(path(meter, DESCRIPTOR, _PARTS_LIST))),
    ]
    candidates += [
        s for s in switches if meter in _int_list(attrs.get(path(s, DESCRIPTOR, _PARTS_LIST)))
    ]
    return next((c for c in candidates if c in switches), None)


def _relay(attrs: Attributes, endpoint: int | None) -> float | None:
    value = attrs.get(path(endpoint, ON_OFF, 0)) if endpoint is not None else None
    return float(value) if isinstance(value, bool) else None


@dataclass(frozen=True)
class Layout:
    """Which endpoints meter, and which relay belongs to each meter."""

    meters: tuple[int, ...]
    relays: tuple[int | None, ...]


def layout(attrs: Attributes) -> Layout:
    meters = sorted(
        set(endpoints_with(attrs, ELECTRICAL_POWER)) | set(endpoints_with(attrs, ELECTRICAL_ENERGY))
    )
    switches = [e for e in endpoints_with(attrs, ON_OFF) if e != 0]
    relays = [_relay_endpoint(attrs, m, switches) for m in meters]
    if len(meters) == 1 and relays[0] is None and len(switches) == 1:
        relays = [switches[0]]  # a plain plug: one meter, one relay
    return Layout(tuple(meters), tuple(relays))


def readings(attrs: Attributes) -> tuple[Reading, ...]:
    """One reading per meter endpoint; several meters are outlets ``"1"``, ``"2"``, ..."""
    lay = layout(attrs)
    several = len(lay.meters) > 1
    out = []
    for index, (meter, relay) in enumerate(zip(lay.meters, lay.relays, strict=True), start=1):
        values = {**_meter_values(attrs, meter), RELAY_ON.key: _relay(attrs, relay)}
        out.append(plausible.reading(values, outlet=str(index) if several else None))
    return tuple(out)


def merge(attrs: dict[str, Any], updates: Iterable[tuple[str, Any]]) -> None:
    for key, value in updates:
        attrs[key] = value
