"""Turn the ``tapo`` client's JSON answers into protocol-neutral readings (pure, no I/O).

Only the JSON calls (``get_device_info_json``, ``get_child_device_list_json``) and the small
energy results are read: the client's typed device info is strict and fails on real dumps.
The client never asks for ``get_emeter_data``, so TPAP plugs report no voltage or current.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from otelpower.config import normalize_mac
from otelpower.core import plausible
from otelpower.core.model import Reading
from otelpower.core.quantities import (
    ENERGY_MONTH,
    ENERGY_TODAY,
    ENERGY_TOTAL,
    POWER,
    RELAY_ON,
    RSSI,
)

TRANSPORT = "TPAP"
STRIP_MODELS = ("P300", "P304", "P306", "P316")


def is_strip(model: str) -> bool:
    return model.upper().startswith(STRIP_MODELS)


def device_info(info: Mapping[str, Any]) -> dict[str, str]:
    """model ("P110"), firmware ("1.4.6", the build dropped as python-kasa does), transport,
    alias (the name from the Tapo app)."""
    firmware = str(info.get("fw_ver") or "").split(" ", 1)[0]
    return {
        "model": str(info.get("model") or ""),
        "firmware": firmware,
        "transport": TRANSPORT,
        "alias": nickname(info.get("nickname")),
    }


def nickname(value: Any) -> str:
    """The app's name for the plug: SMART devices send it base64-encoded."""
    text = str(value or "")
    try:
        return base64.b64decode(text, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        return text.strip()


def device_mac(info: Mapping[str, Any]) -> str | None:
    try:
        return normalize_mac(str(info["mac"]))
    except (KeyError, ValueError):
        return None


def energy(usage: Mapping[str, Any] | None, current_power_w: Any = None) -> dict[str, Any]:
    """Values from ``get_energy_usage`` (power in mW, energies in Wh) and, where it gave no
    power, ``get_current_power`` (whole watts)."""
    values: dict[str, Any] = {}
    usage = usage or {}
    milliwatts = usage.get("current_power")
    if milliwatts is not None:
        values[POWER.key] = _scaled(milliwatts, 1000)
    elif current_power_w is not None:
        values[POWER.key] = current_power_w
    for key, field in ((ENERGY_TODAY.key, "today_energy"), (ENERGY_MONTH.key, "month_energy")):
        if usage.get(field) is not None:
            values[key] = _scaled(usage[field], 1000)
    if ENERGY_MONTH.key in values:  # the counter: resets at the plug's month start
        values[ENERGY_TOTAL.key] = values[ENERGY_MONTH.key]
    return values


def _scaled(value: Any, divisor: float) -> Any:
    """value / divisor for numbers; anything else as is, for plausible to drop and count."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / divisor
    return value


def _relay(info: Mapping[str, Any]) -> Any:
    on = info.get("device_on")
    return float(on) if isinstance(on, bool) else on


def plug_reading(info: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[Reading, ...]:
    raw = {**values, RELAY_ON.key: _relay(info), RSSI.key: info.get("rssi")}
    return (plausible.reading(raw),)


def outlets(children: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A strip's outlets from ``get_child_device_list_json``, in position order."""
    listed = [c for c in children.get("child_device_list") or [] if isinstance(c, Mapping)]
    return sorted(listed, key=lambda c: c.get("position") or 0)


def strip_readings(
    info: Mapping[str, Any],
    children: list[Mapping[str, Any]],
    values: Mapping[str, Mapping[str, Any]],
) -> tuple[Reading, ...]:
    """The strip's own RSSI, then one reading per outlet (numbered from 1, as on python-kasa)."""
    per_outlet = [
        plausible.reading(
            {**values.get(str(c.get("device_id")), {}), RELAY_ON.key: _relay(c)},
            outlet=str(n),
        )
        for n, c in enumerate(children, start=1)
    ]
    return (plausible.reading({RSSI.key: info.get("rssi")}), *per_outlet)
