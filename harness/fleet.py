"""Many devices through the real metric instruments and SDK, without plugs: every device
goes through every status (each a label set the SDK then keeps), then comes back up.

Used by tests/export/test_cardinality.py and bench/cardinality.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.metrics.view import View

from otelpower.core import quantities as q
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.export import collected
from otelpower.export.instruments import register_device_metrics
from otelpower.export.selfmetrics import SelfMetrics

QUANTITIES = (q.POWER, q.VOLTAGE, q.CURRENT, q.ENERGY_TOTAL, q.RELAY_ON)
#: a status other than ok, for every poll error kind, then ok
HISTORY = [s for s in DeviceStatus if s is not DeviceStatus.OK] + [DeviceStatus.OK]


def mac(i: int) -> str:
    return ":".join(["48", "22", *(f"{i >> shift & 255:02x}" for shift in (24, 16, 8, 0))])


@dataclass
class Fleet:
    n: int
    views: list[View]

    def __post_init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader], views=self.views)
        meter = self.provider.get_meter("fleet")
        self.store = SnapshotStore()
        self.recorder = SelfMetrics(meter)
        register_device_metrics(
            meter, self.store, vendor="tplink", protocol="native", quantities=QUANTITIES
        )

    def round(self, status: DeviceStatus) -> MetricsData:
        """Every device in ``status`` (values when ok), then one collection."""
        for i in range(self.n):
            device_id = mac(i)
            labels = {"house": "h", "room": "r", "shelf": "s", "device": f"d{i}"}
            labels["device_id"] = device_id
            readings = ()
            if status is DeviceStatus.OK:
                values = {"power_watts": 10.0 + i % 7, "voltage_volts": 230.0}
                readings = (Reading({**values, "energy_kilowatt_hours": 1.5}),)
            snap = DeviceSnapshot(device_id, labels, status, {"model": "P110"}, readings)
            self.store.put(snap)
            self.recorder.poll("native", device_id, labels["device"], 0.05, status)
        data = self.reader.get_metrics_data()
        assert data is not None
        return data

    def shutdown(self) -> None:
        self.provider.shutdown()


def points(data: MetricsData, name: str) -> list[dict]:
    """The attribute sets of ``name``'s points in one collection."""
    return [
        dict(p.attributes or {})
        for m in collected.metrics(data)
        if m.name == name
        for p in m.data.data_points
    ]
