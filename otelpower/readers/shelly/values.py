"""A Shelly Gen2+ ``Shelly.GetStatus`` reply as readings (pure functions, no I/O).

Each metering channel is a component ``switch:N`` (relays with a meter: Plus Plug S, Plug S
Gen3, Plus 1PM, Pro 4PM), ``pm1:N`` (meters without a relay: PM Mini) or ``cover:N``-less
devices skip. Units per Shelly's API docs: apower W, voltage V, current A, freq Hz, pf
(-1..1), ``aenergy.total`` and ``ret_aenergy.total`` Wh (kWh here), ``temperature.tC`` °C;
``output`` is the relay. A field the model does not send is absent, never 0; a null is absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from otelpower.core import plausible
from otelpower.core import quantities as q
from otelpower.core.model import Reading

_CHANNEL = re.compile(r"^(switch|pm1):(\d{1,2})$")
#: the most metered channels a device may report (a Pro 4PM has 4): a reply claiming more is
#: a device out of spec, or anything on the LAN answering at its address; the rest is ignored
MAX_CHANNELS = 16
_FIELDS = {
    "apower": q.POWER.key,
    "voltage": q.VOLTAGE.key,
    "current": q.CURRENT.key,
    "freq": q.FREQUENCY.key,
    "pf": q.POWER_FACTOR.key,
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def channels(status: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    """The metering channels of a status, by id (a relay without a meter is no channel)."""
    found: dict[int, Mapping[str, Any]] = {}
    for key, value in status.items():
        m = _CHANNEL.match(key)
        if m and isinstance(value, Mapping) and ("apower" in value or "aenergy" in value):
            ident = int(m.group(2))
            if ident < MAX_CHANNELS:
                found.setdefault(ident, value)  # switch:0 and pm1:0 are one channel
    return sorted(found.items())


def readings(status: Mapping[str, Any]) -> tuple[Reading, ...]:
    """One reading per metering channel: outlets "1", "2", ... on multi-channel devices (as
    the TP-Link strips), none on a single-channel one; RSSI on each."""
    found = channels(status)
    wifi = status.get("wifi")
    rssi = _number(wifi.get("rssi")) if isinstance(wifi, Mapping) else None
    out = []
    for ident, channel in found:
        values: dict[str, Any] = {}
        for field, key in _FIELDS.items():
            values[key] = channel.get(field)  # the plausibility gate judges (and counts) it
        for field, key in (("aenergy", q.ENERGY_TOTAL.key), ("ret_aenergy", q.ENERGY_EXPORTED.key)):
            energy = channel.get(field)
            if isinstance(energy, Mapping) and "total" in energy:
                wh = _number(energy["total"])
                values[key] = wh / 1000 if wh is not None else energy["total"]
        if isinstance(channel.get("output"), bool):
            values[q.RELAY_ON.key] = 1.0 if channel["output"] else 0.0
        temperature = channel.get("temperature")
        if isinstance(temperature, Mapping):
            values[q.TEMPERATURE.key] = temperature.get("tC")
        if rssi is not None:
            values[q.RSSI.key] = rssi
        outlet = str(ident + 1) if len(found) > 1 else None
        out.append(plausible.reading(values, outlet=outlet))
    return tuple(out)


def device_info(shelly: Mapping[str, Any], name: str | None) -> dict[str, str]:
    """Identity labels from ``Shelly.GetDeviceInfo``; ``alias`` names an unnamed device."""
    info = {
        "model": str(shelly.get("model") or ""),
        "generation": str(shelly.get("gen") or ""),
        "firmware": str(shelly.get("ver") or shelly.get("fw_id") or ""),
    }
    if name:
        info["alias"] = name
    return info
