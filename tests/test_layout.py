"""The architecture holds: readers are plug-ins, and the rest of otelpower names none of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from otelpower.readers import registry

PACKAGE = Path(__file__).resolve().parents[1] / "otelpower"
READER_FREE = [PACKAGE / "app.py", PACKAGE / "cli.py", PACKAGE / "config", PACKAGE / "export"]


def reader_words() -> set[str]:
    words = set()
    for spec in registry.specs():
        words |= {spec.name, spec.protocol, *spec.requires, *spec.quiet_loggers}
    return words


def test_app_cli_config_and_export_name_no_reader() -> None:
    pattern = re.compile(r"\b(" + "|".join(sorted(reader_words())) + r")\b", re.IGNORECASE)
    found = []
    for root in READER_FREE:
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_startup_imports_no_reader_library() -> None:
    """The registry and the CLI load every spec; no client library is imported for it."""
    libraries = sorted({m for s in registry.specs() for m in s.requires})
    probe = run_python(
        "import sys\n"
        "from otelpower import app, cli\n"
        "from otelpower.readers import registry\n"
        "registry.specs(); cli._parser()\n"
        f"print([m for m in {libraries!r} if m in sys.modules])\n"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("library", "argv", "extra"),
    [
        ("kasa", ["read", "127.0.0.1"], "native"),
        ("matter_server", ["run", "CONFIG", "--protocol", "matter"], "matter"),
        ("cryptography", ["sim"], "native"),
    ],
)
def test_a_missing_reader_library_names_the_extra(
    library: str, argv: list[str], extra: str, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("house: h\nmatter: {url: 'ws://127.0.0.1:1/ws'}\n")
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    result = run_python(
        f"import sys; sys.modules[{library!r}] = None\n"  # as if it were not installed
        "from otelpower.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"pip install 'otelpower[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def _imports(path: Path) -> set[str]:
    """The otelpower modules ``path`` imports anywhere (module level or in a function)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("otelpower"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("otelpower")}
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_config_imports_no_reader() -> None:
    """config/ is handed the reader specs; it never imports a reader (nor the registry)."""
    found = {
        f"{_module(p)} -> {m}"
        for p in sorted((PACKAGE / "config").rglob("*.py"))
        for m in _imports(p)
        if m.startswith("otelpower.readers")
    }
    assert not found, sorted(found)


def test_no_import_circle_among_readers() -> None:
    """No module of otelpower/readers/ reaches itself through imports (function-level
    ones too: a lazy import hides a circle, it does not remove it)."""
    paths = sorted((PACKAGE / "readers").rglob("*.py"))
    modules = {_module(p): p for p in paths}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # a package's __init__ is not an edge to its children
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in trail:
                circles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif len(trail) < len(modules):
                visit(nxt, [*trail, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not circles, "\n".join(sorted(set(circles))[:20])
