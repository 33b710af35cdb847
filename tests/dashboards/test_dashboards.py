"""Fast checks: the committed dashboards are what dashboards/generate.py generates, their
structure is sound, and the PrometheusRule is well-formed (and valid against the CRD model)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

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
