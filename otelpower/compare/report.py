"""From collected series to verdicts (``analyse``), markdown (``render``) and a summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from otelpower.compare.analysis import (
    AVAILABILITY_MARGIN,
    DISAGREE_PCT,
    MIN_RELATIVE_W,
    PROTOCOLS,
    DiffStats,
    PathSummary,
    Recommendation,
    UpStats,
    align,
    recommend,
)
from otelpower.compare.collect import Collected, DeviceData


@dataclass
class DeviceResult:
    data: DeviceData
    diff: DiffStats | None
    up: dict[str, UpStats]
    recommendation: Recommendation
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (native, matter)
    charts: dict[str, str] = field(default_factory=dict)  # kind -> file name


@dataclass
class Analysis:
    collected: Collected
    url: str
    compared: list[DeviceResult]  # devices with data on both paths
    single: list[DeviceResult]  # devices seen on one path only
    overall_diff: DiffStats | None
    overall_up: dict[str, UpStats]
    overall: Recommendation
    availability_chart: str | None = None


def _summaries(dev: DeviceData, up: dict[str, UpStats]) -> list[PathSummary]:
    return [
        PathSummary(p, up[p], dev.paths[p].p99_s, len(dev.paths[p].value_fields))
        for p in PROTOCOLS
        if p in dev.paths
    ]


def analyse(collected: Collected, url: str) -> Analysis:
    compared, single = [], []
    for dev in collected.devices:
        up = {p: UpStats.of(path.up) for p, path in dev.paths.items()}
        pairs: list[tuple[float, float]] = []
        if dev.both:
            pairs = [
                (n, m) for _, n, m in align(dev.paths["native"].power, dev.paths["matter"].power)
            ]
        diff = DiffStats.of(pairs)
        result = DeviceResult(dev, diff, up, recommend(_summaries(dev, up), diff), pairs)
        (compared if dev.both else single).append(result)
    overall_up = {p: UpStats.combine(r.up[p] for r in compared if p in r.up) for p in PROTOCOLS}
    overall_diff = DiffStats.of(pair for r in compared for pair in r.pairs)
    paths = [
        PathSummary(p, overall_up[p], collected.latency.get(p, (None, None))[1]) for p in PROTOCOLS
    ]
    overall = recommend(paths, overall_diff)
    return Analysis(collected, url, compared, single, overall_diff, overall_up, overall)


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _f(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.1f}%"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return [*out, ""]


def _accuracy(diff: DiffStats | None) -> list[str]:
    if diff is None:
        return ["No aligned timestamps with power on both paths.", ""]
    rel = diff.rel_pct
    rows = [
        ["abs. difference (W)", _f(diff.abs_w.mean), _f(diff.abs_w.median), _f(diff.abs_w.p95)],
        [
            "relative difference (%)",
            _f(rel and rel.mean, digits=1),
            _f(rel and rel.median, digits=1),
            _f(rel and rel.p95, digits=1),
        ],
    ]
    return [
        f"{diff.n} aligned timestamps; mean signed difference (native - matter)"
        f" {diff.bias_w:+.3f} W.",
        "",
        *_table(["native - matter", "mean", "median", "p95"], rows),
    ]


def _up_rows(up: dict[str, UpStats]) -> list[list[str]]:
    rows = []
    for p in PROTOCOLS:
        s = up.get(p)
        if s is None:
            continue
        rows.append(
            [
                p,
                _pct(s.availability),
                str(s.samples),
                str(s.outages),
                str(len(s.recoveries)),
                _f(s.mttr_s, " s", 1),
                "yes" if s.down_at_end else "no",
            ]
        )
    return rows


UP_HEADER = ["protocol", "availability", "samples", "outages (1→0)", "recoveries (1→0→1)"]
UP_HEADER += ["mean time to recover", "down at end"]


def _device_section(r: DeviceResult) -> list[str]:
    dev = r.data
    out = [f"### {dev.device} (`{dev.device_id}`)", ""]
    if dev.room:
        out += [f"Room: {dev.room}.", ""]
    for kind in ("power", "diff"):
        if kind in r.charts:
            out += [f"![{dev.device} {kind}]({r.charts[kind]})", ""]
    out += ["**Accuracy**", "", *_accuracy(r.diff)]
    rows = []
    for p in PROTOCOLS:
        path = dev.paths[p]
        errors = ", ".join(f"{k} {v}" for k, v in sorted(path.errors.items())) or "none"
        rows.append(
            [p, _ms(path.p50_s), _ms(path.p99_s), _f(path.last_success_age_s, " s", 1), errors]
        )
    out += ["**Latency and freshness**", ""]
    out += _table(["protocol", "poll p50", "poll p99", "last success age", "poll errors"], rows)
    out += ["**Availability and recovery**", "", *_table(UP_HEADER, _up_rows(r.up))]
    names = sorted(set(dev.paths["native"].fields) | set(dev.paths["matter"].fields))
    field_rows = [
        [f"`{n}`", *("✓" if n in dev.paths[p].fields else "-" for p in PROTOCOLS)] for n in names
    ]
    out += ["**Fields** (`tplink_<protocol>_<field>` with series in the range)", ""]
    out += _table(["field", "native", "matter"], field_rows)
    out += [f"**Recommendation:** {r.recommendation.text()}", ""]
    return out


MIN_RELATIVE_KWH = 0.01  # below this the plugs' 1 Wh resolution dominates a relative figure


def _energy_row(r: DeviceResult) -> list[str] | None:
    native, matter = (r.data.paths[p].energy_kwh for p in ("native", "matter"))
    if native is None and matter is None:
        return None
    diff = rel = None
    if native is not None and matter is not None:
        diff, mean = native - matter, (native + matter) / 2
        rel = abs(diff) / mean * 100 if mean >= MIN_RELATIVE_KWH else None
    cells = [_f(native, digits=4), _f(matter, digits=4), _f(diff, digits=4), _f(rel, digits=1)]
    return [r.data.device, f"`{r.data.device_id}`", *cells]


def _energy_table(results: list[DeviceResult]) -> list[str]:
    rows = [row for r in results if (row := _energy_row(r)) is not None]
    if not rows:
        return ["No compared device has an energy counter.", ""]
    header = ["device", "device_id", "native (kWh)", "matter (kWh)", "native - matter (kWh)"]
    return _table([*header, "difference (%)"], rows)


def render(a: Analysis) -> str:
    c = a.collected
    out = [
        "# otelpower compare: native vs Matter",
        "",
        f"Backend `{a.url}`, {_ts(c.start)} - {_ts(c.end)} ({c.end - c.start:.0f} s),"
        f" step {c.step:g} s.",
        "",
        "## Summary",
        "",
    ]
    rows = []
    for r in a.compared:
        d = r.diff
        rows.append(
            [
                r.data.device,
                f"`{r.data.device_id}`",
                _f(d and d.abs_w.median),
                _f(d and d.rel_pct and d.rel_pct.median, digits=1),
                _pct(r.up["native"].availability),
                _pct(r.up["matter"].availability),
                r.recommendation.preferred or "-",
            ]
        )
    header = ["device", "device_id", "median abs diff (W)", "median rel diff (%)"]
    header += ["availability native", "availability matter", "prefer"]
    out += _table(header, rows) if rows else ["No device has data on both paths.", ""]
    if a.availability_chart:
        out += [f"![availability]({a.availability_chart})", ""]

    out += ["## Overall", "", "**Accuracy** (all compared devices pooled)", ""]
    out += _accuracy(a.overall_diff)
    lat_rows = [
        [p, _ms(c.latency.get(p, (None, None))[0]), _ms(c.latency.get(p, (None, None))[1])]
        for p in PROTOCOLS
    ]
    out += ["**Poll latency** (histogram_quantile over the range, all devices)", ""]
    out += _table(["protocol", "p50", "p99"], lat_rows)
    out += ["**Availability and recovery** (compared devices pooled)", ""]
    out += _table(UP_HEADER, _up_rows(a.overall_up))
    out += ["**Energy** (increase of the energy counter over the range)", ""]
    out += _energy_table(a.compared)

    out += ["## Devices", ""]
    for r in a.compared:
        out += _device_section(r)
    if a.single:
        out += ["## Devices seen on one path only", ""]
        for r in a.single:
            (protocol,) = r.data.paths
            path = r.data.paths[protocol]
            out.append(
                f"- **{r.data.device}** (`{r.data.device_id}`): {protocol} only;"
                f" availability {_pct(r.up[protocol].availability)};"
                f" fields {', '.join(path.value_fields) or 'none'}"
            )
        out.append("")

    out += ["## Recommendation", "", f"Overall: {a.overall.text()}.", ""]
    for r in a.compared:
        out.append(f"- {r.data.device} (`{r.data.device_id}`): {r.recommendation.text()}.")
    for r in a.single:
        (protocol,) = r.data.paths
        out.append(f"- {r.data.device} (`{r.data.device_id}`): {protocol} (the only path).")
    out += [
        "",
        "## Method",
        "",
        "- Power per device is the sum over outlets (strips), per protocol, from"
        " `sum by (device_id) (max by (device_id, outlet) (tplink_<protocol>_power_watts))`"
        " (each series once, however many copies the backend holds) on the step grid; only"
        " timestamps where both paths have a value are compared.",
        f"- Relative difference: |native - matter| / mean of the two, for samples where"
        f" either reading is ≥ {MIN_RELATIVE_W:g} W.",
        "- Energy: `sum by (device_id) (increase(max by (device_id, outlet)"
        " (tplink_<protocol>_energy_kilowatt_hours_total)[range:step]))` at the end of the"
        " range, per protocol (copies merged first, so a shard move is not a new counter);"
        " the difference is relative to the"
        f" mean of the two, shown from {MIN_RELATIVE_KWH:g} kWh (plugs count whole Wh).",
        "- Availability: share of step samples with `tplink_<protocol>_up` = 1 (gaps without"
        " samples are not counted); an outage is a 1→0 transition, a recovery the next 1;"
        " times to recover have the resolution of the step.",
        "- Poll latency: `histogram_quantile` over `increase(otelpower_poll_duration_seconds_"
        "bucket[range])` at the end of the range; last success age: end of the range minus"
        " `otelpower_last_success_timestamp_seconds`.",
        f"- Verdict: the path with higher availability wins when they differ by more than"
        f" {AVAILABILITY_MARGIN * 100:g} percentage point; otherwise fewer outages, then more"
        f" fields, then native. A median relative difference above {DISAGREE_PCT:g}% is"
        " flagged: then a path may be miscalibrated and both should be kept.",
        "",
    ]
    return "\n".join(out)


def summary(a: Analysis, report_path: str) -> str:
    c = a.collected
    lines = [
        f"compared {len(a.compared)} device(s) on both paths, {len(a.single)} on one path only"
        f" ({c.end - c.start:.0f} s from {_ts(c.start)})"
    ]
    for r in a.compared:
        d = r.diff
        rel = d and d.rel_pct and d.rel_pct.median
        lines.append(
            f"  {r.data.device} {r.data.device_id}: median |diff| {_f(d and d.abs_w.median)} W"
            f" ({_f(rel, digits=1)}%), availability native {_pct(r.up['native'].availability)}"
            f" matter {_pct(r.up['matter'].availability)} -> {r.recommendation.preferred}"
        )
    for r in a.single:
        (protocol,) = r.data.paths
        lines.append(f"  {r.data.device} {r.data.device_id}: {protocol} only")
    lines.append(f"overall: {a.overall.text().replace('**', '')}")
    lines.append(f"report: {report_path}")
    return "\n".join(lines)
