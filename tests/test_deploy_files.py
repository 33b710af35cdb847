"""docker-compose.yaml as compose renders it (Debian's docker-compose; no engine needed), and
the exporter's entrypoint: ./config/config.yaml when it exists, else zero-config.

tests/test_images_run.py runs the same service on the image; `make deploy-check` validates
both profiles and systemd/otelpower.service."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = os.environ.get("DOCKER_COMPOSE", "/usr/bin/docker-compose")
HARDENING = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "network_mode": "host",
}


def render(workdir: Path, **env: str) -> dict:
    """``docker-compose config`` of both profiles in ``workdir`` (a copy, with no .env)."""
    if not Path(COMPOSE).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{COMPOSE} is missing (make deploy-check installs it)")
        pytest.skip(f"{COMPOSE} is missing: make deploy-check")
    shutil.copy(ROOT / "docker-compose.yaml", workdir)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OTELPOWER_", "VICTORIA"))}
    out = subprocess.run(
        [COMPOSE, "--profile", "pipeline", "config"],
        cwd=workdir,
        env={**keep, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_the_default_needs_no_config_file(tmp_path: Path) -> None:
    services = render(tmp_path)["services"]
    assert set(services) == {"otelpower", "otelcol", "victoriametrics"}
    for name, svc in services.items():
        assert {k: svc.get(k) for k in HARDENING} == HARDENING, name
    exporter = services["otelpower"]
    assert exporter["user"] == "10001:10001"
    # a directory, so a missing file cannot turn into one Docker creates in its place
    assert exporter["volumes"] == [f"{tmp_path / 'config'}:/config:ro"]
    assert exporter["entrypoint"][:2] == ["/bin/sh", "-c"]
    assert exporter["command"] == ["--protocol", "native"]
    assert not (tmp_path / "otelpower.yaml").exists() and not (tmp_path / "config").exists()
    vm = services["victoriametrics"]["command"]
    assert "-httpListenAddr=127.0.0.1:8428" in vm, vm  # no login: this machine only


def test_a_config_directory_and_an_open_victoriametrics(tmp_path: Path) -> None:
    services = render(
        tmp_path,
        OTELPOWER_CONFIG_DIR="/etc/otelpower",
        OTELPOWER_PROTOCOL="all",
        VICTORIAMETRICS_LISTEN_ADDR=":8428",
    )["services"]
    assert services["otelpower"]["volumes"] == ["/etc/otelpower:/config:ro"]
    assert services["otelpower"]["command"] == ["--protocol", "all"]
    assert "-httpListenAddr=:8428" in services["victoriametrics"]["command"]


def _entrypoint(config_dir: Path, tmp_path: Path) -> list[str]:
    """The arguments the service's entrypoint hands to ``otelpower``, with /config being
    ``config_dir`` (a stub otelpower on PATH prints them)."""
    script, dollar0 = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"][
        "otelpower"
    ]["entrypoint"][2:]
    script = re.sub(r"(?<![\w/])/config\b", str(config_dir), script.replace("$$", "$"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "otelpower"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    stub.chmod(0o755)
    out = subprocess.run(
        ["/bin/sh", "-c", script, dollar0, "--protocol", "native"],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout.splitlines()


def test_the_entrypoint_runs_the_file_only_when_it_exists(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    assert _entrypoint(config, tmp_path) == ["run", "--protocol", "native"]
    (config / "config.yaml").write_text("house: h\n")
    path = str(config / "config.yaml")
    assert _entrypoint(config, tmp_path) == ["run", path, "--protocol", "native"]
    # not a readable file: handed over all the same, so that otelpower names the problem
    (config / "config.yaml").unlink()
    (config / "config.yaml").mkdir()
    assert _entrypoint(config, tmp_path) == ["run", path, "--protocol", "native"]
