"""Every kustomization k8s/ offers, rendered: one list for `make k8s-build` and tests/k8s.

    .venv/bin/python tools/k8s-validate/renders.py --kustomize .tools/bin/kustomize --out build/k8s

A rendering is a root (k8s/base, k8s/matter-server, an overlay) plus components added on top,
built from a generated kustomization. Every component is rendered alone on the base, and the
combinations below with many at once; a new directory in k8s/components or k8s/overlays is
picked up without editing this file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
NAMESPACE = "otelpower"
# Components that change what the others bring: listed after them (kustomize applies
# components in order, and a patch only sees what is there already).
MODIFIERS = ("vmservicescrape", "host-network", "sharded-native")
# Combinations with many components at once, beyond each component alone on the base.
COMBINATIONS = {
    "all-prometheus": (
        "matter",
        "shelly",
        "otlp",
        "alerts",
        "dashboards",
        "host-network",
        "sharded-native",
    ),
    "all-victoriametrics": ("matter", "dashboards", "vmservicescrape", "vmrule", "host-network"),
}
# Components added to the home overlay from outside (they only patch, so order is safe).
HOME_VARIANTS = ("host-network", "sharded-native", "dashboards")


@dataclass(frozen=True)
class Rendering:
    name: str
    root: Path  # a kustomization directory
    extra: tuple[str, ...] = ()  # components added on top of root

    def components(self) -> tuple[str, ...]:
        """Every component in effect, the root's own first."""
        return (*_declared_components(self.root), *self.extra)


def _declared_components(root: Path) -> tuple[str, ...]:
    """The component directory names a kustomization (and the ones it builds on) lists."""
    data = yaml.safe_load((root / "kustomization.yaml").read_text(encoding="utf-8")) or {}
    names: list[str] = []
    for resource in data.get("resources", []):
        child = (root / resource).resolve()
        if (child / "kustomization.yaml").is_file() and K8S in child.parents:
            names.extend(_declared_components(child))
    names.extend(Path(c).name for c in data.get("components", []))
    return tuple(names)


def components() -> list[str]:
    return sorted(p.name for p in (K8S / "components").iterdir() if p.is_dir())


def overlays() -> list[str]:
    return sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())


def _ordered(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda n: n in MODIFIERS))


def renderings() -> list[Rendering]:
    base = K8S / "base"
    out = [Rendering("base", base), Rendering("matter-server", K8S / "matter-server")]
    out += [Rendering(o, K8S / "overlays" / o) for o in overlays()]
    out += [
        Rendering(f"base+{c}", base, ("namespace", c)) for c in components() if c != "namespace"
    ]
    out += [
        Rendering(name, base, ("namespace", *_ordered(parts)))
        for name, parts in COMBINATIONS.items()
    ]
    out += [Rendering(f"home+{c}", K8S / "overlays" / "home", (c,)) for c in HOME_VARIANTS]
    return out


def _kustomization_dir(rendering: Rendering, workdir: Path) -> Path:
    if not rendering.extra:
        return rendering.root
    d = workdir / rendering.name
    d.mkdir(parents=True, exist_ok=True)
    root = os.path.relpath(rendering.root, d)
    comps = [os.path.relpath(K8S / "components" / c, d) for c in rendering.extra]
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": [root],
        "components": comps,
    }
    (d / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return d


def build(kustomize: str, directory: Path) -> str:
    proc = subprocess.run(
        [kustomize, "build", str(directory)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{proc.stderr.strip()}")
    return proc.stdout


def render_all(kustomize: str, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    """name -> the rendered objects of every rendering (variant kustomizations in workdir)."""
    out = {}
    for r in renderings():
        text = build(kustomize, _kustomization_dir(r, workdir))
        out[r.name] = [d for d in yaml.safe_load_all(text) if d is not None]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kustomize", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    work = args.out / "variants"  # the generated kustomizations
    work.mkdir(parents=True, exist_ok=True)
    for r in renderings():
        try:
            text = build(args.kustomize, _kustomization_dir(r, work))
        except RuntimeError as e:
            print(f"error: {r.name}: {e}", file=sys.stderr)
            return 1
        extra = f" + components {', '.join(r.extra)}" if r.extra else ""
        print(f"kustomize build {r.root.relative_to(ROOT)}{extra} > {args.out}/{r.name}.yaml")
        (args.out / f"{r.name}.yaml").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
