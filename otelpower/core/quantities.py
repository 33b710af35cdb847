"""The one catalogue of measured quantities, each with its unit and plausible bounds.

A reader exports a subset of this catalogue (its ``ReaderSpec.quantities``); every value it
exports has passed otelpower.core.plausible against these bounds. The metric name is
``<vendor>_<protocol>_<key>`` (otelpower.export.instruments): the maker of the plug, the path
it is read by, the quantity. A device's vendor is its config's ``vendor:`` (default
``tplink``, so every config written before there was a second maker keeps its names); a
Matter node the config does not list is named by its BasicInformation VendorID, else
``other``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    """One measured quantity; ``key`` is the metric name after ``<vendor>_<protocol>_``.

    ``low``..``high`` is what any plug could plausibly report; values outside are nonsense
    (see otelpower.core.plausible). Bounds are wide: a plug or strip carries at most ~4 kW.
    """

    key: str
    description: str
    unit: str = ""
    counter: bool = False  # monotonic: exported as ``<name>_total``
    low: float = 0.0
    high: float = math.inf


DEFAULT_VENDOR = "tplink"  # a device whose config names no maker
OTHER_VENDOR = "other"  # a device read through a standard whose maker no reader knows


def metric_prefix(vendor: str, protocol: str) -> str:
    return f"{vendor}_{protocol}_"


KWH_MAX = 1e7  # 10 GWh: centuries of a fully loaded plug
POWER = Quantity("power_watts", "Active power", "W", high=20_000)
VOLTAGE = Quantity("voltage_volts", "RMS voltage", "V", high=1_000)
CURRENT = Quantity("current_amperes", "RMS current", "A", high=200)
ENERGY_TODAY = Quantity("energy_today_kilowatt_hours", "Energy used today (kWh)", high=KWH_MAX)
ENERGY_MONTH = Quantity("energy_month_kilowatt_hours", "Energy used this month (kWh)", high=KWH_MAX)
ENERGY_TOTAL = Quantity("energy_kilowatt_hours", "Energy counter (kWh)", counter=True, high=KWH_MAX)
RELAY_ON = Quantity("relay_on", "Relay state: 1 on, 0 off", high=1)
RSSI = Quantity("rssi_dbm", "Wi-Fi signal strength (dBm)", low=-150, high=0)

ENERGY_EXPORTED = Quantity(
    "energy_exported_kilowatt_hours", "Energy exported counter (kWh)", counter=True, high=KWH_MAX
)
APPARENT_POWER = Quantity("apparent_power_volt_amperes", "Apparent power (VA)", high=20_000)
REACTIVE_POWER = Quantity(
    "reactive_power_volt_amperes_reactive", "Reactive power (var)", low=-20_000, high=20_000
)
POWER_FACTOR = Quantity("power_factor_ratio", "Power factor (-1..1)", low=-1, high=1)
FREQUENCY = Quantity("frequency_hertz", "Mains frequency", "Hz", high=1_000)
TEMPERATURE = Quantity("temperature_celsius", "Device temperature (°C)", low=-60, high=200)

CATALOGUE: tuple[Quantity, ...] = (
    POWER,
    VOLTAGE,
    CURRENT,
    ENERGY_TODAY,
    ENERGY_MONTH,
    ENERGY_TOTAL,
    ENERGY_EXPORTED,
    APPARENT_POWER,
    REACTIVE_POWER,
    POWER_FACTOR,
    FREQUENCY,
    RELAY_ON,
    RSSI,
    TEMPERATURE,
)

#: every quantity by key, for plausibility checks
QUANTITIES: dict[str, Quantity] = {q.key: q for q in CATALOGUE}
