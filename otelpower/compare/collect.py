"""Everything the report needs, fetched from the backend per device and protocol."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from otelpower.compare.analysis import PROTOCOLS
from otelpower.compare.query import PromClient, Series, promql_str

# Series that describe the path rather than a measured quantity.
META_FIELDS = frozenset({"up", "device_info", "device_status"})
_ALTERNATIVES = "|".join(PROTOCOLS)
_NAME = re.compile(rf"^tplink_({_ALTERNATIVES})_(.+)$")


@dataclass
class PathData:
    protocol: str
    power: list[tuple[float, float]] = field(default_factory=list)  # outlets summed
    up: list[tuple[float, float]] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)  # metric names without the prefix
    p50_s: float | None = None
    p99_s: float | None = None
    last_success_age_s: float | None = None
    errors: dict[str, int] = field(default_factory=dict)  # kind -> polls failed
    energy_kwh: float | None = None  # increase of the energy counter over the range

    @property
    def value_fields(self) -> list[str]:
        return sorted(self.fields - META_FIELDS)


@dataclass
class DeviceData:
    device_id: str
    device: str
    room: str = ""
    paths: dict[str, PathData] = field(default_factory=dict)

    @property
    def both(self) -> bool:
        return all(p in self.paths for p in PROTOCOLS)


@dataclass
class Collected:
    start: float
    end: float
    step: float
    devices: list[DeviceData]
    # protocol -> (p50, p99) over all devices
    latency: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


def window(start: float, end: float) -> str:
    return f"{max(1, math.ceil(end - start))}s"


def once(selector: str) -> str:
    """Each plug's (outlet's) series once: its copies merged (/metrics and OTLP in one backend,
    an old and a new shard replica), before ``increase`` so a replica change is no new counter."""
    return f"max by (device_id, outlet) ({selector})"


def device_selector(device_ids: list[str]) -> str:
    if not device_ids:
        return ""
    alternatives = "|".join(re.escape(d) for d in device_ids)
    return f"device_id=~{promql_str(alternatives)}"


def _num(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def collect(
    client: PromClient, start: float, end: float, step: float, device_ids: list[str]
) -> Collected:
    sel = device_selector(device_ids)
    inner = f",{sel}" if sel else ""
    devices: dict[str, DeviceData] = {}
    match = f'{{__name__=~"tplink_({_ALTERNATIVES})_.+"{inner}}}'
    for labels in client.series(match, start, end):
        m = _NAME.match(labels.get("__name__", ""))
        device_id = labels.get("device_id", "")
        if not m or not device_id:
            continue
        dev = devices.setdefault(
            device_id,
            DeviceData(device_id, labels.get("device", device_id), labels.get("room", "")),
        )
        if dev.device == device_id and labels.get("device"):
            dev.device = labels["device"]
        protocol, name = m.groups()
        dev.paths.setdefault(protocol, PathData(protocol)).fields.add(name)
    result = Collected(start, end, step, sorted(devices.values(), key=lambda d: d.device))
    if not devices:
        return result
    braces = f"{{{sel}}}" if sel else ""
    for protocol in PROTOCOLS:
        power = client.query_range(
            f"sum by (device_id) ({once(f'tplink_{protocol}_power_watts{braces}')})",
            start,
            end,
            step,
        )
        up = client.query_range(
            f"max by (device_id) (tplink_{protocol}_up{braces})", start, end, step
        )
        for attr, series in (("power", power), ("up", up)):
            for s in series:
                path = _path(devices, s, protocol)
                if path is not None:
                    setattr(path, attr, s.points)
    w = window(start, end)
    for protocol in PROTOCOLS:
        counter = once(f"tplink_{protocol}_energy_kilowatt_hours_total{braces}")
        energy = f"sum by (device_id) (increase({counter}[{w}:{window(0, step)}]))"
        for s in client.query(energy, end):
            path = _path(devices, s, protocol)
            if path is not None:
                path.energy_kwh = _num(s.points[0][1])
    _self_metrics(client, devices, result, start, end, sel)
    return result


def _path(devices: dict[str, DeviceData], s: Series, protocol: str) -> PathData | None:
    dev = devices.get(s.labels.get("device_id", ""))
    return None if dev is None else dev.paths.get(protocol)


def _self_metrics(
    client: PromClient,
    devices: dict[str, DeviceData],
    result: Collected,
    start: float,
    end: float,
    sel: str,
) -> None:
    w = window(start, end)
    proto = f'protocol=~"{_ALTERNATIVES}"{"," + sel if sel else ""}'
    buckets = f"increase(otelpower_poll_duration_seconds_bucket{{{proto}}}[{w}])"
    for q, attr in ((0.5, "p50_s"), (0.99, "p99_s")):
        expr = f"histogram_quantile({q}, sum by (protocol, device_id, le) ({buckets}))"
        for s in client.query(expr, end):
            path = _path(devices, s, s.labels.get("protocol", ""))
            if path is not None:
                setattr(path, attr, _num(s.points[0][1]))
    overall: dict[str, list[float | None]] = {p: [None, None] for p in PROTOCOLS}
    for i, q in enumerate((0.5, 0.99)):
        expr = f"histogram_quantile({q}, sum by (protocol, le) ({buckets}))"
        for s in client.query(expr, end):
            if s.labels.get("protocol") in overall:
                overall[s.labels["protocol"]][i] = _num(s.points[0][1])
    result.latency = {p: (v[0], v[1]) for p, v in overall.items()}
    last = (
        "max by (protocol, device_id) "
        f"(last_over_time(otelpower_last_success_timestamp_seconds{{{proto}}}[{w}]))"
    )
    for s in client.query(last, end):
        path = _path(devices, s, s.labels.get("protocol", ""))
        if path is not None:
            path.last_success_age_s = max(0.0, end - s.points[0][1])
    errors = (
        "sum by (protocol, device_id, kind) "
        f"(increase(otelpower_poll_errors_total{{{proto}}}[{w}]))"
    )
    for s in client.query(errors, end):
        path = _path(devices, s, s.labels.get("protocol", ""))
        value = _num(s.points[0][1])
        if path is not None and value:
            path.errors[s.labels.get("kind", "?")] = round(value)
