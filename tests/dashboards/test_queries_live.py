"""LIVE: every dashboard query and alert expression against real VictoriaMetrics and Prometheus.

Emulated plugs (a KP115 mirrored by a virtual Matter plug, an HS300 strip, a P110) and one
configured plug that does not answer are read by otelpower with ``--protocol all``; OTLP goes
to the real collector, which remote-writes to a real VictoriaMetrics (tests/pipeline
fixtures), and a real Prometheus scrapes /metrics (as a plain kube-prometheus-stack would).
After ~25 s of data, on each backend, every panel query (variables as "All", both protocol
preferences, Grafana's built-ins as in helpers.BUILTIN) must return series with
exactly the label set dashboards/generate.py declares for it; every alert expression must
parse (it may return nothing). About 40 s; needs the collector, VictoriaMetrics and the
Matter test bed (`make collector victoria-metrics prometheus setup`), else it skips (fails in
CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from harness.backends import Prometheus, QueryApi, VictoriaMetrics
from harness.ports import free_port
from harness.wait import wait_for
from otelpower import app
from otelpower.sim import PlugOptions, builtin_profiles
from otelpower.sim.faults import Fault
from tests.conftest import make_config

from .helpers import RULES_FILE, expand, generator, targets, variable_queries

pytestmark = [pytest.mark.live, pytest.mark.timeout(150)]

PROFILES = {p.stem: p for p in builtin_profiles()}
DATA_SECONDS = 25.0
DEAD_MAC = "48:22:54:ee:ee:01"


def matter_bed_missing() -> list[str]:
    from tests.matter.conftest import _missing

    return _missing()


def declared_labels() -> dict[str, frozenset[str]]:
    module = generator()
    module.render()
    return module.LABELS


async def test_every_query_returns_data(
    simulator,
    otlp_env: float,
    victoria_metrics: VictoriaMetrics,
    prometheus_binary: Path,
    tmp_path: Path,
) -> None:
    missing = matter_bed_missing()
    if missing and not os.environ.get("CI"):
        pytest.skip(f"Matter test bed not installed ({', '.join(missing)}): make setup")
    from otelpower.sim.matter_mirror import matter_mirror

    plugs = await simulator.start(
        [
            PlugOptions(PROFILES["kp115_xor"]),  # has an energy counter, mirrored over Matter
            PlugOptions(PROFILES["hs300_xor"]),  # strip: outlet labels
            PlugOptions(PROFILES["p110_klap"]),  # energy counter: its month figure
            PlugOptions(PROFILES["p110_tpap"]),  # read through the tapo client
            PlugOptions(PROFILES["p304m_klap"]),  # outlets with month figures
        ]
    )
    mirrored = plugs[0].mac
    data = simulator.config_dict()
    # A configured plug nobody answers for: up = 0, status offline, poll errors.
    data["devices"].append(
        {
            "device_id": DEAD_MAC,
            "room": "attic",
            "shelf": "top",
            "device": "dead",
            "native": {"host": "127.0.0.1", "port": free_port()},
        }
    )
    async with matter_mirror(plugs[0], tmp_path) as mirror:
        for device in data["devices"]:
            if device["device_id"] == mirrored:
                device["matter"] = {"node_id": mirror.node_id}
        config = make_config(
            {**data, "matter": {"url": mirror.url}},
            poll={"interval": 1, "timeout": 2},
            prometheus={"host": "127.0.0.1", "port": 0},
        )
        async with (
            app.Runtime(config, "all") as rt,
            scraping(rt, prometheus_binary, tmp_path) as prom,
        ):
            vm = victoria_metrics
            await wait_for(
                lambda: all(
                    b.query("tplink_matter_power_watts") and b.query("tplink_native_up == 0")
                    for b in (vm, prom)
                ),
                timeout=30,
                interval=0.5,
                in_thread=True,
            )
            await asyncio.sleep(DATA_SECONDS)
            problems = []
            for backend in (vm, prom):
                problems += await asyncio.to_thread(
                    run_everything, backend, mirrored, plugs, data["devices"]
                )
            # Fallback: the mirrored plug's native path fails; the unified panels (native
            # preferred) now show it from Matter, still once.
            plugs[0].fault = Fault.OFFLINE
            await wait_for(
                lambda: vm.query(f'tplink_native_up{{device_id="{mirrored}"}} == 0'),
                timeout=15,
                interval=0.5,
                in_thread=True,
            )
            problems += await asyncio.to_thread(check_fallback, vm, mirrored)
    assert not problems, "\n".join(problems)


@contextlib.asynccontextmanager
async def scraping(rt: app.Runtime, binary: Path, tmp_path: Path) -> AsyncIterator[Prometheus]:
    """A Prometheus scraping the runtime's /metrics every second (as kube-prometheus-stack
    would, without the collector)."""
    prom = Prometheus(
        tmp_path,
        "  - job_name: otelpower\n"
        "    scrape_interval: 1s\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{rt.prometheus_port}']}}]\n",
        binary=binary,
    )
    await asyncio.to_thread(prom.start)
    try:
        yield prom
    finally:
        await asyncio.to_thread(prom.stop)


def check_every_plug_has_energy(where: str, result: list[dict], names: set[str]) -> list[str]:
    """Energy panels per device: every live plug is in them, whatever counter it has."""
    got = {r["metric"].get("device") for r in result}
    return [f"{where}: no energy for {sorted(names - got)}"] if not names <= got else []


def run_everything(vm: QueryApi, mirrored: str, plugs: list, devices: list[dict]) -> list[str]:
    """Every variable, panel and rule on one backend (``vm`` may be Prometheus too)."""
    problems: list[str] = []
    labels = declared_labels()
    vm.flush()
    live_ids = {p.mac for p in plugs}
    names = {d["device"] for d in devices if d["device_id"] in live_ids}

    for dashboard, name, query in variable_queries():
        m = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
        assert m, query
        selector = expand(m.group(1))
        values = vm.api(f"label/{m.group(2)}/values", {"match[]": selector})
        if not values:
            problems.append(f"{vm.name}: {dashboard} variable {name}: {query} has no values")

    for target in targets():
        prefs = ("native", "matter") if "protocol_preference" in target.expr else ("native",)
        for pref in prefs:
            expr = expand(target.expr, pref)
            where = f"{vm.name}: {target} [{pref}]"
            try:
                result = vm.query(expr, flush=False)
            except AssertionError as e:
                problems.append(f"{where}: query failed: {e}\n  {expr}")
                continue
            if os.environ.get("DASHBOARDS_DEBUG"):
                print(where, len(result), [(r["metric"], r["value"][1]) for r in result][:3])
            if not result:
                problems.append(f"{where}: no data\n  {expr}")
                continue
            want = labels[target.expr]
            for item in result:
                got = set(item["metric"]) - {"__name__"}
                if not (want <= got <= want | {"outlet"}):
                    problems.append(f"{where}: labels {sorted(got)}, expected {sorted(want)}")
                    break
            if "power_watts" in target.expr and "protocol_preference" in target.expr:
                problems += check_each_plug_once(where, result, live_ids)
            if "energy_kilowatt_hours_total" in target.expr and "device" in want:
                problems += check_every_plug_has_energy(where, result, names)
    # The comparison panels must line up the mirrored plug's two readings.
    diff = vm.query(
        "tplink_native_power_watts - ignoring(protocol, instance) tplink_matter_power_watts",
        flush=False,
    )
    if [r["metric"]["device_id"] for r in diff] != [mirrored]:
        problems.append(f"{vm.name}: native - matter matches {diff}, expected only {mirrored}")

    rule = yaml.safe_load(RULES_FILE.read_text())
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            try:
                vm.query(r["expr"], flush=False)  # may be empty; a syntax error raises
            except AssertionError as e:
                problems.append(f"{vm.name}: alert {r['alert']}: {e}")
    plug_down = [r for r in vm.query("tplink_native_up == 0", flush=False)]
    if [r["metric"]["device_id"] for r in plug_down] != [DEAD_MAC]:
        problems.append(f"{vm.name}: expected only the dead plug down, got {plug_down}")
    return problems


def check_fallback(vm: VictoriaMetrics, mirrored: str) -> list[str]:
    unified = next(t for t in targets() if t.panel == "Power per device")
    got = {
        (r["metric"]["device_id"], r["metric"].get("outlet")): float(r["value"][1])
        for r in vm.query(expand(unified.expr, "native"))
    }
    matter = vm.query(f'tplink_matter_power_watts{{device_id="{mirrored}"}}', flush=False)
    native = vm.query(f'tplink_native_power_watts{{device_id="{mirrored}"}}', flush=False)
    if native or not matter:
        return [f"fallback scenario not reached: native {native}, matter {matter}"]
    if (mirrored, None) not in got:
        return [f"fallback: {mirrored} missing from the unified power while native is down: {got}"]
    # Same instant: the unified series minus the Matter reading of the plug.
    delta = vm.query(
        f"max by (device_id) ({expand(unified.expr, 'native')})"
        f' - on(device_id) tplink_matter_power_watts{{device_id="{mirrored}"}}',
        flush=False,
    )
    if len(delta) != 1 or float(delta[0]["value"][1]) != 0:
        return [f"fallback: unified power is not the Matter value: {delta}"]
    return []


def check_each_plug_once(where: str, result: list[dict], live_ids: set[str]) -> list[str]:
    """Unified power: one series per plug (per outlet on strips), every live plug present."""
    if len(result) == 1 and not result[0]["metric"].get("device_id"):
        return []  # aggregated (sum / topk) panels
    keys = [(r["metric"].get("device_id"), r["metric"].get("outlet")) for r in result]
    out = []
    if len(keys) != len(set(keys)):
        out.append(f"{where}: a plug appears twice: {sorted(keys)}")
    ids = {k[0] for k in keys}
    if not live_ids <= ids:
        out.append(f"{where}: plugs missing: {live_ids - ids}")
    return out
