"""The Kubernetes deployment rendered with the real kustomize binary.

kustomize comes from `make k8s-tools` (.tools/bin/kustomize) or PATH. Without it these tests
skip, except under CI (env CI set), where a missing binary is a failure.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
TOOLS = ROOT / "tools" / "k8s-validate"


@functools.cache
def tool(name: str) -> Any:
    """A module of tools/k8s-validate (renders, validate), loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"k8s_{name}", TOOLS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _kustomize() -> str | None:
    local = ROOT / ".tools" / "bin" / "kustomize"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("kustomize")


@pytest.fixture(scope="session")
def kustomize() -> str:
    binary = _kustomize()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("kustomize not found under CI: run `make k8s-tools` (or k8s-check) first")
        pytest.skip("kustomize not found: `make k8s-tools` installs it into .tools/bin")
    return binary


@pytest.fixture(scope="session")
def renders(kustomize: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """name -> objects, for every rendering tools/k8s-validate/renders.py lists."""
    return tool("renders").render_all(kustomize, tmp_path_factory.mktemp("variants"))


@pytest.fixture(scope="session")
def components_of() -> dict[str, tuple[str, ...]]:
    """name -> the components in effect in that rendering."""
    return {r.name: r.components() for r in tool("renders").renderings()}
