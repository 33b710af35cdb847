"""Using the deployment from elsewhere: the kustomizations k8s/README.md tells users to write in
their own repository (remote bases pinned to a release tag), and the ArgoCD Applications."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import K8S, ROOT, tool


def _release() -> str:
    """The release the examples pin: CHANGELOG.md's newest version (the version comes from
    the git tag, so pyproject.toml has none; tools/changelog.py reads the sections)."""
    spec = importlib.util.spec_from_file_location(
        "otelpower_changelog", ROOT / "tools" / "changelog.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.latest((ROOT / "CHANGELOG.md").read_text())


TAG = f"v{_release()}"
UPSTREAM = "https://github.com/YOUR-ORG/otelpower"
REPO_URL = f"{UPSTREAM}.git"
# What a remote base needs from the repository (the components reference these directories).
REPO_DIRS = ("k8s", "collector-config", "alerts", "dashboards")


def _readme_kustomizations() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", (K8S / "README.md").read_text(), flags=re.S)
    found = [b for b in blocks if "//k8s/base?ref=" in b]
    assert len(found) >= 2, "k8s/README.md lost its remote-base examples"
    return found


@pytest.fixture(scope="module")
def tagged_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with this checkout's deployment files, tagged with the release."""
    if shutil.which("git") is None:
        pytest.skip("git not found (kustomize fetches remote bases with it)")
    repo = tmp_path_factory.mktemp("upstream") / "otelpower"
    for d in REPO_DIRS:
        shutil.copytree(ROOT / d, repo / d)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "release"], ["tag", TAG]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return repo


def test_readme_kustomizations_build_from_a_tagged_repository(
    kustomize: str, tagged_clone: Path, tmp_path: Path
) -> None:
    """Each README example, as written, with the GitHub URL pointed at a local clone."""
    house = (K8S / "base" / "otelpower.yaml").read_text() + "\n# the user's own file\n"
    for i, text in enumerate(_readme_kustomizations()):
        refs = set(re.findall(r"\?ref=(\S+)", text))
        assert refs == {TAG}, f"example {i} pins {refs}, the release is {TAG}"
        d = tmp_path / f"example{i}"
        d.mkdir()
        (d / "kustomization.yaml").write_text(text.replace(UPSTREAM, f"file://{tagged_clone}"))
        (d / "otelpower.yaml").write_text(house)
        objs = [o for o in yaml.safe_load_all(tool("renders").build(kustomize, d)) if o]
        workloads = {o["metadata"]["name"] for o in objs if o["kind"] == "StatefulSet"}
        assert "otelpower-native" in workloads, i
        (ns,) = [o for o in objs if o["kind"] == "Namespace"]
        assert ns["metadata"]["name"] == "otelpower"
        assert all(o["metadata"].get("namespace") == "otelpower" for o in objs if o != ns)
        (cm,) = [
            o
            for o in objs
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("otelpower-config")
        ]
        assert cm["data"]["config.yaml"] == house, "the user's config replaces the template"
        assert any(o["kind"] == "PrometheusRule" for o in objs), i


def test_readme_kustomization_from_a_clone_builds(kustomize: str, tagged_clone: Path) -> None:
    """What works before any release tag: the README's example with local paths into a clone
    (named ``otelpower``) beside the user's directory."""
    blocks = re.findall(r"```yaml\n(.*?)```", (K8S / "README.md").read_text(), flags=re.S)
    (text,) = [b for b in blocks if "- ../otelpower/k8s/base\n" in b]
    assert "?ref=" not in text
    home = tagged_clone.parent / "home"
    home.mkdir()
    (home / "kustomization.yaml").write_text(text)
    house = (K8S / "base" / "otelpower.yaml").read_text() + "\n# the user's own file\n"
    (home / "otelpower.yaml").write_text(house)
    objs = [o for o in yaml.safe_load_all(tool("renders").build(kustomize, home)) if o]
    assert "otelpower-native" in {o["metadata"]["name"] for o in objs if o["kind"] == "StatefulSet"}
    (cm,) = [o for o in objs if o["metadata"]["name"].startswith("otelpower-config")]
    assert cm["data"]["config.yaml"] == house
    assert any(o["kind"] == "PrometheusRule" for o in objs)


def _applications() -> dict[str, dict]:
    out = {}
    for path in sorted((ROOT / "argocd").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert [d["kind"] for d in docs] == ["Application"], path
        out[path.name] = docs[0]
    return out


def test_every_overlay_has_a_pinned_application(renders: dict[str, list[dict]]) -> None:
    r = tool("renders")
    by_root = {rend.root: rend.name for rend in r.renderings() if not rend.extra}
    synced = set()
    for filename, app in _applications().items():
        spec = app["spec"]
        assert app["apiVersion"] == "argoproj.io/v1alpha1"
        assert app["metadata"]["name"].startswith("otelpower-"), filename
        assert spec["source"]["repoURL"] == REPO_URL, filename
        assert spec["source"]["targetRevision"] == TAG, f"{filename}: not pinned to {TAG}"
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
        root = ROOT / spec["source"]["path"]
        name = by_root[root]
        synced.add(name)
        namespaces = {o["metadata"]["name"] for o in renders[name] if o["kind"] == "Namespace"}
        assert namespaces == {spec["destination"]["namespace"]}, filename
    assert synced == {*r.overlays(), "matter-server"}
