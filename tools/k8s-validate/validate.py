"""Offline validation of rendered Kubernetes manifests (no cluster, no network).

    .venv/bin/python tools/k8s-validate/validate.py build/k8s/*.yaml argocd/*.yaml

Every object is checked by the validator for its kind:

- built-in kinds (core, apps, networking, policy, ...): kubernetes-validate's JSON schemas of
  Kubernetes KUBERNETES_VERSION, strict (unknown fields fail). A kind it has no schema for fails
  too, unless it is one of the custom resources below.
- ServiceMonitor, PrometheusRule (monitoring.coreos.com/v1), Application (argoproj.io/v1alpha1):
  the CRD models of the npm packages @kubernetes-models/prometheus-operator and
  @kubernetes-models/argo-cd, plus a strict unknown-field check (validate-crds.mjs; needs
  `npm ci` in this directory).
- VMServiceScrape, VMRule (operator.victoriametrics.com/v1beta1): k8s/schemas/vmservicescrape and
  vmrule.schema.json, strict schemas we maintain ourselves (no registry package carries the
  operator's schema).

Exit status 0 when everything passes, 1 otherwise (one line per problem).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KUBERNETES_VERSION = "1.33.0"
SCHEMAS = ROOT / "k8s" / "schemas"
NODE_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("argoproj.io/v1alpha1", "Application"),
}
# (apiVersion, kind) -> its schema in k8s/schemas
VM_KINDS = {
    ("operator.victoriametrics.com/v1beta1", "VMServiceScrape"): "vmservicescrape.schema.json",
    ("operator.victoriametrics.com/v1beta1", "VMRule"): "vmrule.schema.json",
}


def load_objects(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(source, object) for every non-empty document of every file."""
    out = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    out.append((str(path), doc))
    return out


def describe(source: str, obj: dict[str, Any]) -> str:
    name = (obj.get("metadata") or {}).get("name", "?")
    return f"{source}: {obj.get('kind', '?')}/{name}"


def check_builtin(source: str, obj: dict[str, Any], version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(root)"
        return [f"{describe(source, obj)}: {where}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            f"{describe(source, obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')} "
            f"in Kubernetes {version} (a typo, or a custom resource this script does not know)"
        ]
    return []


def schema_validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def check_with_schema(
    source: str, obj: dict[str, Any], validator: jsonschema.protocols.Validator
) -> list[str]:
    return [
        f"{describe(source, obj)}: {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: "
        f"{e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


def check_crds_with_node(entries: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], str]:
    if not (HERE / "node_modules").is_dir():
        return ([f"{HERE}/node_modules missing: run `npm ci` there (make k8s-check does)"], "")
    payload = json.dumps([{"source": s, "object": o} for s, o in entries])
    proc = subprocess.run(
        ["node", str(HERE / "validate-crds.mjs")],
        input=payload,
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line.removeprefix("ERROR ") for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0 and not problems:
        problems = [f"validate-crds.mjs exited {proc.returncode}"]
    return problems, proc.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("-k", "--kubernetes-version", default=KUBERNETES_VERSION)
    parser.add_argument(
        "--skip-node", action="store_true", help="do not check ServiceMonitor/Application"
    )
    args = parser.parse_args(argv)

    objects = load_objects(args.files)
    problems: list[str] = []
    node_entries = []
    vm_validators = {key: schema_validator(name) for key, name in VM_KINDS.items()}
    for source, obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in NODE_KINDS:
            node_entries.append((source, obj))
        elif key in vm_validators:
            problems += check_with_schema(source, obj, vm_validators[key])
        else:
            problems += check_builtin(source, obj, args.kubernetes_version)
    node_summary = "skipped"
    if node_entries and not args.skip_node:
        node_problems, node_summary = check_crds_with_node(node_entries)
        problems += node_problems

    for p in problems:
        print(f"ERROR {p}", file=sys.stderr)
    kinds = Counter(obj.get("kind", "?") for _, obj in objects)
    print(
        f"k8s-validate: {len(objects)} objects in {len(args.files)} files "
        f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); "
        f"Kubernetes {args.kubernetes_version} strict; {node_summary}; "
        f"{len(problems)} problems"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
