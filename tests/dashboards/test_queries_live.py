"""LIVE: every dashboard query and alert rule against real VictoriaMetrics and Prometheus.

Emulated plugs (a KP115 mirrored by a virtual Matter plug, an HS300 strip, P110s over KLAP
and TPAP, a P304M), a plug that refuses otelpower's credentials and a configured plug that
does not answer are read by otelpower with ``--protocol all``. OTLP goes to the real
collector, which remote-writes to a real VictoriaMetrics (tests/pipeline fixtures); a real
Prometheus scrapes /metrics with the target labels a ServiceMonitor gets (as a plain
kube-prometheus-stack would, without the collector).

On each backend: after ~25 s of data every panel query (variables as "All", both protocol
preferences, Grafana's built-ins as in helpers.BUILTIN) must return series with exactly the
label set dashboards/generate.py declares for it; every alert rule's expression must fire for
exactly the plugs it is about (PlugDown: the dead and the refusing plug; PlugAuthFailure:
the refusing one) and stay quiet otherwise; then NativeMatterDisagreement (the Matter path
reads 1.5x), MatterServerDisconnected (the server stops) and ReaderDown (otelpower stops; the
absent() rule on the empty TSDB of an hour ago) must fire. Needs the collector,
VictoriaMetrics, Prometheus and the Matter test bed (`make collector victoria-metrics
prometheus setup`), else it skips (fails in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from harness.backends import Prometheus, QueryApi, VictoriaMetrics
from harness.ports import free_port
from harness.wait import wait_for
from otelpower import app
from otelpower.core.quantities import QUANTITIES
from otelpower.readers import registry
from otelpower.readers.matter.reader import redact_url
from otelpower.sim import PlugOptions, ShellyOptions, builtin_profiles
from otelpower.sim.faults import Fault
from tests.conftest import make_config
from tests.readers.test_plugin import SPEC as ACME
from tests.readers.test_plugin import AcmePlug

from .helpers import RULES_FILE, expand, generator, targets, variable_queries

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]
pytest.importorskip("aioshelly")  # the dev group installs it (the Shelly reader's client)

PROFILES = {p.stem: p for p in builtin_profiles()}
DATA_SECONDS = 25.0
DEAD_MAC = "48:22:54:ee:ee:01"
ACME_LIVE, ACME_DEAD = "48:22:54:ee:ee:a1", "48:22:54:ee:ee:a2"
SHELLY_DEAD = "34:98:7a:ee:ee:01"
# what prometheus-operator adds to a ServiceMonitor target's series besides job and instance
TARGET_LABELS = {"namespace", "service", "pod", "container", "endpoint"}


def matter_bed_missing() -> list[str]:
    from tests.matter.conftest import _missing

    return _missing()


@dataclass
class Generated:
    """The dashboards, their queries' label sets and the rules, generated in-process from
    the registry as the test has it (with the Acme reader of tests/readers/test_plugin)."""

    dashboards: dict[str, dict] = field(default_factory=dict)
    labels: dict[str, frozenset[str]] = field(default_factory=dict)
    rules: str = ""

    def fill(self) -> None:
        module = generator()
        self.dashboards = module.dashboards()
        self.labels = dict(module.query_labels())
        self.rules = module.rules()


GENERATED = Generated()


def declared_labels() -> dict[str, frozenset[str]]:
    return GENERATED.labels


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
    # another maker's polling reader (the plug-in test's), registered for this test only:
    # every panel and rule must cover its plugs with no edit to the generator
    acme = AcmePlug(ACME_LIVE, 30.0)
    await acme.start()
    registry.register(ACME)
    try:
        GENERATED.fill()
        await run_the_bed(simulator, victoria_metrics, prometheus_binary, tmp_path, acme)
    finally:
        registry.unregister(ACME.name)
        GENERATED.__init__()  # the committed files again
        await acme.stop()


async def run_the_bed(simulator, vm, prometheus_binary: Path, tmp_path: Path, acme) -> None:
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
    # A plug owned by another account: otelpower's credentials are refused (auth_failed).
    (refusing,) = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"], username="other@example.com", password="theirs")]
    )
    # Shelly (the second maker with a reader of its own): a 4-channel device, and a dead one
    (shelly,) = await simulator.start_shelly([ShellyOptions(model="pro-4pm")])
    mirrored = plugs[0].mac
    data = simulator.config_dict()
    dead = {"room": "garage", "shelf": "wall", "device": "shelly-dead"}
    shelly_dead = {"host": f"127.0.0.1:{free_port()}"}  # nothing listens
    data["devices"].append({"device_id": SHELLY_DEAD, **dead, "shelly": shelly_dead})
    for mac, host, name in ((ACME_LIVE, acme.host, "acme-lamp"), (ACME_DEAD, None, "acme-dead")):
        host = host or f"127.0.0.1:{free_port()}"  # nothing listens: up 0, PlugDown
        where = {"room": "garage", "shelf": "bench", "device": name}
        data["devices"].append({"device_id": mac, **where, "acme": {"host": host}})
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
    port = free_port()
    async with matter_mirror(plugs[0], tmp_path) as mirror:
        for device in data["devices"]:
            if device["device_id"] == mirrored:
                device["matter"] = {"node_id": mirror.node_id}
        config = make_config(
            {**data, "matter": {"url": mirror.url}},
            poll={"interval": 1, "timeout": 2},
            prometheus={"host": "127.0.0.1", "port": port},
        )
        async with scraping(port, prometheus_binary, tmp_path) as prom:
            backends = (vm, prom)
            async with app.Runtime(config, "all"):
                await wait_for(
                    lambda: all(
                        b.query("tplink_matter_power_watts")
                        and b.query("tplink_native_up == 0")
                        and b.query("acme_native_power_watts")
                        and b.query("acme_native_up == 0")
                        and len(b.query("shelly_native_power_watts")) == 4
                        and b.query("shelly_native_up == 0")
                        for b in backends
                    ),
                    timeout=30,
                    interval=0.5,
                    in_thread=True,
                )
                await asyncio.sleep(DATA_SECONDS)
                problems = []
                for backend in backends:
                    problems += await asyncio.to_thread(
                        run_everything, backend, mirrored, [*plugs, acme, shelly], data["devices"]
                    )
                    problems += await asyncio.to_thread(
                        rules_fire_only_for,
                        backend,
                        QUIET
                        | {
                            "PlugDown": {DEAD_MAC, refusing.mac, ACME_DEAD, SHELLY_DEAD},
                            "PlugAuthFailure": {refusing.mac},
                        },
                    )
                    # a fresh TSDB (before any sample): only the absent() rule fires
                    problems += await asyncio.to_thread(
                        rules_fire_only_for, backend, QUIET | {"ReaderDown#2": {"*"}}, 3600
                    )
                # The Matter path reads 1.5 times the power: they disagree.
                mirror.power_factor = 1.5
                problems += await until_rules_fire(backends, "NativeMatterDisagreement", {mirrored})
                mirror.power_factor = 1.0
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
                # The Matter server goes away.
                assert mirror.server is not None
                await mirror.server.stop()
                problems += await until_rules_fire(
                    backends, "MatterServerDisconnected", {redact_url(mirror.url)}
                )
            # otelpower stops: both readers' series are gone
            problems += await until_rules_fire(backends, "ReaderDown", {"native", "matter"})
    assert not problems, "\n".join(problems)


# rule (a repeated alert name gets #2) -> who it fires for, when nothing is wrong
QUIET: dict[str, set[str]] = {
    "PlugDown": set(),
    "PlugAuthFailure": set(),
    "NativeMatterDisagreement": set(),
    "ReaderDown": set(),
    "ReaderDown#2": set(),
    "MatterServerDisconnected": set(),
    "CollectorRemoteWriteFailing": set(),
    "CollectorWALFilling": set(),
    "CollectorRefusingData": set(),
    "CollectorWALSetAside": set(),
    "CollectorSendFailed": set(),
    "OtelpowerExportBacklog": set(),
    "OtelpowerExportDropping": set(),
}


def rules() -> dict[str, str]:
    """Every alert rule's expression by name (``#2`` for a second rule of the same name)."""
    out: dict[str, str] = {}
    for group in yaml.safe_load(GENERATED.rules or RULES_FILE.read_text())["spec"]["groups"]:
        for r in group["rules"]:
            name = r["alert"] if r["alert"] not in out else f"{r['alert']}#2"
            out[name] = r["expr"]
    return out


def firing(backend: QueryApi, expr: str, ago: float = 0) -> set[str]:
    """Who a rule's expression returns (its ``for:`` aside): the plugs' device_id, else the
    protocol or the Matter server, else ``*``."""
    at = time.time() - ago if ago else None
    return {
        m.get("device_id") or m.get("protocol") or m.get("server") or "*"
        for m in (r["metric"] for r in backend.query(expr, at=at))
    }


def rules_fire_only_for(backend: QueryApi, expected: dict[str, set[str]], ago: float = 0):
    """Each rule fires for exactly ``expected[rule]`` (empty: it stays quiet)."""
    exprs = rules()
    assert set(exprs) == set(expected), sorted(exprs)
    problems = []
    for name, expr in exprs.items():
        try:
            got = firing(backend, expr, ago)
        except AssertionError as e:  # a query the backend refuses
            problems.append(f"{backend.name}: alert {name}: {e}")
            continue
        if got != expected[name]:
            when = f" {ago:g} s ago" if ago else ""
            problems.append(
                f"{backend.name}: {name}{when} fires for {got}, expected {expected[name]}"
            )
    return problems


async def until_rules_fire(backends, name: str, who: set[str]) -> list[str]:
    """Wait (bounded) until rule ``name`` fires for exactly ``who`` on every backend."""
    expr = rules()[name]
    try:
        await wait_for(
            lambda: all(firing(b, expr) == who for b in backends),
            timeout=30,
            interval=0.5,
            in_thread=True,
        )
    except TimeoutError:
        got = {b.name: firing(b, expr) for b in backends}
        return [f"{name}: fires for {got}, expected {who} on every backend"]
    return []


@contextlib.asynccontextmanager
async def scraping(port: int, binary: Path, tmp_path: Path) -> AsyncIterator[Prometheus]:
    """A Prometheus scraping otelpower's /metrics on ``port`` every second, with the target
    labels prometheus-operator gives a ServiceMonitor's target (as kube-prometheus-stack
    would, without the collector)."""
    target = (  # TARGET_LABELS and job
        "{job: otelpower-native, namespace: otelpower, service: otelpower-native,"
        " pod: otelpower-native-0, container: otelpower, endpoint: metrics}"
    )
    prom = Prometheus(
        tmp_path,
        "  - job_name: serviceMonitor/otelpower/otelpower-native/0\n"
        "    scrape_interval: 1s\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}'], labels: {target}}}]\n",
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

    for dashboard, name, query in variable_queries(GENERATED.dashboards):
        m = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
        assert m, query
        selector = expand(m.group(1))
        values = vm.api(f"label/{m.group(2)}/values", {"match[]": selector})
        if not values:
            problems.append(f"{vm.name}: {dashboard} variable {name}: {query} has no values")

    for target in targets(GENERATED.dashboards):
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
            # panels that keep a series' origin (job, instance) keep all its target labels
            extra = {"outlet"} | (TARGET_LABELS if "job" in want else set())
            for item in result:
                got = set(item["metric"]) - {"__name__"}
                if not (want <= got <= want | extra):
                    problems.append(f"{where}: labels {sorted(got)}, expected {sorted(want)}")
                    break
            if "power_watts" in target.expr and "protocol_preference" in target.expr:
                problems += check_each_plug_once(where, result, live_ids)
            # where a TP-Link plug read natively only is, the other maker's plug is too
            ids = {r["metric"].get("device_id") for r in result}
            for other, mac in ((ACME, ACME_LIVE), (registry.get("shelly"), plugs[-1].mac)):
                if plugs[1].mac in ids and about(other, target.expr) and mac not in ids:
                    problems.append(f"{where}: no series of {other.name}'s {mac}\n  {expr}")
            if "energy_kilowatt_hours_total" in target.expr and "device" in want:
                problems += check_every_plug_has_energy(where, result, names)
    # The comparison panels must line up the mirrored plug's two readings.
    diff = vm.query(
        "tplink_native_power_watts - ignoring(protocol, instance) tplink_matter_power_watts",
        flush=False,
    )
    if [r["metric"]["device_id"] for r in diff] != [mirrored]:
        problems.append(f"{vm.name}: native - matter matches {diff}, expected only {mirrored}")

    return problems


def about(spec, expr: str) -> bool:
    """A query of quantities ``spec``'s reader exports (and of no other)."""
    mine = {q.key for q in spec.quantities}
    return any(k in expr for k in mine) and not any(
        q.key in expr for q in QUANTITIES.values() if q.key not in mine
    )


def check_fallback(vm: VictoriaMetrics, mirrored: str) -> list[str]:
    unified = next(t for t in targets(GENERATED.dashboards) if t.panel == "Power per device")
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
    if not any(r["metric"].get("device_id") for r in result):
        return []  # aggregated (sum by room, topk) panels
    keys = [(r["metric"].get("device_id"), r["metric"].get("outlet")) for r in result]
    out = []
    if len(keys) != len(set(keys)):
        out.append(f"{where}: a plug appears twice: {sorted(keys)}")
    ids = {k[0] for k in keys}
    if not live_ids <= ids:
        out.append(f"{where}: plugs missing: {live_ids - ids}")
    return out
