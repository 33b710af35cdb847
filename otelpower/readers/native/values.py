"""Turn an updated python-kasa ``Device`` into protocol-neutral readings (pure, no I/O)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kasa import Device, Module
from kasa.deviceconfig import DeviceConfig as KasaDeviceConfig
from kasa.deviceconfig import DeviceEncryptionType
from kasa.interfaces import Energy
from kasa.iot.modules import Emeter as IotEmeter

from otelpower.config import normalize_mac
from otelpower.core import plausible
from otelpower.core.model import Reading
from otelpower.core.plausible import Unreadable
from otelpower.core.quantities import (
    CURRENT,
    ENERGY_MONTH,
    ENERGY_TODAY,
    ENERGY_TOTAL,
    POWER,
    RELAY_ON,
    RSSI,
    VOLTAGE,
)

log = logging.getLogger(__name__)


def _safe(getter: Callable[[], Any]) -> Any:
    """One failing field must not cost the others: a getter that raises reads as absent."""
    try:
        return getter()
    except Exception as exc:  # python-kasa raises various errors for modules that failed
        log.debug("field unavailable: %s", exc)
        return None


def _value(getter: Callable[[], Any]) -> Any:
    """A measured value; a getter that raises reads as Unreadable (dropped and counted)."""
    try:
        return getter()
    except Exception as exc:  # python-kasa fails a module whose reply made no sense
        return Unreadable(type(exc).__name__)


def _failed(module: Any) -> bool:
    """A SMART module whose last reply python-kasa could not process (or gave up on)."""
    return bool(getattr(module, "_last_update_error", None) or getattr(module, "disabled", False))


def transport_name(config: KasaDeviceConfig) -> str:
    """``KLAP v2`` / ``KLAP v1`` / ``AES`` / ``XOR``, as python-kasa chose for this device."""
    conn = config.connection_type
    enc = conn.encryption_type
    if enc is DeviceEncryptionType.Klap:
        smart = conn.device_family.value.startswith("SMART.")
        return "KLAP v2" if smart or (conn.login_version or 0) >= 2 else "KLAP v1"
    if enc is DeviceEncryptionType.Aes:
        return "AES"
    return enc.value.upper()


def energy_values(dev: Device) -> dict[str, Any]:
    energy = dev.modules.get(Module.Energy)
    if energy is None:
        return {}
    if _failed(energy):  # python-kasa keeps a failed module's last values: none are current
        return {q.key: Unreadable("energy reply rejected") for q in (POWER, ENERGY_TODAY)}
    if isinstance(energy, IotEmeter):
        today, month = iot_today_and_month(dev, energy)
    else:
        today = _value(lambda: energy.consumption_today)
        month = _value(lambda: energy.consumption_this_month)
    values: dict[str, Any] = {
        POWER.key: _value(lambda: energy.current_consumption),
        ENERGY_TODAY.key: today,
        ENERGY_MONTH.key: month,
    }
    if energy.supports(Energy.ModuleFeature.VOLTAGE_CURRENT):
        values[VOLTAGE.key] = _value(lambda: energy.voltage)
        values[CURRENT.key] = _value(lambda: energy.current)
    if energy.supports(Energy.ModuleFeature.CONSUMPTION_TOTAL):
        values[ENERGY_TOTAL.key] = _value(lambda: energy.consumption_total)
    else:  # Tapo: the month figure is the counter (it resets at the plug's month start)
        values[ENERGY_TOTAL.key] = values[ENERGY_MONTH.key]
    return values


def _stat_kwh(entries: Any, **when: int) -> float | None:
    """The kWh of the day or month list entry dated ``when``; None if the list has none."""
    for entry in reversed(entries or []):
        if all(entry.get(k) == v for k, v in when.items()):
            if "energy_wh" in entry:
                return float(entry["energy_wh"]) / 1000.0
            return float(entry["energy"]) if "energy" in entry else None
    return None


def iot_today_and_month(dev: Device, energy: IotEmeter) -> tuple[Any, Any]:
    """Today's and this month's kWh by the plug's own date (python-kasa picks them by the
    host's date, which reads 0.0 for the hours a UTC host and a plug in local time differ).
    An entry the plug's lists lack is absent, never 0."""
    plug_now = _safe(lambda: dev.time)
    if plug_now is None:
        return None, None
    y, m, d = plug_now.year, plug_now.month, plug_now.day
    today = _value(lambda: _stat_kwh(energy.daily_data, year=y, month=m, day=d))
    month = _value(lambda: _stat_kwh(energy.monthly_data, year=y, month=m))
    return today, month


def _relay(dev: Device) -> Any:
    state = _value(lambda: dev.is_on)
    return state if state is None or isinstance(state, Unreadable) else float(bool(state))


def device_readings(dev: Device) -> tuple[Reading, ...]:
    """Readings of a plug, or per outlet of a strip (the strip total is not repeated).

    Values python-kasa could not read are dropped as ``unreadable`` (otelpower.core.plausible).
    """
    rssi = _value(lambda: dev.rssi)
    metered_children = [c for c in dev.children if Module.Energy in c.modules]
    if metered_children:
        outlets = [
            plausible.reading(
                {**energy_values(child), RELAY_ON.key: _relay(child)}, outlet=str(index)
            )
            for index, child in enumerate(dev.children, start=1)
        ]
        return (plausible.reading({RSSI.key: rssi}), *outlets)
    values = {**energy_values(dev), RELAY_ON.key: _relay(dev), RSSI.key: rssi}
    return (plausible.reading(values),)


def device_info(dev: Device) -> dict[str, str]:
    firmware = _safe(lambda: dev.device_info.firmware_version) or ""
    return {
        "model": str(_safe(lambda: dev.model) or ""),
        "firmware": str(firmware),
        "transport": transport_name(dev.config),
        "alias": str(_safe(lambda: dev.alias) or "").strip(),
    }


def device_mac(dev: Device) -> str | None:
    raw = _safe(lambda: dev.mac)
    if not raw:
        return None
    try:
        return normalize_mac(str(raw))
    except ValueError:
        return None
