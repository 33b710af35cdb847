"""Every rendering k8s/ offers (roots, overlays, each component alone and in combination),
checked for what holds in all of them and for what each component promises."""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from otelpower import cli
from otelpower.readers import registry
from otelpower.readers.matter.settings import server_url
from otelpower.readers.native.settings import credentials
from otelpower.readers.registry import load_config

from .conftest import K8S, ROOT, tool

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
SECRET_DIR = "/var/run/secrets/otelpower"
# Every reader of the registry has its exporter, otelpower-<name> (k8s/readers/<name>): the base
# brings BASE_READER's, every other reader's comes with the component of its name.
READERS = registry.names()
EXPORTERS = {f"otelpower-{r}" for r in READERS}


def _in_the_image() -> set[str]:
    """The readers whose library the image installs (the `all` extra, as the Dockerfile): the
    example house runs these; Shelly's client is not in it yet (aioshelly needs PyRIC, which
    has no wheel), so its component is rendered in a combination, not in the house."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    inside = {
        name.strip()
        for entry in project["optional-dependencies"]["all"]
        if "[" in entry
        for name in entry.split("[", 1)[1].rstrip("]").split(",")
    }
    return {f"otelpower-{s.name}" for s in registry.specs() if (s.extra or s.name) in inside}


HOUSE_EXPORTERS = _in_the_image()
BASE_READER = "native"
READER_OBJECTS = {"ServiceAccount", "Service", "NetworkPolicy"}  # + workload, scrape object
MATTER_SERVER_NS = "otelpower-matter-server"
MATTER_SERVER_RENDER = "matter-server"  # the rendering of k8s/matter-server


def _of(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def _named(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in _of(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _workloads(objs: list[dict]) -> list[dict]:
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def _workload(objs: list[dict], name: str) -> dict:
    found = [w for w in _workloads(objs) if w["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one workload {name}, found {len(found)}"
    return found[0]


def _names(objs: list[dict]) -> set[str]:
    return {w["metadata"]["name"] for w in _workloads(objs)}


def _configmap(objs: list[dict], base_name: str) -> dict | None:
    """A generated ConfigMap by its name before kustomize's hash suffix."""
    found = [
        o
        for o in _of(objs, "ConfigMap")
        if base_name in (o["metadata"]["name"], o["metadata"]["name"].rsplit("-", 1)[0])
    ]
    assert len(found) <= 1, f"several ConfigMaps {base_name}"
    return found[0] if found else None


def _subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _exporter_renders(renders: dict[str, list[dict]]) -> list[tuple[str, list[dict]]]:
    """Every rendering with the exporters (all but the bundled Matter server's own)."""
    return [(name, objs) for name, objs in renders.items() if name != MATTER_SERVER_RENDER]


def _container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def _readers_in(components: tuple[str, ...]) -> set[str]:
    """The readers a rendering with these components deploys."""
    return {r for r in READERS if r == BASE_READER or r in components}


# --- what is offered -----------------------------------------------------------------------


def test_every_component_and_overlay_is_rendered(renders: dict[str, list[dict]]) -> None:
    r = tool("renders")
    assert {"prometheus", "victoriametrics", "home"} <= set(r.overlays())
    assert {
        "namespace",
        "matter",
        "otlp",
        "alerts",
        "vmservicescrape",
        "vmrule",
        "host-network",
        "sharded-native",
        "dashboards",
    } <= set(r.components())
    for component in r.components():
        assert any(component in parts for parts in r.COMBINATIONS.values()) or (
            component == "namespace"
        ), f"{component} is in no combination"
    for name, objs in renders.items():
        assert _workloads(objs), f"{name}: no workload rendered"


def test_the_minimal_default(renders: dict[str, list[dict]]) -> None:
    """The native exporter scraped by Prometheus, nothing else, in a restricted namespace."""
    objs = renders["prometheus"]
    assert BASE_READER in READERS
    assert _names(objs) == {f"otelpower-{BASE_READER}"} == {"otelpower-native"}
    assert {o["kind"] for o in objs} == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "ServiceMonitor",
        "NetworkPolicy",
        "PrometheusRule",
    }
    (ns,) = _of(objs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert _configmap(objs, "otelpower-otlp") is None  # no OTLP push without a collector
    assert _names(renders["base"]) == {"otelpower-native"}
    assert _names(renders["victoriametrics"]) == {"otelpower-native"}


def test_components_add_only_their_workloads(
    renders: dict[str, list[dict]], components_of: dict[str, tuple[str, ...]]
) -> None:
    for name, objs in renders.items():
        if name == "matter-server":
            assert _names(objs) == {"matter-server"}
            continue
        comps = components_of[name]
        expected = {f"otelpower-{r}" for r in _readers_in(comps)}
        expected |= {"otelcol"} if "otlp" in comps else set()
        assert _names(objs) == expected, name
        assert ("otlp" in comps) == bool(_of(objs, "PersistentVolumeClaim")), name
        dashboards = [
            o
            for o in _of(objs, "ConfigMap")
            if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        ]
        assert bool(dashboards) == ("dashboards" in comps), name


def test_every_reader_has_its_kustomization() -> None:
    """k8s/readers/<name> for every reader of the registry and for no other: k8s/exporter with
    a Reader object of that name, deployed by the base or by the component of its name."""
    readers = K8S / "readers"
    assert {d.name for d in readers.iterdir() if d.is_dir()} == set(READERS)
    for reader in READERS:
        # otelpower-<name> must be a DNS-1123 label (the registry allows "_", Kubernetes not)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", f"otelpower-{reader}"), reader
        d = readers / reader
        kustomization = yaml.safe_load((d / "kustomization.yaml").read_text())
        assert kustomization["components"] == ["../../exporter"], reader
        docs = [
            doc
            for r in kustomization["resources"]
            if (d / r).is_file()
            for doc in yaml.safe_load_all((d / r).read_text())
            if doc
        ]
        (source,) = [doc for doc in docs if doc["kind"] == "Reader"]
        assert source["metadata"]["name"] == reader
        assert source["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
        owner = K8S / "base" if reader == BASE_READER else K8S / "components" / reader
        owned = yaml.safe_load((owner / "kustomization.yaml").read_text())["resources"]
        assert d in {(owner / r).resolve() for r in owned}, f"{owner} does not deploy {reader}"


def test_the_readme_shows_the_matter_reader_as_it_is() -> None:
    """k8s/README.md's "A new reader" example: the files of k8s/readers/matter."""
    blocks = re.findall(r"```yaml\n(.*?)```", (K8S / "README.md").read_text(), flags=re.S)
    docs = [d for d in map(yaml.safe_load, blocks) if isinstance(d, dict)]
    matter = K8S / "readers" / "matter"
    assert [d for d in docs if d.get("kind") == "Reader"] == [
        yaml.safe_load((matter / "reader.yaml").read_text())
    ]
    assert [d for d in docs if "../../exporter" in d.get("components", [])] == [
        yaml.safe_load((matter / "kustomization.yaml").read_text())
    ]


def test_each_reader_gets_its_own_objects(
    renders: dict[str, list[dict]], components_of: dict[str, tuple[str, ...]]
) -> None:
    """k8s/exporter filled in for each reader a rendering deploys: its objects named
    otelpower-<name>, labelled with it, and every selector on that name, so that none selects
    another reader's pods; no READER placeholder left anywhere."""
    for name, objs in _exporter_renders(renders):
        assert "READER" not in yaml.safe_dump_all(objs), name
        pods = {w["metadata"]["name"]: w["spec"]["template"] for w in _workloads(objs)}
        scrape = "VMServiceScrape" if "vmservicescrape" in components_of[name] else "ServiceMonitor"
        for reader in _readers_in(components_of[name]):
            exporter = f"otelpower-{reader}"
            where = f"{name}: {exporter}"
            own = {"app.kubernetes.io/name": exporter}
            labels = {**own, "app.kubernetes.io/component": "exporter", "protocol": reader}
            w = _workload(objs, exporter)
            assert w["spec"]["selector"] == {"matchLabels": own}, where
            assert _subset(labels, w["metadata"]["labels"]), where
            assert _subset(labels, pods[exporter]["metadata"]["labels"]), where
            assert pods[exporter]["spec"]["serviceAccountName"] == exporter, where
            objects = {kind: _named(objs, kind, exporter) for kind in (*READER_OBJECTS, scrape)}
            assert _subset(labels, objects["Service"]["metadata"]["labels"]), where
            assert _subset(labels, objects[scrape]["metadata"]["labels"]), where
            selectors = (
                objects["Service"]["spec"]["selector"],
                objects[scrape]["spec"]["selector"]["matchLabels"],
                objects["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
            )
            assert all(s == own for s in selectors), where
            others = [p for n, p in pods.items() if n != exporter]
            assert not any(_subset(own, p["metadata"]["labels"]) for p in others), where


# --- namespaces and Pod Security -----------------------------------------------------------


def test_namespaces(renders: dict[str, list[dict]], components_of: dict) -> None:
    for name, objs in renders.items():
        if name == "base":
            assert all("namespace" not in o["metadata"] for o in objs)
            continue
        want = MATTER_SERVER_NS if name == "matter-server" else "otelpower"
        namespaces = _of(objs, "Namespace")
        assert [n["metadata"]["name"] for n in namespaces] == [want], name
        for o in objs:
            if o["kind"] != "Namespace":
                assert o["metadata"].get("namespace") == want, f"{name}: {o['kind']}"


def test_pod_security_is_the_narrowest_the_workloads_allow(renders: dict[str, list[dict]]) -> None:
    """restricted unless a workload uses the host network (allowed only by privileged)."""
    for name, objs in renders.items():
        namespaces = _of(objs, "Namespace")
        if not namespaces:
            continue
        labels = namespaces[0]["metadata"]["labels"]
        host = {
            w["metadata"]["name"]
            for w in _workloads(objs)
            if w["spec"]["template"]["spec"].get("hostNetwork")
        }
        enforce = labels["pod-security.kubernetes.io/enforce"]
        assert enforce == ("privileged" if host else "restricted"), (name, host)
        if name != "matter-server":
            assert labels["pod-security.kubernetes.io/warn"] == "restricted", name
            assert labels["pod-security.kubernetes.io/audit"] == "restricted", name


def test_only_the_matter_server_and_host_network_use_the_node_network(
    renders: dict[str, list[dict]], components_of: dict
) -> None:
    for name, objs in renders.items():
        host = {
            w["metadata"]["name"]
            for w in _workloads(objs)
            if w["spec"]["template"]["spec"].get("hostNetwork")
        }
        if name == "matter-server":
            assert host == {"matter-server"}
        else:
            assert host == (
                {"otelpower-native"} if "host-network" in components_of[name] else set()
            )


# --- workload hardening --------------------------------------------------------------------


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
            if any("persistentVolumeClaim" in v or "emptyDir" in v for v in pod["volumes"]):
                assert isinstance(psc.get("fsGroup"), int), where
            assert "argocd.argoproj.io/sync-wave" not in w["metadata"].get("annotations", {})
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
                assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, cw
                assert sc.get("readOnlyRootFilesystem") is True, cw
                assert sc.get("allowPrivilegeEscalation") is False, cw
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], cw
                assert not sc.get("capabilities", {}).get("add"), cw
                assert sc.get("privileged") in (None, False), cw
                assert ":" in c["image"] and not c["image"].endswith(":latest"), cw


def test_probes_hit_the_real_endpoints(renders: dict[str, list[dict]]) -> None:
    objs = renders["home"]
    assert _names(objs) >= HOUSE_EXPORTERS, "the example house has every reader of the image"
    for exporter in HOUSE_EXPORTERS:
        c = _container(_workload(objs, exporter))
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {p["containerPort"] for p in c["ports"]} == {9464}
    c = _container(_named(objs, "Deployment", "otelcol"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["health"] == 13133 and ports["guard"] == 13134
    for probe in ("startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in ("health", 13133)
    # otelcol-guard: not ready while the WAL is full (its / fails for remote write too)
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "guard"}
    c = _container(_named(renders["matter-server"], "Deployment", "matter-server"))
    assert c["readinessProbe"]["httpGet"] == {"path": "/info", "port": "ws"}


def test_service_accounts_do_not_mount_tokens(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        sas = {o["metadata"]["name"]: o for o in _of(objs, "ServiceAccount")}
        for w in _workloads(objs):
            sa = w["spec"]["template"]["spec"].get("serviceAccountName")
            assert sa in sas, f"{name}: {w['metadata']['name']} has no own ServiceAccount"
            assert sas[sa].get("automountServiceAccountToken") is False


# --- network policy ------------------------------------------------------------------------


def test_every_pod_network_workload_has_a_network_policy(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        policies = _of(objs, "NetworkPolicy")
        for w in _workloads(objs):
            pod = w["spec"]["template"]
            wname = w["metadata"]["name"]
            if pod["spec"].get("hostNetwork"):
                assert pod["spec"].get("dnsPolicy") == "ClusterFirstWithHostNet", wname
                continue
            selecting = [
                p
                for p in policies
                if p["spec"]["podSelector"].get("matchLabels")
                and not p["spec"]["podSelector"].get("matchExpressions")
                and _subset(p["spec"]["podSelector"]["matchLabels"], pod["metadata"]["labels"])
            ]
            assert selecting, f"{name}: no NetworkPolicy selects {wname}"
            for p in selecting:
                assert set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}, wname


def _ports(rules: list[dict]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for r in rules for p in r.get("ports", [])}


def test_network_policies_allow_what_is_needed(renders: dict[str, list[dict]]) -> None:
    objs = renders["home"]
    native = _named(objs, "NetworkPolicy", "otelpower-native")["spec"]
    assert _ports(native["ingress"]) == {("TCP", 9464)}
    needed = {("TCP", 80), ("TCP", 9999), ("UDP", 9999), ("UDP", 20002), ("UDP", 20004)}
    assert needed | {("UDP", 53), ("TCP", 53), ("TCP", 4318)} <= _ports(native["egress"])
    # The home overlay narrows the plug rule to its subnet.
    assert native["egress"][2]["to"] == [{"ipBlock": {"cidr": "192.168.1.0/24"}}]

    matter = _named(objs, "NetworkPolicy", "otelpower-matter")["spec"]
    assert _ports(matter["egress"]) == {("UDP", 53), ("TCP", 53), ("TCP", 4318), ("TCP", 5580)}

    col = _named(objs, "NetworkPolicy", "otelcol")["spec"]
    assert _ports(col["ingress"]) == {("TCP", p) for p in (4317, 4318, 8888, 8889, 13133, 13134)}
    assert _ports(col["egress"]) == {("UDP", 53), ("TCP", 53), ("TCP", 8428)}
    otlp_from = col["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for exporter in HOUSE_EXPORTERS:
        labels = _workload(objs, exporter)["spec"]["template"]["metadata"]["labels"]
        assert _subset(otlp_from, labels), exporter
    for exporter in HOUSE_EXPORTERS:
        policy = _named(objs, "NetworkPolicy", exporter)["spec"]
        assert _ports(policy["ingress"]) == {("TCP", 9464)}, exporter
        mon = policy["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
        assert mon == {"kubernetes.io/metadata.name": "monitoring"}
        # k8s/exporter's rules (DNS, OTLP), then the reader's own at index 2 (k8s/readers/<name>)
        assert _ports(policy["egress"][:2]) == {("UDP", 53), ("TCP", 53), ("TCP", 4318)}
        assert len(policy["egress"]) == 3, exporter


def test_host_network_component(renders: dict[str, list[dict]]) -> None:
    for name in ("home+host-network", "all-prometheus"):
        objs = renders[name]
        assert _workload(objs, "otelpower-native")["spec"]["template"]["spec"]["hostNetwork"]
        col = _named(objs, "NetworkPolicy", "otelcol")["spec"]
        assert any("ipBlock" in f for r in col["ingress"] for f in r.get("from", [])), name
    assert not _workload(renders["home"], "otelpower-native")["spec"]["template"]["spec"].get(
        "hostNetwork"
    )


def test_sharded_native_component(
    renders: dict[str, list[dict]], components_of: dict[str, tuple[str, ...]]
) -> None:
    """N replicas, and --shard i/N from the pod ordinal with N equal to the replicas."""
    for name, objs in _exporter_renders(renders):
        sts = _named(objs, "StatefulSet", "otelpower-native")
        env = {e["name"]: e for e in _container(sts)["env"]}
        assert int(env["OTELPOWER_SHARDS"]["value"]) == sts["spec"]["replicas"], name
        assert sts["spec"]["replicas"] == (3 if "sharded-native" in components_of[name] else 1)
        assert env["OTELPOWER_SHARD"]["value"] == "$(POD_INDEX)/$(OTELPOWER_SHARDS)"
        field = env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert field == "metadata.labels['apps.kubernetes.io/pod-index']"
        names = list(env)
        assert names.index("POD_INDEX") < names.index("OTELPOWER_SHARD")  # $(VAR) order


# --- OTLP, scraping, rules -----------------------------------------------------------------


def test_otlp_is_on_exactly_with_the_otlp_component(
    renders: dict[str, list[dict]], components_of: dict[str, tuple[str, ...]]
) -> None:
    for name, objs in _exporter_renders(renders):
        cm = _configmap(objs, "otelpower-otlp")
        assert (cm is not None) == ("otlp" in components_of[name]), name
        for w in _workloads(objs):
            if w["metadata"]["name"] not in EXPORTERS:
                continue
            refs = [e["configMapRef"] for e in _container(w).get("envFrom", [])]
            (ref,) = [r for r in refs if r["name"].startswith("otelpower-otlp")]
            assert ref["optional"] is True
            if cm is not None:
                assert ref["name"] == cm["metadata"]["name"], name  # the hashed name
            env = {e["name"] for e in _container(w).get("env", [])}
            assert not {e for e in env if e.startswith("OTEL_")}, name
        if cm is not None:
            assert cm["data"] == {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otelcol:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
            ports = {p["port"] for p in _named(objs, "Service", "otelcol")["spec"]["ports"]}
            assert {4317, 4318, 8888, 8889, 13133, 13134} <= ports


def test_collector_telemetry_is_scraped(renders: dict[str, list[dict]]) -> None:
    """otelcol_* (8888) and otelcol_guard_* (13134), which the otelpower.delivery alerts use;
    not 8889 (the received series, remote-written already)."""
    for name, objs in renders.items():
        if "otelcol" not in _names(objs):
            continue
        (sm,) = [o for o in _of(objs, "ServiceMonitor") if o["metadata"]["name"] == "otelcol"]
        svc = _named(objs, "Service", "otelcol")
        assert _subset(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
        by_name = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        assert {by_name[e["port"]] for e in sm["spec"]["endpoints"]} == {8888, 13134}, name
        c = _container(_named(objs, "Deployment", "otelcol"))
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["OTELCOL_METRICS_HOST"] == "0.0.0.0", name
        assert env["GUARD_HEALTH_ENDPOINT"] == "0.0.0.0:13134", name
        assert env["PRW_WAL_MAX_BYTES"].endswith("%"), name


def _scrape_targets_resolve(objs: list[dict], kind: str) -> dict[str, dict]:
    """protocol label -> object; each selects a Service with its port, which selects a pod."""
    services = _of(objs, "Service")
    out = {}
    for sm in _of(objs, kind):
        if sm["metadata"]["labels"].get("app.kubernetes.io/component") == "collector":
            continue  # the collector's own telemetry (test_collector_telemetry_is_scraped)
        selected = [
            s
            for s in services
            if _subset(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
        ]
        assert len(selected) == 1, f"{kind}/{sm['metadata']['name']} selects {len(selected)}"
        svc = selected[0]
        assert {e["port"] for e in sm["spec"]["endpoints"]} <= {
            p["name"] for p in svc["spec"]["ports"]
        }
        assert any(
            _subset(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
            for w in _workloads(objs)
        )
        annotations = sm["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/sync-options"] == "SkipDryRunOnMissingResource=true"
        out[sm["metadata"]["labels"]["protocol"]] = sm
    return out


def test_every_exporter_is_scraped_once(
    renders: dict[str, list[dict]], components_of: dict[str, tuple[str, ...]]
) -> None:
    """ServiceMonitors, or VMServiceScrapes with vmservicescrape; never both, and never a
    VMServiceScrape next to the collector's remote write (every series stored twice)."""
    for name, objs in _exporter_renders(renders):
        vm = "vmservicescrape" in components_of[name]
        kind, other = (
            ("VMServiceScrape", "ServiceMonitor") if vm else ("ServiceMonitor", "VMServiceScrape")
        )
        assert not _of(objs, other), name
        scrapes = _scrape_targets_resolve(objs, kind)
        exporters = {
            w["metadata"]["labels"]["protocol"]
            for w in _workloads(objs)
            if w["metadata"]["name"] in EXPORTERS
        }
        assert set(scrapes) == exporters == _readers_in(components_of[name]), name
        for proto, sm in scrapes.items():
            assert sm["metadata"]["name"] == f"otelpower-{proto}"
            assert sm["apiVersion"] == (
                "operator.victoriametrics.com/v1beta1" if vm else "monitoring.coreos.com/v1"
            )
        assert not (vm and "otlp" in components_of[name]), f"{name}: double storage"


def test_vmservicescrape_keeps_the_servicemonitor_spec(renders: dict[str, list[dict]]) -> None:
    monitors = _scrape_targets_resolve(renders["prometheus"], "ServiceMonitor")
    scrapes = _scrape_targets_resolve(renders["victoriametrics"], "VMServiceScrape")
    for proto, vs in scrapes.items():
        assert vs["spec"] == monitors[proto]["spec"], proto
        assert vs["metadata"]["labels"] == monitors[proto]["metadata"]["labels"], proto


def test_alert_rules_come_with_their_components(
    renders: dict[str, list[dict]], components_of: dict[str, tuple[str, ...]]
) -> None:
    """alerts/otelpower-rules.yaml (the file vmalert checks): a PrometheusRule with alerts, the
    same spec as a VMRule with vmrule."""
    source = yaml.safe_load((ROOT / "alerts" / "otelpower-rules.yaml").read_text())
    for name, objs in renders.items():
        comps = components_of.get(name, ())
        for kind, component in (("PrometheusRule", "alerts"), ("VMRule", "vmrule")):
            rules = _of(objs, kind)
            assert len(rules) == (component in comps), (name, kind)
            for rule in rules:
                assert rule["metadata"]["namespace"] == "otelpower"
                assert rule["spec"] == source["spec"], name
    alerts = {r["alert"] for g in source["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"PlugDown", "ReaderDown", "MatterServerDisconnected"} <= alerts


# --- secrets and config --------------------------------------------------------------------


def test_no_secret_values_are_rendered(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        for s in _of(objs, "Secret"):
            assert not s.get("data") and not s.get("stringData"), f"{name}: {s['metadata']}"


def test_credentials_come_from_an_optional_secret(renders: dict[str, list[dict]]) -> None:
    for name, objs in renders.items():
        for w in _workloads(objs):
            if w["metadata"]["name"] not in EXPORTERS:
                continue
            pod = w["spec"]["template"]["spec"]
            vols = {v["name"]: v for v in pod["volumes"]}
            mount = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}[SECRET_DIR]
            assert mount["readOnly"] is True
            secret = vols[mount["name"]]["secret"]
            assert secret["secretName"] == "otelpower-credentials", name
            assert secret["optional"] is True, name


def test_collector_config_is_the_repository_file(renders: dict[str, list[dict]]) -> None:
    expected = (ROOT / "collector-config" / "config.yaml").read_bytes()
    for name, objs in renders.items():
        cm = _configmap(objs, "otelcol-config")
        if cm is None:
            assert "otelcol" not in _names(objs), name
            continue
        assert cm["data"]["config.yaml"].encode("utf-8") == expected, name
        pod = _named(objs, "Deployment", "otelcol")["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["config"]["configMap"]["name"] == cm["metadata"]["name"]
        c = pod["containers"][0]
        assert c["args"] == ["--config", "/etc/otelcol/config.yaml"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["VM_REMOTE_WRITE_URL"].endswith("/api/v1/write")
        assert env["PROM_EXPORTER_ENDPOINT"] == "0.0.0.0:8889"
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        wal_mount = next(p for p in mounts if env["PRW_WAL_DIR"].startswith(p.rstrip("/") + "/"))
        assert "persistentVolumeClaim" in vols[mounts[wal_mount]], "WAL not on a PVC"


def test_exporter_config_is_valid(renders: dict[str, list[dict]], tmp_path: Path) -> None:
    """Each rendered otelpower config loads with otelpower's own parser (secrets stubbed)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "username").write_text("user@example.com\n")
    (secrets / "password").write_text("not-a-real-password\n")
    for name, objs in _exporter_renders(renders):
        cm = _configmap(objs, "otelpower-config")
        assert cm is not None, name
        text = cm["data"]["config.yaml"]
        path = tmp_path / f"{name}.yaml"
        path.write_text(text.replace(SECRET_DIR, str(secrets)))
        cfg = load_config(path, environ={})
        assert credentials(cfg).username == "user@example.com", name
        assert cfg.devices, name
        assert cfg.prometheus_port == 9464, name


def test_the_matter_reader_finds_the_bundled_server(
    renders: dict[str, list[dict]], tmp_path: Path
) -> None:
    """home's matter.url is the Service of k8s/matter-server, in its namespace, on its port."""
    cm = _configmap(renders["home"], "otelpower-config")
    assert cm is not None
    path = tmp_path / "home.yaml"
    path.write_text(cm["data"]["config.yaml"].replace(SECRET_DIR, str(tmp_path / "none")))
    url = server_url(load_config(path, environ={}))
    m = re.fullmatch(r"ws://([a-z0-9-]+)\.([a-z0-9-]+)\.svc:(\d+)/ws", url or "")
    assert m, url
    svc = _named(renders["matter-server"], "Service", m[1])
    assert svc["metadata"]["namespace"] == m[2]
    assert int(m[3]) in {p["port"] for p in svc["spec"]["ports"]}
    server = _named(renders["matter-server"], "Deployment", "matter-server")["spec"]
    assert server["replicas"] == 1 and server["strategy"]["type"] == "Recreate"
    pod = server["template"]["spec"]
    data = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/data")
    assert "persistentVolumeClaim" in {v["name"]: v for v in pod["volumes"]}[data["name"]]


def test_exporter_commands(renders: dict[str, list[dict]]) -> None:
    parser, _ = cli._parser()
    for reader in READERS:
        name = f"otelpower-{reader}"  # the house's, else the combination of every component
        objs = renders["home" if name in HOUSE_EXPORTERS else "all-prometheus"]
        c = _container(_workload(objs, name))
        assert c["args"] == ["run", "/etc/otelpower/config.yaml", "--protocol", reader]
        args = parser.parse_args(c["args"])  # otelpower's own command line accepts it
        assert (args.command, args.protocol) == ("run", reader)
        assert c["image"].startswith("ghcr.io/otelpower/otelpower:")
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/etc/otelpower" in mounts and "/tmp" in mounts


# --- the dashboards kustomization template -------------------------------------------------


def test_dashboards_component_with_a_sample_dashboard(kustomize: str, tmp_path: Path) -> None:
    """k8s/components/dashboards + the dashboards/kustomization.yaml template, on a copy."""
    for d in ("k8s", "collector-config", "alerts"):
        shutil.copytree(ROOT / d, tmp_path / d)
    dashboards = tmp_path / "dashboards"
    dashboards.mkdir()
    template = K8S / "components" / "dashboards" / "dashboards-kustomization.example.yaml"
    (dashboards / "kustomization.yaml").write_text(template.read_text())
    (dashboards / "overview.json").write_text('{"uid": "otelpower-overview", "panels": []}\n')
    variant = tmp_path / "variant"
    variant.mkdir()
    (variant / "kustomization.yaml").write_text(
        "namespace: otelpower\nresources: [../k8s/base]\n"
        "components: [../k8s/components/dashboards]\n"
    )
    objs = [d for d in yaml.safe_load_all(tool("renders").build(kustomize, variant)) if d]
    cms = [
        o
        for o in _of(objs, "ConfigMap")
        if o["metadata"].get("labels", {}).get("grafana_dashboard")
    ]
    assert len(cms) == 1
    assert cms[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cms[0]["metadata"]["namespace"] == "otelpower"
    assert cms[0]["data"]["overview.json"].startswith('{"uid": "otelpower-overview"')


# --- offline schema validation -------------------------------------------------------------


def test_rendered_objects_validate_offline(
    renders: dict[str, list[dict]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tools/k8s-validate/validate.py on every rendering and argocd/*.yaml.

    The CRD-model check (node) runs when tools/k8s-validate/node_modules is installed
    (`make k8s-tools`), and is required under CI.
    """
    files = []
    for name, objs in renders.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
        files.append(str(path))
    files += [str(p) for p in sorted((ROOT / "argocd").glob("*.yaml"))]
    have_node = (ROOT / "tools" / "k8s-validate" / "node_modules").is_dir()
    if not have_node and os.environ.get("CI"):
        pytest.fail("tools/k8s-validate/node_modules missing under CI: run `make k8s-tools`")
    rc = tool("validate").main(files if have_node else ["--skip-node", *files])
    assert rc == 0, capsys.readouterr().err


def test_the_validator_rejects_unknown_fields(
    renders: dict[str, list[dict]], tmp_path: Path
) -> None:
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
    (scrape,) = copy.deepcopy(_of(renders["victoriametrics"], "VMServiceScrape"))
    scrape["spec"]["endpoints"][0]["intervall"] = "15s"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([bad, scrape]))
    module = tool("validate")
    assert module.main(["--skip-node", str(path)]) == 1
    # the VMRule: as generated it passes; a misspelt rule field fails
    vmrule = yaml.safe_load((K8S / "components" / "vmrule" / "otelpower-vmrule.yaml").read_text())
    path.write_text(yaml.safe_dump(vmrule))
    assert module.main(["--skip-node", str(path)]) == 0
    vmrule["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    path.write_text(yaml.safe_dump(vmrule))
    assert module.main(["--skip-node", str(path)]) == 1
