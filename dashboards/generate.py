"""Grafana dashboards for otelpower, generated with grafana-foundation-sdk.

    .venv/bin/python dashboards/generate.py [OUT_DIR]     (default: dashboards/)

writes ``otelpower-power.json`` (the unified view: one series per plug, the preferred
protocol first and the other as fallback) and ``otelpower-compare.json`` (native vs Matter,
poll latency, availability), plus the alert rules: ``alerts/otelpower-rules.yaml`` (from the
template ``otelpower-rules.yaml.in`` next to this file), ``alerts/vmalert-rules.yaml`` (its
rule groups for vmalert) and the VMRule of k8s/components/vmrule; into OUT_DIR when given.
``make dashboards`` runs it; ``make dashboards-check`` fails when the committed files differ
from its output.

Every metric name comes from the reader registry (otelpower.readers.registry) at call time:
every panel and rule covers every registered maker and protocol, also a reader a test or
plug-in registered after this module was imported. In-process (tests):

- ``dashboards()``: file name -> dashboard model (JSON-able dict); fills ``LABELS``
- ``query_labels()``: query expression -> the label names of its result series
- ``rules()``: the PrometheusRule YAML text (``vmalert_rules()``, ``vmrule()``: derived)

Every query is PromQL that VictoriaMetrics (MetricsQL) runs as well. ``LABELS`` maps each
query expression to the label set its result series carry; tests/dashboards checks every
query against a real VictoriaMetrics filled by the pipeline with exactly these labels.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from otelpower.core.quantities import metric_prefix
from otelpower.readers import registry

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RULES = ROOT / "alerts" / "otelpower-rules.yaml"
RULES_TEMPLATE = HERE / "otelpower-rules.yaml.in"
VMALERT_RULES = ROOT / "alerts" / "vmalert-rules.yaml"
VMRULE = ROOT / "k8s" / "components" / "vmrule" / "otelpower-vmrule.yaml"

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The plug's identity labels (every per-device series; strips add ``outlet``).
DEVICE = ("house", "room", "shelf", "device", "device_id")
IDENTITY = ("job", "instance")
# The variable filter on per-device series; self-metrics carry only protocol/device_id/device.
SEL = 'house=~"$house", room=~"$room", shelf=~"$shelf", device=~"$device"'
SELF_SEL = 'device=~"$device"'
PREF = "${protocol_preference}"
# the per-day energy bars' subquery step (a constant variable, so a user can change it)
DAY_STEP, DEFAULT_DAY_STEP = "$energy_day_step", "30m"

# expression -> label names of its result series (``outlet`` may come on top: strips)
LABELS: dict[str, frozenset[str]] = {}


def q(
    expr: str, legend: str, labels: tuple[str, ...] | set[str], ref: str = "A", **kw
) -> prom.Dataquery:
    LABELS[expr] = frozenset(labels)
    d = prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    if kw.get("instant"):
        d = d.instant().format(pm.PromQueryFormat.TABLE) if kw.get("table") else d.instant()
    else:
        d = d.range()
    if kw.get("interval"):
        d = d.interval(kw["interval"])
    return d


# --- metric names, from the registry (read at call time) ----------------------------------------


def _group(prefixes: tuple[str, ...] | list[str]) -> str:
    return f"({'|'.join(p.removesuffix('_') for p in prefixes)})"


def any_path() -> str:
    """Every ``<vendor>_<protocol>`` a device series may have, as a regex group:
    ``(tplink_native|tplink_matter|other_matter)``."""
    return _group(registry.prefixes())


def direct() -> str:
    """The readers of their own maker's plugs (``tplink_native``): the "native" side of
    native vs Matter."""
    return _group([s.prefix for s in registry.specs() if not s.any_vendor])


def standard() -> str:
    """Every maker's prefix under a reader of any maker's plugs (``tplink_matter|other_matter``):
    the "Matter" side of native vs Matter."""
    protocols = {s.protocol for s in registry.specs() if s.any_vendor}
    mine = {metric_prefix(v, p) for v in registry.vendors() for p in protocols}
    return _group([p for p in registry.prefixes() if p in mine])


def vendors() -> str:
    """Every maker a device series can be named for: ``(tplink|other)``."""
    return f"({'|'.join(registry.vendors())})"


def named(group: str, quantity: str, sel: str = "") -> str:
    """A selector of ``<group>_<quantity>`` (``group`` a regex group), with matchers ``sel``."""
    return f'{{__name__=~"{group}_{quantity}"{", " + sel if sel else ""}}}'


# --- the protocol preference ---------------------------------------------------------------


def merged(selector: str) -> str:
    """One series per plug (and outlet): its copies merged (``max by`` drops ``job``/``instance``).

    A plug has several copies when /metrics and OTLP feed one backend, and when a shard hands
    it to another replica (the new replica's series has another ``instance``).
    """
    return f"max by ({', '.join(DEVICE)}, outlet) ({selector})"


def preferred(quantity: str, *, up: bool = True) -> str:
    """One series per plug (and outlet) for ``<vendor>_<protocol>_<quantity>``, any vendor.

    The preferred protocol's series while its ``up`` is 1, else the other protocol's series
    for the same ``device_id``. ``max by`` drops ``protocol`` and ``instance``, so the series
    identity stays the same when the source switches (no second line in a graph). A device
    has one vendor, so ``(tplink|other)_<preferred>_<quantity>`` is its preferred path.
    """
    mine = named(f"{vendors()}_{PREF}", quantity, SEL)
    if up:
        mine = f"({mine} and on(device_id) {named(f'{vendors()}_{PREF}', 'up', SEL)} == 1)"
    other = named(any_path(), quantity, f'protocol!="{PREF}", {SEL}')
    return merged(f"\n  {mine}\n  or on(device_id)\n  {other}\n")


def preferred_increase(quantity: str, window: str, step: str) -> str:
    """``increase`` of a counter over ``window`` per plug, preferred protocol first.

    The copies are merged *before* ``increase`` (a subquery at ``step``): per copy, a shard
    move would split the plug's energy over two series, and VictoriaMetrics counts a new
    series' first value as an increase (the counter's whole value again).
    """
    mine = f"increase({merged(named(f'{vendors()}_{PREF}', quantity, SEL))}[{window}:{step}])"
    other = merged(named(any_path(), quantity, f'protocol!="{PREF}", {SEL}'))
    return f"(\n  {mine}\n  or on(device_id)\n  increase({other}[{window}:{step}])\n)"


def both(metric: str, sel: str = SEL) -> str:
    """``metric`` of every vendor and protocol (its series keep ``__name__`` and ``protocol``)."""
    return named(any_path(), metric, sel)


# --- layout ----------------------------------------------------------------------------------


class Grid:
    """Places panels left to right in Grafana's 24-column grid, wrapping to the next row."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0

    def pos(self, w: int, h: int) -> dm.GridPos:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        p = dm.GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_h = max(self.row_h, h)
        return p

    def row(self) -> dm.GridPos:
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        p = dm.GridPos(h=1, w=24, x=0, y=self.y)
        self.y += 1
        return p


def legend_table(*calcs: str) -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.RIGHT)
        .show_legend(True)
        .calcs(list(calcs))
    )


def panel(builder, title: str, unit: str, desc: str, targets):
    """What every panel has: title, description, unit, our data source and its queries."""
    p = builder.title(title).description(desc).unit(unit).datasource(DS)
    for t in targets:
        p = p.with_target(t)
    return p


def ts(title: str, unit: str, desc: str, *targets, bars: bool = False, stack: bool = False):
    p = (
        panel(timeseries.Panel(), title, unit, desc, targets)
        .legend(legend_table("lastNotNull", "max"))
        .fill_opacity(10)
        .line_width(1)
    )
    if bars:
        p = p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    if stack:
        p = p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    return p


def stat_panel(title: str, unit: str, desc: str, *targets, thresholds=None):
    p = (
        panel(stat.Panel(), title, unit, desc, targets)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if thresholds:
        p = p.thresholds(
            db.ThresholdsConfig()
            .mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=v, color=c) for v, c in thresholds])
        )
    return p


def bars(title: str, unit: str, desc: str, *targets):
    return (
        panel(bargauge.Panel(), title, unit, desc, targets)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def table_panel(title: str, unit: str, desc: str, *targets):
    return (
        panel(table.Panel(), title, unit, desc, targets)
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "job": True, "__name__": True}},
            )
        )
    )


UP_THRESHOLDS = [(None, "red"), (1, "green")]


def variables(with_preference: bool) -> list:
    out = [
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .description("Prometheus or VictoriaMetrics"),
    ]
    chain = ""
    for name in ("house", "room", "shelf", "device"):
        out.append(
            db.QueryVariable(name)
            .label(name.capitalize())
            .datasource(DS)
            .query(f'label_values({{__name__=~"{any_path()}_up"{chain}}}, {name})')
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
        chain += f', {name}=~"${name}"'
    if with_preference:
        out += [
            db.TextBoxVariable("price")
            .label("Price per kWh")
            .description("Your tariff, for the cost panels")
            .default_value(DEFAULT_PRICE)
            .current(dm.VariableOption(selected=True, text=DEFAULT_PRICE, value=DEFAULT_PRICE)),
            db.TextBoxVariable("currency")
            .label("Currency")
            .description("Shown in the cost panels' titles")
            .default_value(DEFAULT_CURRENCY)
            .current(
                dm.VariableOption(selected=True, text=DEFAULT_CURRENCY, value=DEFAULT_CURRENCY)
            ),
            db.ConstantVariable(DAY_STEP[1:])
            .description(
                "Resolution of the per-day energy bars (the step their counters are merged at);"
                " 30m keeps 1.5 years of bars under VictoriaMetrics' 30,000 points per series"
            )
            .value(DEFAULT_DAY_STEP),
        ]
        first = registry.protocols()[0]
        out.append(
            db.CustomVariable("protocol_preference")
            .label("Preferred protocol")
            .description(
                "Each plug is shown once: from this protocol while it is up, else from the other"
            )
            .values(",".join(registry.protocols()))
            .current(dm.VariableOption(selected=True, text=first, value=first))
            .options(
                [
                    dm.VariableOption(selected=p == first, text=p, value=p)
                    for p in registry.protocols()
                ]
            )
        )
    return out


def base(uid: str, title: str, desc: str, with_preference: bool) -> db.Dashboard:
    d = (
        db.Dashboard(title)
        .uid(uid)
        .description(desc)
        .tags(["otelpower", "power", *dict.fromkeys(s.vendor for s in registry.specs())])
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-24h", "now")
        .refresh("30s")
        .timezone("browser")
    )
    for v in variables(with_preference):
        d = d.with_variable(v)
    return d


# --- dashboards --------------------------------------------------------------------------------

PLUG = (*DEVICE,)  # labels of a preferred per-plug series (outlet on strips)
DEFAULT_PRICE, DEFAULT_CURRENCY = "0.30", "EUR"


def power_dashboard() -> db.Dashboard:
    g = Grid()
    d = base(
        "otelpower-power",
        "otelpower: power",
        "Plugs read by otelpower (every maker), each plug once: the preferred protocol, falling"
        " back to the other one while the preferred one is down.",
        with_preference=True,
    )
    # energy per plug (and outlet) over the dashboard's range, each plug once (the subquery
    # step follows the range: Grafana's $__interval, ~1,000 points whatever the range)
    energy_in_range = preferred_increase("energy_kilowatt_hours_total", "$__range", "$__interval")
    energy_per_device = f"sum by (house, room, shelf, device) ({energy_in_range})"
    power = preferred("power_watts")
    panels = [
        (
            6,
            4,
            stat_panel(
                "Total power now",
                "watt",
                "Sum over the selected plugs (each once).",
                q(f"sum({power})", "total", ()),
            ),
        ),
        (
            6,
            4,
            stat_panel(
                "Plugs up",
                "none",
                "Plugs with at least one protocol up.",
                q(
                    f"count(max by (device_id) ({both('up')}) == 1) or vector(0)",
                    "up",
                    (),
                ),
            ),
        ),
        (
            6,
            4,
            stat_panel(
                "Plugs down",
                "none",
                "Plugs with no protocol up (every reader reports up = 0).",
                q(
                    f"count(max by (device_id) ({both('up')}) == 0) or vector(0)",
                    "down",
                    (),
                ),
                thresholds=[(None, "green"), (1, "red")],
            ),
        ),
        (
            6,
            4,
            stat_panel(
                "Energy today",
                "kwatth",
                "Energy since midnight in the dashboard's time zone (the panel's time range is"
                " 'today so far'), selected plugs, each once.",
                q(f"sum({energy_in_range})", "kWh", ()),
            ).time_from("now/d"),
        ),
        (
            16,
            9,
            ts(
                "Power per device",
                "watt",
                "Active power per plug (per outlet on strips).",
                q(power, "{{device}} {{outlet}}", PLUG),
            ),
        ),
        (
            8,
            9,
            bars(
                "Top consumers now",
                "watt",
                "The 10 plugs (outlets) drawing the most power now.",
                q(f"topk(10, {power})", "{{device}} {{outlet}}", PLUG, instant=True),
            ),
        ),
        (
            12,
            8,
            ts(
                "Power per room",
                "watt",
                "Sum of the plugs in each room.",
                q(f"sum by (house, room) ({power})", "{{house}}/{{room}}", ("house", "room")),
                stack=True,
            ),
        ),
        (
            12,
            8,
            ts(
                "Energy per day per room",
                "kwatth",
                "Counter increase per day (bars at 1 d resolution, days as the data source"
                " aligns them: UTC): *_energy_kilowatt_hours_total, which every metered plug"
                " has (a lifetime counter, or its month figure).",
                q(
                    "sum by (house, room) ("
                    + preferred_increase("energy_kilowatt_hours_total", "1d", DAY_STEP)
                    + ")",
                    "{{house}}/{{room}}",
                    ("house", "room"),
                    interval="1d",
                ),
                bars=True,
                stack=True,
            ),
        ),
        (
            12,
            8,
            bars(
                "Top consumers in the time range",
                "kwatth",
                "Energy per plug over the dashboard's time range.",
                q(
                    f"topk(10, {energy_per_device})",
                    "{{device}}",
                    ("house", "room", "shelf", "device"),
                    instant=True,
                ),
            ),
        ),
        (
            12,
            8,
            bars(
                "Cost per room in the time range (${currency})",
                "none",
                "Energy over the dashboard's time range times the price variable"
                " (${currency} per kWh).",
                q(
                    f"sum by (house, room) ({energy_in_range}) * $price",
                    "{{house}}/{{room}}",
                    ("house", "room"),
                    instant=True,
                ),
            ).decimals(2),
        ),
        (
            12,
            8,
            bars(
                "Cost per device in the time range (${currency})",
                "none",
                "The 10 plugs that cost most over the dashboard's time range"
                " (${currency}, at the price variable).",
                q(
                    f"topk(10, {energy_per_device}) * $price",
                    "{{device}}",
                    ("house", "room", "shelf", "device"),
                    instant=True,
                ),
            ).decimals(2),
        ),
        (
            12,
            8,
            ts(
                "Voltage",
                "volt",
                "Where the plug measures it.",
                q(preferred("voltage_volts"), "{{device}} {{outlet}}", PLUG),
            ),
        ),
        (
            12,
            8,
            ts(
                "Current",
                "amp",
                "Where the plug measures it.",
                q(preferred("current_amperes"), "{{device}} {{outlet}}", PLUG),
            ),
        ),
        (
            12,
            8,
            table_panel(
                "Device availability",
                "none",
                "up per plug and protocol (1 = the last poll succeeded, 0 = it failed).",
                q(
                    f"max by ({', '.join(DEVICE)}, protocol) ({both('up')})",
                    "{{device}} {{protocol}}",
                    (*DEVICE, "protocol"),
                    instant=True,
                    table=True,
                ),
            ).mappings(
                [
                    dm.ValueMap(
                        options={
                            "0": dm.ValueMappingResult(text="down", color="red"),
                            "1": dm.ValueMappingResult(text="up", color="green"),
                        }
                    )
                ]
            ),
        ),
    ]
    for i, (w, h, p) in enumerate(panels, start=1):
        d = d.with_panel(p.id(i).grid_pos(g.pos(w, h)))
    return d


def compare_dashboard() -> db.Dashboard:
    g = Grid()
    d = base(
        "otelpower-compare",
        "otelpower: native vs Matter",
        "The same plugs read natively (their maker's own protocol) and over Matter: readings"
        " side by side, their difference, poll latency, freshness and availability per protocol.",
        with_preference=False,
    )
    native, matter = named(direct(), "power_watts", SEL), named(standard(), "power_watts", SEL)
    # Both sides carry the same identity labels (house/room/shelf/device/device_id, outlet on
    # strips that Matter reports per outlet too); only protocol and instance differ. on(device_id)
    # would keep nothing but device_id in the result and fail on strips (one device_id per
    # outlet), so the match ignores the two labels that differ instead.
    diff = f"{native} - ignoring(protocol, instance) {matter}"
    rel = f"100 * ({diff}) / ignoring(protocol, instance) ({matter} > 0)"
    matched = (*DEVICE, "job")
    up = both("up")
    panels: list = []

    def section(title: str) -> None:
        panels.append((None, None, db.Row(title)))

    section("Readings")
    panels += [
        (
            24,
            9,
            ts(
                "Power: native vs Matter",
                "watt",
                "Plugs read both ways.",
                q(
                    f"{native} and on(device_id) {matter}",
                    "{{device}} {{outlet}} {{protocol}}",
                    (*DEVICE, *IDENTITY, "protocol"),
                ),
                q(
                    f"{matter} and on(device_id) {native}",
                    "{{device}} {{outlet}} {{protocol}}",
                    (*DEVICE, *IDENTITY, "protocol"),
                    ref="B",
                ),
            ),
        ),
        (
            12,
            8,
            ts(
                "Difference native - Matter",
                "watt",
                "Absolute difference of the two readings of the same plug.",
                q(diff, "{{device}} {{outlet}}", matched),
            ),
        ),
        (
            12,
            8,
            ts(
                "Relative difference (native - Matter) / Matter",
                "percent",
                "In percent of the Matter reading (plugs drawing 0 W are left out).",
                q(rel, "{{device}} {{outlet}}", matched),
            ),
        ),
    ]
    section("Poll health")
    hist = f"otelpower_poll_duration_seconds_bucket{{{SELF_SEL}}}"
    panels += [
        (
            12,
            8,
            ts(
                "Poll duration p50 / p99 per protocol",
                "s",
                "From the otelpower_poll_duration_seconds histogram (every poll of every plug).",
                q(
                    f"histogram_quantile(0.5, sum by (protocol, le) "
                    f"(rate({hist}[$__rate_interval])))",
                    "p50 {{protocol}}",
                    ("protocol",),
                ),
                q(
                    f"histogram_quantile(0.99, sum by (protocol, le) "
                    f"(rate({hist}[$__rate_interval])))",
                    "p99 {{protocol}}",
                    ("protocol",),
                    ref="B",
                ),
            ),
        ),
        (
            12,
            8,
            bars(
                "Time since the last successful poll",
                "s",
                "Per plug and protocol; grows while a plug fails.",
                q(
                    f"time() - otelpower_last_success_timestamp_seconds{{{SELF_SEL}}}",
                    "{{device}} {{protocol}}",
                    ("device", "device_id", "protocol", *IDENTITY),
                    instant=True,
                ),
            ),
        ),
        (
            12,
            8,
            ts(
                "Poll errors by kind",
                "short",
                "Failed polls in each interval: offline, timeout, auth_failed, unsupported, error.",
                q(
                    f"sum by (protocol, kind) "
                    f"(increase(otelpower_poll_errors_total{{{SELF_SEL}}}[$__rate_interval]))",
                    "{{protocol}} {{kind}}",
                    ("protocol", "kind"),
                ),
                bars=True,
                stack=True,
            ),
        ),
        (
            12,
            8,
            ts(
                "OTLP exports and stale markers",
                "short",
                "Exports per interval by result, and stale markers sent for vanished series.",
                q(
                    "sum by (result) (increase(otelpower_exports_total[$__rate_interval]))",
                    "exports {{result}}",
                    ("result",),
                ),
                q(
                    "sum(increase(otelpower_stale_markers_sent_total[$__rate_interval]))",
                    "stale markers",
                    (),
                    ref="B",
                ),
            ),
        ),
    ]
    section("Availability")
    avail_labels = (*DEVICE, *IDENTITY, "protocol")
    panels += [
        (
            8,
            8,
            bars(
                "Availability in the time range",
                "percentunit",
                "Share of samples with up = 1, per plug and protocol.",
                q(
                    f"avg_over_time({up}[$__range])",
                    "{{device}} {{protocol}}",
                    avail_labels,
                    instant=True,
                ),
            )
            .min(0)
            .max(1),
        ),
        (
            8,
            8,
            bars(
                "up changes (recoveries + failures)",
                "short",
                "How often up flipped in the time range, per plug and protocol.",
                q(
                    f"changes({up}[$__range])",
                    "{{device}} {{protocol}}",
                    avail_labels,
                    instant=True,
                ),
            ),
        ),
        (
            8,
            8,
            bars(
                "Samples with up = 0",
                "short",
                "Samples in the time range where the plug was down (count - sum of a 0/1 series).",
                q(
                    f"count_over_time({up}[$__range]) - sum_over_time({up}[$__range])",
                    "{{device}} {{protocol}}",
                    avail_labels,
                    instant=True,
                ),
            ),
        ),
        (
            12,
            6,
            ts(
                "up per protocol",
                "none",
                "1 while the last poll succeeded.",
                q(up, "{{device}} {{protocol}}", avail_labels),
            ),
        ),
        (
            12,
            6,
            stat_panel(
                "Matter server connected",
                "none",
                "otelpower_matter_server_connected per otelpower instance.",
                q(
                    "otelpower_matter_server_connected",
                    "{{instance}} {{server}}",
                    ("server", *IDENTITY),
                ),
                thresholds=UP_THRESHOLDS,
            ),
        ),
    ]
    for i, (w, h, p) in enumerate(panels, start=1):
        if w is None:
            d = d.with_row(p.id(i).grid_pos(g.row()))
        else:
            d = d.with_panel(p.id(i).grid_pos(g.pos(w, h)))
    return d


# --- output ------------------------------------------------------------------------------------

DASHBOARDS = {
    "otelpower-power.json": power_dashboard,
    "otelpower-compare.json": compare_dashboard,
}


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard model (a JSON-able dict, what Grafana imports) of every dashboard,
    built from the registry as it is now (a reader registered before the call is in every
    panel's queries). Refills ``LABELS``: each query expression -> the label names of its
    result series (``outlet`` may come on top: strips)."""
    LABELS.clear()
    return {
        name: json.loads(json.dumps(build().build(), cls=JSONEncoder))
        for name, build in DASHBOARDS.items()
    }


def query_labels() -> dict[str, frozenset[str]]:
    """Each query expression of ``dashboards()`` -> the label names its result series carry
    (a copy, from the registry as it is now)."""
    dashboards()
    return dict(LABELS)


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard (as committed; see ``dashboards()``)."""
    return {
        name: json.dumps(model, indent=2, sort_keys=True) + "\n"
        for name, model in dashboards().items()
    }


# the template's placeholders -> a regex group of metric-name prefixes, from the registry
PLACEHOLDERS = {"@ANY@": any_path, "@DIRECT@": direct, "@STANDARD@": standard}


def rules() -> str:
    """alerts/otelpower-rules.yaml: the PrometheusRule (YAML text) from the template
    ``otelpower-rules.yaml.in``, its metric names for every prefix in the registry as it is
    now. ``yaml.safe_load(rules())["spec"]["groups"]`` are the rule groups; PlugDown,
    PlugAuthFailure and ReaderDown cover every registered vendor and protocol,
    NativeMatterDisagreement every maker's own reader against Matter."""
    text = "".join(
        line
        for line in RULES_TEMPLATE.read_text().splitlines(keepends=True)
        if not line.startswith("#%")
    ).lstrip("\n")
    for placeholder, group in PLACEHOLDERS.items():
        text = text.replace(placeholder, group())
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, f"{RULES_TEMPLATE.name}: unknown placeholders {left}"
    return text


def _yaml(obj: Any) -> str:
    """YAML with multi-line strings as literal blocks (the rules' expressions stay readable)."""

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(obj, Dumper=Dumper, sort_keys=False, width=100)


def vmalert_rules() -> str:
    """The rule groups of the PrometheusRule, as a vmalert / Prometheus rule file."""
    rule = yaml.safe_load(rules())
    header = (
        "# Generated by dashboards/generate.py from alerts/otelpower-rules.yaml (spec.groups);\n"
        "# do not edit. For vmalert -rule=... or Prometheus rule_files.\n"
    )
    return header + _yaml(rule["spec"])


def vmrule() -> str:
    """The PrometheusRule as a VMRule (the VictoriaMetrics operator's kind): same metadata and
    groups, for k8s/components/vmrule."""
    rule = yaml.safe_load(rules())
    rule["apiVersion"], rule["kind"] = "operator.victoriametrics.com/v1beta1", "VMRule"
    header = (
        "# Generated by dashboards/generate.py from alerts/otelpower-rules.yaml; do not edit.\n"
        "# The same rules for the VictoriaMetrics operator (vmalert), no prometheus-operator.\n"
    )
    return header + _yaml(rule)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else HERE
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out_dir / name).write_text(text)
    rules_out = out_dir / "vmalert-rules.yaml" if len(argv) > 1 else VMALERT_RULES
    (out_dir / RULES.name if len(argv) > 1 else RULES).write_text(rules())
    rules_out.write_text(vmalert_rules())
    (out_dir / VMRULE.name if len(argv) > 1 else VMRULE).write_text(vmrule())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
