"""The Kubernetes deployment (k8s/, argocd/): rendered with the real kustomize binary and checked.

kustomize comes from `make k8s-tools` (.tools/bin/kustomize) or PATH. Without it these tests
skip, except under CI (env CI set), where a missing binary is a failure.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelpower.config import load_config
from otelpower.readers.matter.settings import server_url
from otelpower.readers.native.settings import credentials

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
COMPONENT_VARIANTS = ["host-network", "sharded-native"]  # components built on top of overlay `home`
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
SECRET_DIR = "/var/run/secrets/otelpower"
# Workloads that run with hostNetwork (not governed by NetworkPolicy; documented in
# k8s/base/matter-server.yaml, k8s/components/host-network and k8s/README.md).
HOST_NETWORK = {
    "base": {"matter-server"},
    "home": {"matter-server"},
    "victoriametrics": {"matter-server"},
    "home+host-network": {"matter-server", "otelpower-native"},
    "home+sharded-native": {"matter-server"},
}


def _kustomize() -> str | None:
    local = ROOT / ".tools" / "bin" / "kustomize"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("kustomize")


@pytest.fixture(scope="module")
def kustomize() -> str:
    binary = _kustomize()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("kustomize not found under CI: run `make k8s-tools` (or k8s-check) first")
        pytest.skip("kustomize not found: `make k8s-tools` installs it into .tools/bin")
    return binary


def _build(binary: str, directory: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [binary, "build", str(directory)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"kustomize build {directory} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]


def _variant_dir(tmp: Path, overlay: str, component: str) -> Path:
    """A kustomization in ``tmp`` = overlay + component (kustomize wants relative paths)."""
    d = tmp / f"{overlay}+{component}"
    d.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(K8S, d)
    (d / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: otelpower\n"
        f"resources: [{rel}/overlays/{overlay}]\ncomponents: [{rel}/components/{component}]\n"
    )
    return d


@pytest.fixture(scope="module")
def renders(kustomize: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Every rendering: base, each overlay, and home + each component variant."""
    tmp = tmp_path_factory.mktemp("variants")
    out = {"base": _build(kustomize, K8S / "base")}
    for overlay in OVERLAYS:
        out[overlay] = _build(kustomize, K8S / "overlays" / overlay)
    for component in COMPONENT_VARIANTS:
        out[f"home+{component}"] = _build(kustomize, _variant_dir(tmp, "home", component))
    return out


def _of(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def _named(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in _of(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _workload(objs: list[dict], name: str) -> dict:
    found = [w for w in _workloads(objs) if w["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one workload {name}, found {len(found)}"
    return found[0]


def _configmap(objs: list[dict], base_name: str) -> dict:
    """A generated ConfigMap by its name before kustomize's hash suffix."""
    found = [
        o
        for o in _of(objs, "ConfigMap")
        if o["metadata"]["name"].rsplit("-", 1)[0] == base_name
        or o["metadata"]["name"] == base_name
    ]
    assert len(found) == 1, f"expected one ConfigMap {base_name}, found {len(found)}"
    return found[0]


def _subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- rendering -----------------------------------------------------------------------------


def test_overlays_exist() -> None:
    assert {"home", "victoriametrics"} <= set(OVERLAYS)


def test_every_kustomization_renders(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        assert _of(objs, "Deployment"), f"{name}: no Deployments rendered"
        kinds = {o["kind"] for o in objs}
        assert {"ConfigMap", "Service", "NetworkPolicy", "PersistentVolumeClaim"} <= kinds, name


def test_overlays_set_the_namespace(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        if name == "base":
            assert all("namespace" not in o["metadata"] for o in objs)
            continue
        for o in objs:
            if o["kind"] == "Namespace":  # cluster-scoped: the overlay's own namespace
                assert o["metadata"]["name"] == "otelpower", name
                assert "pod-security.kubernetes.io/enforce" in o["metadata"]["labels"], name
                continue
            assert o["metadata"].get("namespace") == "otelpower", f"{name}: {o['kind']}"


def test_the_four_workloads(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        names = {o["metadata"]["name"] for o in objs if o["kind"] in WORKLOAD_KINDS}
        assert names == {"otelpower-native", "otelpower-matter", "otelcol", "matter-server"}, name


# --- workload hardening --------------------------------------------------------------------


def _workloads(objs: list[dict]) -> list[dict]:
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def test_every_workload_is_hardened(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        for w in _workloads(objs):
            where = f"{name}: {w['kind']}/{w['metadata']['name']}"
            pod = w["spec"]["template"]["spec"]
            assert pod.get("automountServiceAccountToken") is False, where
            psc = pod.get("securityContext", {})
            assert psc.get("runAsNonRoot") is True, where
            assert isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0, where
            assert isinstance(psc.get("runAsGroup"), int) and psc["runAsGroup"] > 0, where
            assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            writes_volumes = any(
                "persistentVolumeClaim" in v or "emptyDir" in v for v in pod.get("volumes", [])
            )
            if writes_volumes:
                assert isinstance(psc.get("fsGroup"), int), where
            for c in pod["containers"] + pod.get("initContainers", []):
                cw = f"{where} container {c['name']}"
                res = c.get("resources", {})
                for part in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(res.get(part, {})), f"{cw}: {part}"
                for probe in ("livenessProbe", "readinessProbe"):
                    p = c.get(probe)
                    assert p, f"{cw}: no {probe}"
                    assert {"httpGet", "tcpSocket", "grpc", "exec"} & set(p), f"{cw}: {probe}"
                sc = c.get("securityContext", {})
                run_as_non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
                assert run_as_non_root is True, cw
                assert sc.get("readOnlyRootFilesystem") is True, cw
                assert sc.get("allowPrivilegeEscalation") is False, cw
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], cw
                assert not sc.get("capabilities", {}).get("add"), cw
                assert sc.get("privileged") in (None, False), cw
                assert ":" in c["image"] and not c["image"].endswith(":latest"), cw


def test_probes_hit_the_real_endpoints(renders: dict[str, list[dict]]) -> None:
    objs = renders["home"]
    for exporter in ("otelpower-native", "otelpower-matter"):
        c = _workload(objs, exporter)["spec"]["template"]["spec"]["containers"][0]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {p["containerPort"] for p in c["ports"]} == {9464}
    c = _named(objs, "Deployment", "otelcol")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["health"] == 13133
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] in ("health", 13133)
    c = _named(objs, "Deployment", "matter-server")["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"] == {"path": "/info", "port": "ws"}


def test_service_accounts_do_not_mount_tokens(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        sas = {o["metadata"]["name"]: o for o in _of(objs, "ServiceAccount")}
        for w in _workloads(objs):
            sa = w["spec"]["template"]["spec"].get("serviceAccountName")
            assert sa in sas, f"{name}: {w['metadata']['name']} has no own ServiceAccount"
            assert sas[sa].get("automountServiceAccountToken") is False


# --- network policy ------------------------------------------------------------------------


def test_every_workload_has_a_network_policy(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        policies = _of(objs, "NetworkPolicy")
        host_network = set()
        for w in _workloads(objs):
            pod = w["spec"]["template"]
            wname = w["metadata"]["name"]
            if pod["spec"].get("hostNetwork"):
                host_network.add(wname)
                assert pod["spec"].get("dnsPolicy") == "ClusterFirstWithHostNet", wname
                continue
            selecting = [
                p
                for p in policies
                if not p["spec"]["podSelector"].get("matchExpressions")
                and _subset(
                    p["spec"]["podSelector"].get("matchLabels", {}), pod["metadata"]["labels"]
                )
                and p["spec"]["podSelector"].get("matchLabels")
            ]
            assert selecting, f"{name}: no NetworkPolicy selects {wname}"
            for p in selecting:
                assert set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}, wname
        assert host_network == HOST_NETWORK[name], name


def _ports(rules: list[dict]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for r in rules for p in r.get("ports", [])}


def test_network_policies_allow_what_is_needed(renders: dict[str, list[dict]]) -> None:
    objs = renders["home"]
    native = _named(objs, "NetworkPolicy", "otelpower-native")["spec"]
    assert _ports(native["ingress"]) == {("TCP", 9464)}
    egress = _ports(native["egress"])
    needed = {("TCP", 80), ("TCP", 9999), ("UDP", 9999), ("UDP", 20002), ("UDP", 20004)}
    assert needed | {("UDP", 53), ("TCP", 53), ("TCP", 4317)} <= egress
    # The home overlay narrows the plug rule to its subnet.
    assert native["egress"][2]["to"] == [{"ipBlock": {"cidr": "192.168.1.0/24"}}]

    matter = _named(objs, "NetworkPolicy", "otelpower-matter")["spec"]
    assert _ports(matter["egress"]) == {("UDP", 53), ("TCP", 53), ("TCP", 4317), ("TCP", 5580)}

    col = _named(objs, "NetworkPolicy", "otelcol")["spec"]
    assert _ports(col["ingress"]) == {("TCP", 4317), ("TCP", 4318), ("TCP", 8889), ("TCP", 13133)}
    assert _ports(col["egress"]) == {("UDP", 53), ("TCP", 53), ("TCP", 8428)}
    # OTLP ingress admits the exporters' pods.
    otlp_from = col["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for exporter in ("otelpower-native", "otelpower-matter"):
        labels = _workload(objs, exporter)["spec"]["template"]["metadata"]["labels"]
        assert _subset(otlp_from, labels), exporter
    for policy in (native, matter):
        mon = policy["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
        assert mon == {"kubernetes.io/metadata.name": "monitoring"}


def test_host_network_component(renders: dict[str, list[dict]]) -> None:
    objs = renders["home+host-network"]
    spec = _workload(objs, "otelpower-native")["spec"]
    assert spec["template"]["spec"]["hostNetwork"] is True
    col = _named(objs, "NetworkPolicy", "otelcol")["spec"]
    assert any("ipBlock" in f for r in col["ingress"] for f in r.get("from", []))
    # Static hosts (no host networking) stay the default.
    assert not _workload(renders["home"], "otelpower-native")["spec"]["template"]["spec"].get(
        "hostNetwork"
    )


def test_sharded_native_component(renders: dict[str, list[dict]]) -> None:
    """N replicas, and --shard i/N from the pod ordinal with N equal to the replicas."""
    for name in ("home", "home+sharded-native"):
        sts = _named(renders[name], "StatefulSet", "otelpower-native")
        env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert int(env["OTELPOWER_SHARDS"]["value"]) == sts["spec"]["replicas"], name
        assert env["OTELPOWER_SHARD"]["value"] == "$(POD_INDEX)/$(OTELPOWER_SHARDS)"
        field = env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert field == "metadata.labels['apps.kubernetes.io/pod-index']"
        names = [e["name"] for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]]
        assert names.index("POD_INDEX") < names.index("OTELPOWER_SHARD")  # $(VAR) order
    assert (
        _named(renders["home+sharded-native"], "StatefulSet", "otelpower-native")["spec"][
            "replicas"
        ]
        == 3
    )


def test_alert_rules_ship_with_the_home_overlay(renders: dict[str, list[dict]]) -> None:
    """The rule rendered is alerts/otelpower-rules.yaml (the file vmalert checks): a
    PrometheusRule in home, a VMRule in the victoriametrics overlay."""
    source = yaml.safe_load((ROOT / "alerts" / "otelpower-rules.yaml").read_text())
    for name, kind in (("home", "PrometheusRule"), ("victoriametrics", "VMRule")):
        rule = _named(renders[name], kind, "otelpower")
        assert rule["metadata"]["namespace"] == "otelpower"
        assert rule["spec"] == source["spec"], name
    alerts = {r["alert"] for g in source["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"PlugDown"} <= alerts


# --- secrets and config --------------------------------------------------------------------


def test_no_secret_values_are_rendered(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        for s in _of(objs, "Secret"):
            assert not s.get("data") and not s.get("stringData"), f"{name}: {s['metadata']}"


def test_credentials_come_from_the_secret(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        for exporter in ("otelpower-native", "otelpower-matter"):
            pod = _workload(objs, exporter)["spec"]["template"]["spec"]
            vols = {v["name"]: v for v in pod["volumes"]}
            mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
            mount = mounts[SECRET_DIR]
            assert mount["readOnly"] is True
            assert vols[mount["name"]]["secret"]["secretName"] == "otelpower-credentials", name
            assert not any(
                "value" in e and "PASSWORD" in e["name"].upper()
                for e in pod["containers"][0].get("env", [])
            )


def test_collector_config_is_the_repository_file(renders: dict[str, list[dict]]) -> None:
    expected = (ROOT / "collector-config" / "config.yaml").read_bytes()
    for name, objs in renders.items():
        cm = _configmap(objs, "otelcol-config")
        assert cm["data"]["config.yaml"].encode("utf-8") == expected, name
        pod = _named(objs, "Deployment", "otelcol")["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["config"]["configMap"]["name"] == cm["metadata"]["name"]
        c = pod["containers"][0]
        assert c["args"] == ["--config", "/etc/otelcol/config.yaml"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["VM_REMOTE_WRITE_URL"].endswith("/api/v1/write")
        assert env["PROM_EXPORTER_ENDPOINT"] == "0.0.0.0:8889"
        wal = env["PRW_WAL_DIR"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        wal_mount = next(p for p in mounts if wal.startswith(p.rstrip("/") + "/"))
        assert "persistentVolumeClaim" in vols[mounts[wal_mount]], "WAL not on a PVC"


def test_exporter_config_is_valid(renders: dict[str, list[dict]], tmp_path: Path) -> None:
    """Each rendered otelpower config loads with otelpower's own parser (secrets stubbed)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "username").write_text("user@example.com\n")
    (secrets / "password").write_text("not-a-real-password\n")
    for name, objs in renders.items():
        text = _configmap(objs, "otelpower-config")["data"]["config.yaml"]
        assert f"username_file: {SECRET_DIR}/username" in text, name
        assert f"password_file: {SECRET_DIR}/password" in text, name
        path = tmp_path / f"{name}.yaml"
        path.write_text(text.replace(SECRET_DIR, str(secrets)))
        cfg = load_config(path, environ={})
        assert credentials(cfg).username == "user@example.com", name
        assert cfg.devices, name
        assert cfg.prometheus_port == 9464, name
        assert server_url(cfg) == "ws://matter-server:5580/ws", name


def test_exporter_commands(renders: dict[str, list[dict]]) -> None:
    objs = renders["home"]
    args = {
        "otelpower-native": ["run", "/etc/otelpower/config.yaml", "--protocol", "native"],
        "otelpower-matter": [
            "run",
            "/etc/otelpower/config.yaml",
            "--protocol",
            "matter",
            "--matter-server",
            "ws://matter-server:5580/ws",
        ],
    }
    services = {s["metadata"]["name"]: s for s in _of(objs, "Service")}
    assert {p["port"] for p in services["otelcol"]["spec"]["ports"]} >= {4317, 4318, 8889, 13133}
    assert {p["port"] for p in services["matter-server"]["spec"]["ports"]} == {5580}
    for exporter, expected in args.items():
        c = _workload(objs, exporter)["spec"]["template"]["spec"]["containers"][0]
        assert c["args"] == expected
        assert c["image"].startswith("ghcr.io/otelpower/otelpower:")
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otelcol:4317"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/etc/otelpower" in mounts and "/tmp" in mounts
    matter = _named(objs, "Deployment", "matter-server")["spec"]
    assert matter["replicas"] == 1 and matter["strategy"]["type"] == "Recreate"
    mpod = matter["template"]["spec"]
    assert mpod["hostNetwork"] is True
    data = next(m for m in mpod["containers"][0]["volumeMounts"] if m["mountPath"] == "/data")
    vols = {v["name"]: v for v in mpod["volumes"]}
    assert "persistentVolumeClaim" in vols[data["name"]]


# --- scraping ------------------------------------------------------------------------------


def _scrape_targets_resolve(objs: list[dict], kind: str) -> dict[str, dict]:
    """protocol label -> object; each selects a Service with its port, which selects a pod."""
    services = _of(objs, "Service")
    workloads = _workloads(objs)
    out = {}
    for sm in _of(objs, kind):
        selected = [
            s
            for s in services
            if _subset(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
        ]
        assert len(selected) == 1, f"{kind}/{sm['metadata']['name']} selects {len(selected)}"
        svc = selected[0]
        port_names = {p["name"] for p in svc["spec"]["ports"]}
        assert {e["port"] for e in sm["spec"]["endpoints"]} <= port_names
        assert any(
            _subset(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
            for w in workloads
        )
        out[sm["metadata"]["labels"]["protocol"]] = sm
    return out


def test_service_monitors(renders: dict[str, list[dict]]) -> None:
    for name in ["base", "home", *[n for n in renders if n.startswith("home+")]]:
        sms = _scrape_targets_resolve(renders[name], "ServiceMonitor")
        assert set(sms) == {"native", "matter"}, name
        assert len(_of(renders[name], "ServiceMonitor")) == 2, name
        for proto, sm in sms.items():
            assert sm["apiVersion"] == "monitoring.coreos.com/v1"
            assert sm["metadata"]["name"] == f"otelpower-{proto}"


def test_victoriametrics_overlay_uses_vm_operator_kinds(renders: dict[str, list[dict]]) -> None:
    objs = renders["victoriametrics"]
    assert not _of(objs, "ServiceMonitor")
    scrapes = _scrape_targets_resolve(objs, "VMServiceScrape")
    assert set(scrapes) == {"native", "matter"}
    monitors = _scrape_targets_resolve(renders["home"], "ServiceMonitor")
    for proto, vs in scrapes.items():
        assert vs["apiVersion"] == "operator.victoriametrics.com/v1beta1"
        sm = monitors[proto]
        assert vs["spec"] == sm["spec"], proto
        assert vs["metadata"]["labels"] == sm["metadata"]["labels"], proto
    # The rules as a VMRule, the same as home's PrometheusRule; no prometheus-operator kind.
    assert not _of(objs, "PrometheusRule")
    (vmrule,) = _of(objs, "VMRule")
    (prom_rule,) = _of(renders["home"], "PrometheusRule")
    assert vmrule["apiVersion"] == "operator.victoriametrics.com/v1beta1"
    assert vmrule["spec"] == prom_rule["spec"]
    assert vmrule["metadata"] == prom_rule["metadata"]
    # Otherwise the same deployment as home.
    strip = {"ServiceMonitor", "VMServiceScrape", "PrometheusRule", "VMRule"}
    assert [o for o in objs if o["kind"] not in strip] == [
        o for o in renders["home"] if o["kind"] not in strip
    ]


# --- ArgoCD --------------------------------------------------------------------------------


def _apps() -> list[dict]:
    docs = [d for d in yaml.safe_load_all((ROOT / "argocd" / "app.yaml").read_text()) if d]
    assert docs and all(d["kind"] == "Application" for d in docs)
    return docs


def test_argocd_application() -> None:
    for app in _apps():
        assert app["apiVersion"] == "argoproj.io/v1alpha1"
        spec = app["spec"]
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
        assert spec["source"]["repoURL"] == "https://github.com/YOUR-ORG/otelpower.git"
        path = ROOT / spec["source"]["path"]
        assert (path / "kustomization.yaml").is_file(), path
        assert spec["destination"]["namespace"] == "otelpower"
    assert any(a["spec"]["source"]["path"] == "k8s/overlays/home" for a in _apps())


def test_sync_waves_start_collector_and_matter_server_first(
    renders: dict[str, list[dict]],
) -> None:
    objs = renders["home"]

    def wave(name: str) -> int:
        ann = _workload(objs, name)["metadata"].get("annotations", {})
        return int(ann.get("argocd.argoproj.io/sync-wave", "0"))

    for exporter in ("otelpower-native", "otelpower-matter"):
        for dependency in ("otelcol", "matter-server"):
            assert wave(exporter) > wave(dependency), (exporter, dependency)


# --- the dashboards hook -------------------------------------------------------------------


def test_dashboards_component_with_a_sample_dashboard(kustomize: str, tmp_path: Path) -> None:
    """k8s/components/dashboards + the dashboards/kustomization.yaml template, on a copy."""
    shutil.copytree(K8S, tmp_path / "k8s")
    shutil.copytree(ROOT / "collector-config", tmp_path / "collector-config")
    shutil.copytree(ROOT / "alerts", tmp_path / "alerts")
    dashboards = tmp_path / "dashboards"
    dashboards.mkdir(exist_ok=True)
    template = K8S / "components" / "dashboards" / "dashboards-kustomization.example.yaml"
    (dashboards / "kustomization.yaml").write_text(template.read_text())
    (dashboards / "overview.json").write_text('{"uid": "otelpower-overview", "panels": []}\n')
    variant = _variant_dir(tmp_path / "v", "home", "dashboards")
    # _variant_dir points at the repository's k8s/: point it at the copy instead.
    kust = variant / "kustomization.yaml"
    kust.write_text(kust.read_text().replace(os.path.relpath(K8S, variant), "../../k8s"))
    objs = _build(kustomize, variant)
    cms = [
        o
        for o in _of(objs, "ConfigMap")
        if o["metadata"].get("labels", {}).get("grafana_dashboard")
    ]
    assert len(cms) == 1
    cm = cms[0]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "otelpower"
    assert cm["data"]["overview.json"].startswith('{"uid": "otelpower-overview"')


# --- offline schema validation -------------------------------------------------------------


@functools.cache
def _validator_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "k8s_validate", ROOT / "tools" / "k8s-validate" / "validate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rendered_objects_validate_offline(
    renders: dict[str, list[dict]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tools/k8s-validate/validate.py on every rendering and argocd/app.yaml.

    The CRD-model check (node) runs when tools/k8s-validate/node_modules is installed
    (`make k8s-tools`), and is required under CI.
    """
    files = []
    for name, objs in renders.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
        files.append(str(path))
    files.append(str(ROOT / "argocd" / "app.yaml"))
    have_node = (ROOT / "tools" / "k8s-validate" / "node_modules").is_dir()
    if not have_node and os.environ.get("CI"):
        pytest.fail("tools/k8s-validate/node_modules missing under CI: run `make k8s-tools`")
    args = files if have_node else ["--skip-node", *files]
    rc = _validator_module().main(args)
    out = capsys.readouterr()
    assert rc == 0, out.err


def test_the_validator_rejects_unknown_fields(tmp_path: Path) -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i:1", "readOnlyRootFs": True}]},
            },
        },
    }
    scrapes = K8S / "components" / "vmservicescrape" / "vmservicescrapes.yaml"
    scrape = next(yaml.safe_load_all(scrapes.read_text()))
    scrape["spec"]["endpoints"][0]["intervall"] = "15s"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([bad, scrape]))
    module = _validator_module()
    assert module.main(["--skip-node", str(path)]) == 1
    # the VMRule: as generated it passes; a misspelt rule field fails
    vmrule = yaml.safe_load((K8S / "components" / "vmrule" / "otelpower-vmrule.yaml").read_text())
    path.write_text(yaml.safe_dump(vmrule))
    assert module.main(["--skip-node", str(path)]) == 0
    vmrule["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    path.write_text(yaml.safe_dump(vmrule))
    assert module.main(["--skip-node", str(path)]) == 1
