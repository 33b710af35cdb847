"""The sdist and wheel as a release publishes them (issue 33), built and checked here.

`uv build` makes the sdist, then the wheel from the sdist (so the sdist is complete); twine
checks their metadata and that the long description (README.md) renders; the wheel installs
with `[native]` into a fresh venv made by uv, wheels only (nothing compiled: no Node, Go or
compiler; runs unprivileged), and that venv's `otelpower` reports the version, `check`s a
config and `read`s a plug emulated by the project venv's `otelpower sim`.

OTELPOWER_DIST=DIR checks the sdist and wheel in DIR instead of building them (the release
workflow checks exactly the files it publishes). The version rules (tag, dev version,
CHANGELOG section) are in tests/test_release.py.
"""

from __future__ import annotations

import asyncio
import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from harness.processes import cli_process
from harness.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# builds with uv, installs into a fresh venv and starts an emulated plug: a test bed
pytestmark = [pytest.mark.timeout(300), pytest.mark.live]


def uv() -> str:
    found = ROOT / ".tools" / "bin" / "uv"
    if found.exists():
        return str(found)
    if which := shutil.which("uv"):
        return which
    if os.environ.get("CI"):
        pytest.fail("uv not found (make setup installs it in .tools/bin)")
    pytest.skip("uv not found: make setup")


def run(*args: str | Path, timeout: float = 180, **kwargs) -> str:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get("OTELPOWER_DIST")
    if given:
        yield Path(given)
        return
    out = tmp_path_factory.mktemp("dist")
    run(uv(), "build", "--quiet", "--out-dir", out, "--python", sys.executable, ROOT, cwd=ROOT)
    yield out


def one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"{dist}: {pattern}: {found}"
    return found[0]


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(z.read(name))


def test_twine_check(dist: Path) -> None:
    files = [one(dist, "otelpower-*.tar.gz"), one(dist, "otelpower-*.whl")]
    out = run(BIN / "twine", "check", "--strict", *files)
    assert out.count("PASSED") == 2, out


def test_metadata(dist: Path) -> None:
    meta = wheel_metadata(one(dist, "otelpower-*.whl"))
    version = Version(meta["Version"])  # PEP 440, or this raises
    assert str(version) in one(dist, "otelpower-*.tar.gz").name
    assert meta["Name"] == "otelpower"
    assert meta["Requires-Python"] == ">=3.12"
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().startswith("# otelpower")
    extras = set(meta.get_all("Provides-Extra"))
    assert {"native", "matter", "all"} <= extras, extras
    entry = f"otelpower-{version}.dist-info/entry_points.txt"
    with zipfile.ZipFile(one(dist, "otelpower-*.whl")) as z:
        assert "otelpower = otelpower.cli:main" in z.read(entry).decode()


def test_sdist_and_wheel_contents(dist: Path) -> None:
    sdist = one(dist, "otelpower-*.tar.gz")
    with tarfile.open(sdist) as t:
        prefix = sdist.name.removesuffix(".tar.gz") + "/"
        names = {n.removeprefix(prefix) for n in t.getnames()}
    for needed in (
        "PKG-INFO",
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "config.example.yaml",
        "otelpower/__init__.py",
        "otelpower/cli.py",
        "otelpower/sim/matter_plug/plug.mjs",
        "otelpower/sim/profiles/kp115_xor.json",
    ):
        assert needed in names, f"sdist lacks {needed}"
    with zipfile.ZipFile(one(dist, "otelpower-*.whl")) as z:
        wheel = set(z.namelist())
    assert "otelpower/sim/profiles/kp115_xor.json" in wheel
    local_state = re.compile(r"(^|/)(\.tools|\.venv|\.git|\.run|build|dist|node_modules)(/|$)")
    for name in (*names, *wheel):
        assert not local_state.search(name), f"local state packaged: {name}"
        assert not name.endswith(".pyc"), name
    top = {n.split("/")[0] for n in names}
    allowed = {"PKG-INFO", "pyproject.toml", "README.md", "CHANGELOG.md", "config.example.yaml"}
    allowed |= {"LICENSE"}
    allowed |= {".gitignore"}  # hatchling always adds it
    assert top <= allowed | {"otelpower"}, top


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh venv with the wheel and its native extra; (venv, the wheel's version)."""
    tmp = tmp_path_factory.mktemp("installed")
    wheel = one(dist, "otelpower-*.whl")
    # the locked versions of the runtime and the native extra: what make setup tested
    constraints = tmp / "constraints.txt"
    run(
        uv(), "export", "--quiet", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
        "--extra", "native", "--format", "requirements-txt", "-o", constraints, cwd=ROOT,
    )  # fmt: skip
    venv = tmp / "venv"
    run(uv(), "venv", "--quiet", "--python", sys.executable, venv)
    run(
        uv(), "pip", "install", "--quiet", "--python", venv / "bin" / "python",
        "--only-binary", ":all:", "--constraint", constraints, f"{wheel}[native]",
    )  # fmt: skip
    return venv, wheel_metadata(wheel)["Version"]


def otelpower(venv: Path, *args: str | Path) -> str:
    """The venv's otelpower with nothing of the checkout, no Node or Go on PATH."""
    env = {"PATH": str(venv / "bin"), "HOME": str(venv), "PYTHONDONTWRITEBYTECODE": "1"}
    return run(venv / "bin" / "otelpower", *args, timeout=60, env=env, cwd=venv)


def test_installed_wheel_reports_its_version(installed: tuple[Path, str]) -> None:
    venv, version = installed
    assert otelpower(venv, "--version").strip() == f"otelpower {version}"
    where = run(
        venv / "bin" / "python", "-c", "import otelpower; print(otelpower.__file__)", cwd=venv
    )
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout's


async def test_installed_wheel_checks_and_reads_an_emulated_plug(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    venv, _ = installed
    config = tmp_path / "sim.yaml"
    profile = ROOT / "otelpower" / "sim" / "profiles" / "kp115_xor.json"
    # the emulator from the project venv: a free port on a loopback address of its own
    async with cli_process(
        "sim", "--profile", str(profile), "--static", "--config-out", str(config)
    ):
        await wait_for(lambda: config.exists() and config.stat().st_size > 0, timeout=30)
        out = await asyncio.to_thread(otelpower, venv, "check", config)
        assert "OK" in out, out
        text = config.read_text()
        host = re.search(r"host: (\S+)", text).group(1)
        port = re.search(r"port: (\d+)", text).group(1)
        out = await asyncio.to_thread(otelpower, venv, "read", f"{host}:{port}")
        assert "KP115" in out and re.search(r"power \d+\.\d+ W", out), out
