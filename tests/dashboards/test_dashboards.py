"""Fast checks: the committed dashboards are what dashboards/generate.py generates, their
structure is sound, and the PrometheusRule is well-formed (and valid against the CRD model)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from otelpower.core import quantities
from otelpower.readers import registry
from otelpower.readers.base import ReaderSpec

from .helpers import (
    DASHBOARD_DIR,
    DASHBOARD_FILES,
    ROOT,
    RULES_FILE,
    VMALERT_FILE,
    expand,
    generator,
    load,
    panels,
    targets,
)

K8S_VALIDATE = ROOT / "tools" / "k8s-validate"
ALERTS = {
    "PlugDown",
    "ReaderDown",
    "MatterServerDisconnected",
    "PlugAuthFailure",
    "NativeMatterDisagreement",
    "CollectorRemoteWriteFailing",
    "CollectorWALFilling",
    "CollectorRefusingData",
    "CollectorWALSetAside",
    "CollectorSendFailed",
    "OtelpowerExportBacklog",
    "OtelpowerExportDropping",
}


def test_committed_dashboards_are_generated() -> None:
    gen = generator()
    rendered = gen.render()
    assert set(rendered) == set(DASHBOARD_FILES)
    for name, text in rendered.items():
        committed = (DASHBOARD_DIR / name).read_text()
        assert committed == text, f"dashboards/{name} is stale: run `make dashboards`"
    assert VMALERT_FILE.read_text() == gen.vmalert_rules(), (
        "alerts/vmalert-rules.yaml is stale: run `make dashboards`"
    )


def test_every_query_has_its_label_set_declared() -> None:
    gen = generator()
    gen.render()
    for t in targets():
        assert t.expr in gen.LABELS, t


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_dashboard_structure(name: str) -> None:
    dash = load(name)
    assert dash["uid"] == name.removesuffix(".json")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for var in ("house", "room", "shelf", "device"):
        v = variables[var]
        assert v["type"] == "query" and v["multi"] and v["includeAll"], v
        assert v["query"].startswith("label_values(") and v["query"].endswith(f", {var})")
    if name == "otelpower-power.json":
        pref = variables["protocol_preference"]
        assert pref["type"] == "custom" and pref["query"] == "native,matter"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            expand(t["expr"])  # no variable left unknown
            # Balanced brackets: a cheap syntax guard (the live test runs every query).
            for o, c in ("()", "{}", "[]"):
                assert t["expr"].count(o) == t["expr"].count(c), (p["title"], t["expr"])
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_preference_queries_fall_back_to_the_other_protocol() -> None:
    """Each unified query names the preferred protocol first and the other one after ``or``."""
    unified = [t for t in targets() if "${protocol_preference}" in t.expr]
    assert len(unified) >= 6
    for t in unified:
        assert "or on(device_id)" in t.expr, t
        assert 'protocol!="${protocol_preference}"' in t.expr, t
        # max by (...) drops protocol and instance: one series per plug, whichever source.
        assert re.search(r"max by \(house, room, shelf, device, device_id, outlet\)", t.expr), t


# A reader of a maker no built-in reader knows, registered at run time (as a plug-in would).
ACME = ReaderSpec(
    name="acmedash",
    vendor="acme",
    protocol="native",
    description="a dummy of another maker, for the dashboard tests",
    quantities=(quantities.POWER,),
    create=lambda *_: pytest.fail("the dashboards never start a reader"),
)
NAME_MATCHER = re.compile(r'__name__=~"([^"]+)"')


def device_selectors(expr: str) -> list[str]:
    """The ``__name__=~`` regexes of an expression that reads device series; asserts it
    names no device metric outside them (a literal ``tplink_...`` name is TP-Link-only)."""
    assert "tplink" not in NAME_MATCHER.sub("", expr), f"a vendor's literal name in {expr}"
    return NAME_MATCHER.findall(expr)


def test_every_query_and_rule_covers_a_registered_vendor() -> None:
    """A reader of vendor ``acme`` registered before the generator runs is in every panel
    query, variable query and alert expression that reads device series (``acme_native_*``
    matches one of its name regexes, whichever protocol is preferred); nothing is
    TP-Link-only. Unregistered, the output is the committed one again (no import-time copy
    of the registry)."""
    registry.register(ACME)
    try:
        assert "acme_native_" in registry.prefixes()
        gen = generator()
        models = gen.dashboards()
        labels = gen.query_labels()
        rule = yaml.safe_load(gen.rules())
    finally:
        registry.unregister(ACME.name)
    exprs = [t["expr"] for m in models.values() for p in panels(m) for t in p.get("targets", [])]
    assert set(exprs) == set(labels)
    exprs += [
        v["query"] for m in models.values() for v in m["templating"]["list"] if v["type"] == "query"
    ]
    rule_exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    covered = 0
    for expr in exprs + rule_exprs:
        for pref in ("native", "matter"):
            selectors = device_selectors(expr.replace("${protocol_preference}", pref))
            if not selectors:
                assert re.search(r"\b(otelpower|otelcol)_", expr), f"no device series? {expr}"
                continue
            covered += 1
            suffixes = {s.rsplit(")_", 1)[1] for s in selectors}  # (group)_<suffix>
            assert any(
                re.fullmatch(s, f"acme_native_{suffix}") for s in selectors for suffix in suffixes
            ), f"acme_native_* not in {expr} [{pref}]"
            for s in selectors:  # vendor-generic: acme wherever tplink
                for suffix in suffixes:
                    for proto in ("native", "matter"):
                        if re.fullmatch(s, f"tplink_{proto}_{suffix}"):
                            assert re.fullmatch(s, f"acme_{proto}_{suffix}"), (s, expr)
    assert covered >= 2 * (20 + 5), covered  # every device panel, variable and rule
    for r in (r for g in rule["spec"]["groups"] for r in g["rules"]):
        assert "tplink_" not in json.dumps(r["annotations"]), r["alert"]
    # the registry is back to the built-ins: so is the output
    assert generator().render() == {n: (DASHBOARD_DIR / n).read_text() for n in DASHBOARD_FILES}
    assert generator().rules() == RULES_FILE.read_text()


def rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text())


def test_prometheus_rule_structure() -> None:
    rule = rules()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"] == "otelpower"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    names = set()
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
            assert r["expr"].strip() and r["labels"]["severity"] in {"critical", "warning", "info"}
            assert re.fullmatch(r"\d+[smh]", r["for"]), r
            assert r["annotations"]["summary"], r
            names.add(r["alert"])
    assert names == ALERTS
    auth = next(
        r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "PlugAuthFailure"
    )
    assert "KASA_USERNAME" in auth["annotations"]["remedy"]
    assert "KASA_PASSWORD" in auth["annotations"]["remedy"]
    assert yaml.safe_load(VMALERT_FILE.read_text()) == rule["spec"]


MODEL = "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule"
NODE_CHECK = f"""
import {{ PrometheusRule }} from "{MODEL}";
const obj = JSON.parse(process.argv[1]);
new PrometheusRule(obj).validate();
console.log("ok");
"""


def test_prometheus_rule_validates_against_crd_model() -> None:
    """The CRD's OpenAPI schema from @kubernetes-models/prometheus-operator (tools/k8s-validate)."""
    modules = K8S_VALIDATE / "node_modules" / "@kubernetes-models" / "prometheus-operator"
    if shutil.which("node") is None or not modules.is_dir():
        pytest.skip("node or tools/k8s-validate/node_modules missing: make k8s-tools")
    result = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_CHECK, json.dumps(rules())],
        cwd=K8S_VALIDATE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_rules_pass_vmalert_dry_run() -> None:
    """vmalert (Debian's victoria-metrics package) parses every expression and template."""
    vmalert = shutil.which("vmalert")
    if vmalert is None:
        pytest.skip("vmalert missing: make victoria-metrics")
    result = subprocess.run(
        [vmalert, "-dryRun", f"-rule={VMALERT_FILE}", "-loggerLevel=ERROR"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
