"""`make help` lists every target a user can call (the .PHONY ones of Makefile and mk/*.mk),
each with a description, so a new target cannot go unlisted; and README's first lines name
the targets they tell a newcomer about."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKEFILES = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]


def phony_targets() -> dict[str, Path]:
    """Every target named in a ``.PHONY:`` line (continuation lines joined)."""
    found: dict[str, Path] = {}
    for path in MAKEFILES:
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            if line.startswith(".PHONY:"):
                found.update(dict.fromkeys(line.split(":", 1)[1].split(), path))
    return found


def make_help() -> dict[str, str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = re.findall(r"^  ([a-z0-9-]+) +(\S.*)$", out, flags=re.M)
    return dict(rows)


def test_every_phony_target_is_in_make_help() -> None:
    targets = phony_targets()
    assert {"help", "install", "demo", "unit", "test"} <= set(targets), targets
    listed = make_help()
    missing = sorted(f"{t} ({p.name})" for t, p in targets.items() if t not in listed)
    assert not missing, (
        f"not in `make help`: {', '.join(missing)}; give each rule line a `## description`"
    )
    unknown = sorted(set(listed) - set(targets))
    assert not unknown, f"`make help` lists targets that are not .PHONY: {unknown}"


def test_make_help_says_what_the_first_targets_need() -> None:
    listed = make_help()
    assert "no Node, Go or root" in listed["install"]
    assert "no Node, Go or root" in listed["unit"]
    assert "Node >= 20.19" in listed["demo"] and "Go" not in listed["demo"]
    for need in ("Node >= 20.19", "Go", "root", "docker"):
        assert need in listed["test"], need


def test_readme_first_lines_name_the_commands() -> None:
    top = (ROOT / "README.md").read_text().split("\n## ", 1)[0]  # before the first section
    for command in ("make demo", "make test", "make unit", "make install", "make help"):
        assert command in top, f"README.md's first lines do not mention `{command}`"
    assert "20.19" in top
