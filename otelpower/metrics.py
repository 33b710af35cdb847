"""The metrics contract: instrument names, units and labels shared by every reader.

Names are the Prometheus names the contract fixes (``tplink_native_power_watts``); units are
set only where OTel's Prometheus mapping yields the suffix already in the name, so no suffix
is ever doubled. Callbacks read snapshots and never touch the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otelpower.model import DeviceSnapshot, SnapshotStore


@dataclass(frozen=True)
class Quantity:
    """One measured quantity; ``key`` is the metric name after ``<vendor>_<protocol>_``.

    ``low``..``high`` is what any plug could plausibly report; values outside are nonsense
    (see otelpower.plausible). Bounds are wide: a plug or strip carries at most ~4 kW.
    """

    key: str
    description: str
    unit: str = ""
    counter: bool = False  # monotonic: exported as ``<name>_total``
    low: float = 0.0
    high: float = math.inf


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

NATIVE_QUANTITIES: tuple[Quantity, ...] = (
    POWER,
    VOLTAGE,
    CURRENT,
    ENERGY_TODAY,
    ENERGY_MONTH,
    ENERGY_TOTAL,
    RELAY_ON,
    RSSI,
)

MATTER_QUANTITIES: tuple[Quantity, ...] = (
    POWER,
    VOLTAGE,
    CURRENT,
    ENERGY_TOTAL,
    ENERGY_EXPORTED,
    APPARENT_POWER,
    REACTIVE_POWER,
    POWER_FACTOR,
    FREQUENCY,
    RELAY_ON,
)

#: every quantity by key, for plausibility checks
QUANTITIES: dict[str, Quantity] = {q.key: q for q in (*NATIVE_QUANTITIES, *MATTER_QUANTITIES)}


def series_labels(snap: DeviceSnapshot, protocol: str, outlet: str | None) -> dict[str, str]:
    labels = {**snap.labels, "protocol": protocol}
    if outlet is not None:
        labels["outlet"] = outlet
    return labels


def register_device_metrics(
    meter: Meter,
    store: SnapshotStore,
    *,
    vendor: str,
    protocol: str,
    quantities: Iterable[Quantity],
) -> None:
    """Register the contract's instruments for one reader, all fed from ``store``."""
    prefix = f"{vendor}_{protocol}_"

    def values_of(q: Quantity) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            for snap in store.all():
                if not snap.up:  # stale policy: a device that is not up has no values
                    continue
                for reading in snap.readings:
                    value = reading.values.get(q.key)
                    if value is not None:
                        yield Observation(value, series_labels(snap, protocol, reading.outlet))

        return callback

    for q in quantities:
        create = meter.create_observable_counter if q.counter else meter.create_observable_gauge
        create(prefix + q.key, callbacks=[values_of(q)], unit=q.unit, description=q.description)

    def up(_: CallbackOptions) -> Iterable[Observation]:
        for snap in store.all():
            yield Observation(1 if snap.up else 0, series_labels(snap, protocol, None))

    def info(_: CallbackOptions) -> Iterable[Observation]:
        for snap in store.all():
            if snap.info:
                yield Observation(1, {**series_labels(snap, protocol, None), **snap.info})

    def status(_: CallbackOptions) -> Iterable[Observation]:
        for snap in store.all():
            labels = series_labels(snap, protocol, None)
            yield Observation(1, {**labels, "status": str(snap.status)})

    meter.create_observable_gauge(
        prefix + "up", callbacks=[up], description="1 when the last poll succeeded, else 0"
    )
    meter.create_observable_gauge(
        prefix + "device_info", callbacks=[info], description="Device identity (always 1)"
    )
    meter.create_observable_gauge(
        prefix + "device_status",
        callbacks=[status],
        description="Current status of the device (1 for the status label it is in)",
    )
