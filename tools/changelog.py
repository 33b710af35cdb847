#!/usr/bin/env python3
"""Print CHANGELOG.md's section for a version: the release notes of its tag.

    tools/changelog.py 0.1.0          (or v0.1.0, or refs/tags/v0.1.0)
    tools/changelog.py --latest       the newest released version's number

Exits 1, saying so, when the changelog has no section for the version or the section is
empty: the release workflow runs this before anything is published. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"
# "## [0.1.0] - 2026-01-31", "## [0.1.0]", "## 0.1.0": Keep a Changelog's headings
HEADING = re.compile(r"^## \[?(?P<version>[^\]\s]+)\]?(?:[ \t].*)?$", re.M)


def sections(text: str) -> dict[str, str]:
    """{version: body} for every `## ` section, in the file's order (Unreleased included)."""
    found = list(HEADING.finditer(text))
    out: dict[str, str] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        body = text[match.end() : end]
        # reference-style link definitions at the end belong to no section
        body = re.sub(r"^\[[^\]]+\]:\s+\S+\s*$", "", body, flags=re.M)
        out[match.group("version")] = body.strip() + "\n"
    return out


def normalize(ref: str) -> str:
    return ref.removeprefix("refs/tags/").removeprefix("v")


def notes(text: str, version: str) -> str:
    version = normalize(version)
    found = sections(text)
    if version not in found:
        known = ", ".join(v for v in found if v.lower() != "unreleased") or "none"
        raise LookupError(
            f"CHANGELOG.md has no section '## [{version}]' (released versions: {known});"
            " add one before tagging"
        )
    if not found[version].strip():
        raise LookupError(f"CHANGELOG.md: the section for {version} is empty")
    return found[version]


def latest(text: str) -> str:
    released = [v for v in sections(text) if v.lower() != "unreleased"]
    if not released:
        raise LookupError("CHANGELOG.md has no released version")
    return released[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("version", nargs="?", help="X.Y.Z, vX.Y.Z or refs/tags/vX.Y.Z")
    what.add_argument("--latest", action="store_true", help="the newest released version")
    p.add_argument("--file", type=Path, default=CHANGELOG, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    text = args.file.read_text(encoding="utf-8")
    try:
        sys.stdout.write(latest(text) + "\n" if args.latest else notes(text, args.version))
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
