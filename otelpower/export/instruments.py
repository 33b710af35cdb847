"""The metrics contract: instrument names, units and labels shared by every reader.

Names are ``<vendor>_<protocol>_<quantity>``, the Prometheus names the contract fixes
(``tplink_native_power_watts``, otelpower.core.quantities); units are
set only where OTel's Prometheus mapping yields the suffix already in the name, so no suffix
is ever doubled. Callbacks read snapshots and never touch the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otelpower.core.model import DeviceSnapshot, SnapshotStore
from otelpower.core.quantities import Quantity, metric_prefix


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
    vendors: Iterable[str] = (),
) -> None:
    """Register the contract's instruments for one reader, all fed from ``store``.

    ``vendors``: the makers a reader of any maker's devices (a standard) may name a device for
    (its snapshot's ``vendor``; ``vendor`` when it names none): one set of instruments each.
    """
    quantities = tuple(quantities)
    makers = tuple(dict.fromkeys((vendor, *vendors)))
    for maker in makers:
        if len(makers) == 1:
            _register(meter, store.all, metric_prefix(maker, protocol), protocol, quantities)
        else:
            _register(
                meter,
                _of(store, maker, vendor),
                metric_prefix(maker, protocol),
                protocol,
                quantities,
            )


def _of(store: SnapshotStore, maker: str, default: str) -> Callable[[], list[DeviceSnapshot]]:
    def snapshots() -> list[DeviceSnapshot]:
        return [s for s in store.all() if (s.vendor or default) == maker]

    return snapshots


def _register(
    meter: Meter,
    snapshots: Callable[[], list[DeviceSnapshot]],
    prefix: str,
    protocol: str,
    quantities: tuple[Quantity, ...],
) -> None:
    def values_of(q: Quantity) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            for snap in snapshots():
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
        for snap in snapshots():
            yield Observation(1 if snap.up else 0, series_labels(snap, protocol, None))

    def info(_: CallbackOptions) -> Iterable[Observation]:
        for snap in snapshots():
            if snap.info:
                yield Observation(1, {**series_labels(snap, protocol, None), **snap.info})

    def status(_: CallbackOptions) -> Iterable[Observation]:
        for snap in snapshots():
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
