"""A release is a tag (issue 33): the version the tag makes, CHANGELOG.md's section that becomes
the release notes (tools/changelog.py), and a tag-less checkout's version.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = ROOT / "CHANGELOG.md"
SCRIPT = ROOT / "tools" / "changelog.py"


def changelog(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def released() -> list[Version]:
    out = changelog("--latest")
    assert out.returncode == 0, out.stderr
    headings = re.findall(r"^## \[?([0-9][^\]\s]*)", CHANGELOG.read_text(), flags=re.M)
    return [Version(v) for v in headings]


# --- tools/changelog.py --------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["0.1.0", "v0.1.0", "refs/tags/v0.1.0"])
def test_changelog_prints_the_section_of_a_version(ref: str) -> None:
    out = changelog(ref)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The first release.")
    assert "### Readers" in out.stdout
    assert not re.search(r"^## ", out.stdout, flags=re.M)  # that section only


def test_changelog_fails_clearly_for_a_tag_without_a_section() -> None:
    out = changelog("v9.9.9")
    assert out.returncode == 1 and not out.stdout
    assert "CHANGELOG.md has no section '## [9.9.9]'" in out.stderr, out.stderr
    assert "0.1.0" in out.stderr  # what it has


def test_changelog_sections_end_at_the_next_heading_and_at_links(tmp_path: Path) -> None:
    text = tmp_path / "CHANGELOG.md"
    text.write_text(
        "# Changelog\n\n## [Unreleased]\n\n## [1.1.0] - 2026-02-01\n### Fixed\n- b\n\n"
        "## 1.0.0\n- a\n\n[1.1.0]: https://example.com/compare/v1.0.0...v1.1.0\n"
    )
    for version, body in (("1.1.0", "### Fixed\n- b\n"), ("v1.0.0", "- a\n")):
        out = changelog(version, "--file", text)
        assert (out.returncode, out.stdout) == (0, body), out.stderr
    assert changelog("--latest", "--file", text).stdout == "1.1.0\n"
    out = changelog("Unreleased", "--file", text)
    assert out.returncode == 1 and "is empty" in out.stderr


def test_changelog_keeps_an_unreleased_section_on_top() -> None:
    headings = re.findall(r"^## (.*)$", CHANGELOG.read_text(), flags=re.M)
    assert headings[0] == "[Unreleased]", headings
    versions = released()
    assert versions == sorted(versions, reverse=True), versions  # newest first


# --- the version ---------------------------------------------------------------------------


def test_every_tag_has_a_changelog_section_and_the_first_one_too() -> None:
    """The release workflow refuses a tag without a section; here, before anyone tags: every
    existing v* tag has one, and with no tag yet the newest section is the first release."""
    versions = released()
    tags = [t for t in git("tag", "--list", "v*").split() if re.fullmatch(r"v\d.*", t)]
    for tag in tags:
        assert Version(tag[1:]) in versions, f"{tag}: no section in CHANGELOG.md"
    # a shallow clone (CI's checkout) has no tags though some exist: nothing to conclude
    if not tags and git("rev-parse", "--is-shallow-repository") != "true":
        assert versions[0] == Version("0.1.0"), versions


@pytest.mark.live  # builds with uv (the build backend from the package index)
def test_a_tagless_checkout_builds_a_sensible_dev_version(tmp_path: Path) -> None:
    """A clone without tags (as before the first tag): a PEP 440 dev release that names the
    commit and sorts before every release in CHANGELOG.md, so nobody takes it for one."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists():
        if os.environ.get("CI"):
            pytest.fail("uv not found (make setup installs it in .tools/bin)")
        pytest.skip("uv not found: make setup")
    clone = tmp_path / "clone"
    git("clone", "--quiet", "--no-local", "--no-tags", str(ROOT), str(clone))
    head = git("rev-parse", "HEAD", cwd=clone)
    assert not git("tag", cwd=clone)
    out = tmp_path / "dist"
    subprocess.run(
        [uv, "build", "--quiet", "--wheel", "--out-dir", out, "--python", sys.executable, clone],
        check=True,
        timeout=180,
        capture_output=True,
    )
    (wheel,) = out.glob("otelpower-*.whl")
    version = Version(wheel.name.split("-")[1])
    assert version.is_devrelease, version
    assert version.dev == int(git("rev-list", "--count", "HEAD", cwd=clone))
    node = re.search(r"(?:^|\.)g([0-9a-f]{7,})(?:\.|$)", version.local or "")
    assert node and head.startswith(node.group(1)), version
    assert all(version < v for v in released()), version


@pytest.mark.live  # builds with uv (the build backend from the package index)
def test_without_git_metadata_the_version_says_unknown(tmp_path: Path) -> None:
    """The image's build context has no .git: without OTELPOWER_VERSION the wheel built there
    is 0.0.0+unknown (tools/image-install.sh; the workflow passes the tag's version)."""
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists() and not os.environ.get("CI"):
        pytest.skip("uv not found: make setup")
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "otelpower", tree / "otelpower", ignore=shutil.ignore_patterns("node_*"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree)
    out = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETUPTOOLS_SCM")}
    subprocess.run(
        [uv, "build", "--quiet", "--wheel", "--out-dir", out, "--python", sys.executable, tree],
        check=True,
        timeout=180,
        capture_output=True,
        env={**env, "GIT_CEILING_DIRECTORIES": str(tmp_path)},
    )
    assert [p.name for p in out.glob("*.whl")] == ["otelpower-0.0.0+unknown-py3-none-any.whl"]


# --- the workflows (static; `make actionlint` checks their syntax) --------------------------

WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_release_workflow_publishes_a_tag_by_trusted_publishing() -> None:
    release = workflow("release.yaml")
    triggers = release[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"] == {"tags": ["v*"]}
    assert release["permissions"] == {"contents": "read"}
    jobs = release["jobs"]
    on_tag = "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
    pypi = jobs["pypi"]
    assert pypi["if"] == on_tag and set(pypi["needs"]) == {"build", "test"}
    assert jobs["test"] == {"if": on_tag, "uses": "./.github/workflows/test.yaml"}
    assert pypi["environment"]["name"] == "pypi"
    assert pypi["permissions"] == {"id-token": "write"}
    publish = [s for s in pypi["steps"] if s.get("uses", "").startswith("pypa/gh-action-pypi")]
    assert len(publish) == 1 and "with" not in publish[0]  # no password, no token: OIDC
    assert "secrets." not in (WORKFLOWS / "release.yaml").read_text()
    assert jobs["github-release"]["if"] == on_tag
    assert set(jobs["github-release"]["needs"]) == {"build", "pypi"}
    assert jobs["github-release"]["permissions"] == {"contents": "write"}
    build = " ".join(s.get("run", "") for s in jobs["build"]["steps"])
    assert "make dist" in build and "make package-check DIST=dist" in build
    assert 'tools/changelog.py "$version"' in build
    checkout = jobs["build"]["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0  # hatch-vcs needs the tags


def test_workflows_pin_actions_by_release() -> None:
    for path in WORKFLOWS.glob("*.yaml"):
        for uses in re.findall(r"uses: (\S+)", path.read_text()):
            if uses.startswith("./.github/workflows/"):
                assert (ROOT / uses).is_file(), uses  # a reusable workflow of this repository
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+|release/v1)", uses), (path.name, uses)


def test_image_is_tagged_with_and_reports_the_version() -> None:
    images = workflow("images.yaml")["jobs"]["images"]
    steps = images["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    meta = next(s for s in steps if s.get("uses", "").startswith("docker/metadata-action"))
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"]
    push = [s for s in steps if s.get("uses", "").startswith("docker/build-push")][-1]
    assert "OTELPOWER_VERSION=" in push["with"]["build-args"]
    assert "steps.version.outputs.version" in push["with"]["build-args"]
    shown = next(s for s in steps if s.get("name") == "The image reports the version")
    assert '"otelpower $VERSION"' in shown["run"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    builder = dockerfile[
        dockerfile.index("AS builder") : dockerfile.index(
            "\nFROM ", 1 + dockerfile.index("AS builder")
        )
    ]
    assert "ARG OTELPOWER_VERSION" in builder
    assert (
        "SETUPTOOLS_SCM_PRETEND_VERSION=$OTELPOWER_VERSION"
        in (ROOT / "tools" / "image-install.sh").read_text()
    )
