"""Reading the generated dashboards: every query target and variable, with Grafana's
variables expanded the way the live test runs them."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "dashboards"
DASHBOARD_FILES = ("otelpower-power.json", "otelpower-compare.json")
RULES_FILE = ROOT / "alerts" / "otelpower-rules.yaml"
VMALERT_FILE = ROOT / "alerts" / "vmalert-rules.yaml"


def generator():
    """dashboards/generate.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "otelpower_dashboards", DASHBOARD_DIR / "generate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Grafana's built-in intervals, replaced by windows the ~25 s test bed covers (subquery
# steps of seconds, so a 1m range holds enough points).
BUILTIN = {
    "$__rate_interval": "1m",
    "$__range": "1m",
    "$__interval": "1s",
    "$energy_day_step": "5s",  # 1d at 5 s: under VictoriaMetrics' 30,000 points per series
}


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def load(name: str) -> dict:
    return json.loads((DASHBOARD_DIR / name).read_text())


def panels(dash: dict) -> Iterator[dict]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def targets(dashboards: dict[str, dict] | None = None) -> list[Target]:
    """Every panel query of the committed dashboards (or of ``dashboards``, generated)."""
    out = []
    for name in DASHBOARD_FILES:
        for p in panels(dashboards[name] if dashboards else load(name)):
            for t in p.get("targets", []):
                out.append(Target(name, p["title"], t["refId"], t["expr"]))
    return out


def variable_queries(dashboards: dict[str, dict] | None = None) -> list[tuple[str, str, str]]:
    """(dashboard, variable, label_values(...) query) of every query variable."""
    return [
        (name, v["name"], v["query"])
        for name in DASHBOARD_FILES
        for v in (dashboards[name] if dashboards else load(name))["templating"]["list"]
        if v["type"] == "query"
    ]


def expand(expr: str, preference: str = "native") -> str:
    """Variables as an "All" selection (``.*``), the preference as given, built-ins as 1m."""
    for key, value in BUILTIN.items():
        expr = expr.replace(key, value)
    expr = re.sub(r"\$\{price\}|\$price\b", "0.30", expr)
    expr = expr.replace("${protocol_preference}", preference)
    expr = expr.replace("$protocol_preference", preference)
    expr = re.sub(r"\$\{(house|room|shelf|device)\}|\$(house|room|shelf|device)\b", ".*", expr)
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr
