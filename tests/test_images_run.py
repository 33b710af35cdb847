"""The images, built by `make images`, run as users run them (needs a docker engine).

The otelpower image runs read-only as uid 10001 on the host network against emulated plugs
(python-kasa over XOR and KLAP, the tapo client over TPAP) until /readyz and /metrics answer
with the contract, `check`s a config, and stops cleanly on SIGTERM. The collector image
validates its config and answers its health check. docker-compose.yaml, as shipped, runs the
exporter service on the image built here, with ./config/config.yaml and with no config at all
(zero-config). Skips when the images are missing, unless CI is
set (then `make test` has built them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from harness.ports import free_port
from harness.promtext import find, parse
from harness.wait import wait_for
from otelpower.sim import PlugOptions, builtin_profiles

PROFILES = {p.stem: p for p in builtin_profiles()}
DOCKER = os.environ.get("DOCKER") or (
    "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
)
OTELPOWER_IMAGE = os.environ.get("OTELPOWER_IMAGE", "otelpower:test")
COLLECTOR_IMAGE = os.environ.get("COLLECTOR_IMAGE", "otelcol-otelpower:test")

COMPOSE = os.environ.get("DOCKER_COMPOSE", "/usr/bin/docker-compose")
COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yaml"

pytestmark = pytest.mark.timeout(180)


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def require(image: str) -> str:
    if shutil.which(DOCKER) is None or docker("info").returncode != 0:
        reason = "no docker engine answers"
    elif docker("image", "inspect", image).returncode != 0:
        reason = f"image {image} is missing"
    else:
        return image
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so `make test` should have built it: make images)")
    pytest.skip(f"{reason}: make images")


def require_compose() -> str:
    if Path(COMPOSE).exists():
        return COMPOSE
    if os.environ.get("CI"):
        pytest.fail(f"{COMPOSE} is missing (make deploy-check installs it)")
    pytest.skip(f"{COMPOSE} is missing: make deploy-check")


class Container:
    """``docker run -d`` of one container (the ``container`` fixture removes it)."""

    def __init__(self, image: str, *args: str, options: tuple[str, ...] = ()) -> None:
        self.name = f"otelpower-test-{uuid.uuid4().hex[:8]}"
        run = docker("run", "-d", "--name", self.name, *options, image, *args)
        assert run.returncode == 0, run.stderr

    def stop(self) -> tuple[int, str]:
        """SIGTERM (docker stop), then the exit code and the log."""
        docker("stop", "-t", "20", self.name, timeout=60)
        code = docker("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout.strip()
        logs = docker("logs", self.name)
        return int(code), logs.stdout + logs.stderr


@pytest.fixture
def container() -> Iterator[Callable[..., Container]]:
    """Starts containers as ``Container(...)`` does; removes every one at the end."""
    made: list[Container] = []

    def start(image: str, *args: str, options: tuple[str, ...] = ()) -> Container:
        made.append(Container(image, *args, options=options))
        return made[-1]

    try:
        yield start
    finally:
        for c in made:
            docker("rm", "-f", c.name)


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


async def test_otelpower_image_reads_plugs_read_only(simulator, container, tmp_path: Path):
    image = require(OTELPOWER_IMAGE)
    plugs = await simulator.start(
        [PlugOptions(PROFILES[k]) for k in ("kp115_xor", "p110_klap", "p110_tpap")]
    )
    port = free_port()
    data = simulator.config_dict()
    data["poll"] = {"interval": 1, "timeout": 3}
    data["prometheus"] = {"host": "127.0.0.1", "port": port}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    config.chmod(0o644)
    c = container(
        image,
        "run",
        "/config/config.yaml",
        "--protocol",
        "native",
        options=(
            "--read-only",
            "--user",
            "10001:10001",
            "--network",
            "host",
            "--cap-drop",
            "ALL",
            "-v",
            f"{config}:/config/config.yaml:ro",
        ),
    )
    base = f"http://127.0.0.1:{port}"

    def reading_every_plug() -> bool:
        status, text = http(f"{base}/metrics")
        if status != 200 or http(f"{base}/readyz")[0] != 200:
            return False
        series = parse(text)
        return all(find(series, "tplink_native_power_watts", device_id=p.mac) for p in plugs)

    try:
        await wait_for(reading_every_plug, timeout=90, interval=0.5, in_thread=True)
    except AssertionError:
        pytest.fail(f"no readings from the container; its log:\n{c.stop()[1]}")
    series = parse(http(f"{base}/metrics")[1])
    transports = {
        dict(labels)["transport"]
        for labels in find(series, "tplink_native_device_info")
        if "transport" in dict(labels)
    }
    assert {"XOR", "KLAP v2", "TPAP"} <= transports, transports
    assert find(series, "target_info", service_name="otelpower")
    assert http(f"{base}/healthz")[0] == 200
    code, logs = c.stop()  # SIGTERM
    assert code == 0, logs
    assert "otelpower stopped" in logs and "Traceback" not in logs, logs


def test_otelpower_image_checks_a_config() -> None:
    image = require(OTELPOWER_IMAGE)
    run = docker(
        "run",
        "--rm",
        "--read-only",
        "--network",
        "none",
        image,
        "check",
        "/etc/otelpower/config.example.yaml",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK: house 'home'" in run.stdout
    bad = docker("run", "--rm", "--network", "none", image, "check", "/nonexistent.yaml")
    assert bad.returncode != 0 and "/nonexistent.yaml" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr


async def test_collector_image_validates_and_answers_its_health_check(container) -> None:
    image = require(COLLECTOR_IMAGE)
    run = docker(
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "validate",
        "--config",
        "/etc/otelcol/config.yaml",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    ports = {k: free_port() for k in ("HEALTH", "GUARD", "GRPC", "HTTP", "PROM", "SELF")}
    env = {
        "HEALTH_ENDPOINT": f"127.0.0.1:{ports['HEALTH']}",
        "GUARD_HEALTH_ENDPOINT": f"127.0.0.1:{ports['GUARD']}",
        "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['GRPC']}",
        "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['HTTP']}",
        "PROM_EXPORTER_ENDPOINT": f"127.0.0.1:{ports['PROM']}",
        "OTELCOL_METRICS_PORT": str(ports["SELF"]),
        "VM_REMOTE_WRITE_URL": f"http://127.0.0.1:{free_port()}/api/v1/write",
    }
    # read-only, so the WAL needs a writable directory the collector's uid owns (a plain
    # tmpfs is root's: "failed to open WAL: permission denied")
    wal = "/var/lib/otelcol:uid=65532,gid=65532,mode=0750"
    options = ["--read-only", "--network", "host", "--tmpfs", wal]
    for key, value in env.items():
        options += ["-e", f"{key}={value}"]
    c = container(image, "--config", "/etc/otelcol/config.yaml", options=tuple(options))

    def healthy() -> bool:
        return http(f"http://127.0.0.1:{ports['HEALTH']}/")[0] == 200

    try:
        await wait_for(healthy, timeout=60, interval=0.5, in_thread=True)
    except AssertionError:
        pytest.fail(f"the collector's health check does not answer; its log:\n{c.stop()[1]}")
    assert http(f"http://127.0.0.1:{ports['PROM']}/metrics")[0] == 200
    assert http(f"http://127.0.0.1:{ports['GUARD']}/ready")[0] == 200  # otelcol-guard
    code, logs = c.stop()
    assert code == 0, logs


class ComposeProject:
    """docker-compose.yaml as shipped, copied into ``workdir`` (its ./config beside it), as a
    project of its own; ``override`` (YAML text) is a second compose file given after it."""

    def __init__(self, compose: str, workdir: Path, image: str, override: str = "") -> None:
        shutil.copy(COMPOSE_FILE, workdir)
        files = ["-f", "docker-compose.yaml"]
        if override:
            (workdir / "docker-compose.test.yaml").write_text(override)
            files += ["-f", "docker-compose.test.yaml"]
        self.argv = [compose, "-p", f"otelpower-test-{uuid.uuid4().hex[:8]}", *files]
        self.workdir = workdir
        self.env = {**os.environ, "OTELPOWER_IMAGE": image}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def logs(self) -> str:
        out = self("logs", "--no-color", "otelpower")
        return out.stdout + out.stderr


async def _until_reading(compose: ComposeProject, port: int, plug) -> dict:
    """The plug's power series once the exporter serves it (fails with the service's log)."""

    def reading() -> dict:
        status, text = http(f"http://127.0.0.1:{port}/metrics")
        return find(parse(text), "tplink_native_power_watts", device_id=plug.mac) if status else {}

    try:
        return await wait_for(reading, timeout=90, interval=0.5, in_thread=True)
    except AssertionError:
        pytest.fail(f"no readings; the service's log:\n{compose.logs()}")


async def test_compose_runs_the_exporter_with_a_config(simulator, tmp_path: Path) -> None:
    """docker-compose.yaml as shipped (its hardening, mounts and command), the exporter
    service on the image built here, reading emulated plugs from ./config/config.yaml."""
    image = require(OTELPOWER_IMAGE)
    (plug,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    port = free_port()
    data = simulator.config_dict()
    data["poll"] = {"interval": 1, "timeout": 3}
    data["prometheus"] = {"host": "127.0.0.1", "port": port}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "config" / "config.yaml").chmod(0o644)
    compose = ComposeProject(require_compose(), tmp_path, image)
    up = compose("up", "-d", "--no-build", "otelpower")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        series = await _until_reading(compose, port, plug)
        ((labels, _),) = series.items()
        assert dict(labels)["room"] == data["devices"][0]["room"]  # the file's, not unassigned
        logs = compose.logs()
        assert "device(s) in /config/config.yaml" in logs, logs
        assert "zero-config" not in logs, logs
    finally:
        down = compose("down", "-v", "-t", "20")
    assert down.returncode == 0, down.stdout + down.stderr


async def test_compose_runs_the_exporter_without_a_config(simulator, tmp_path: Path) -> None:
    """No ./config at all (Docker creates it empty): the exporter runs zero-config, says so,
    and exports the plug discovery finds by its alias. The override only adds arguments
    (this test's port; discovery by address, as loopback passes no broadcast)."""
    image = require(OTELPOWER_IMAGE)
    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"])])
    port = free_port()
    args = ["--protocol", "native", "--prometheus-port", str(port), "--target", plug.host]
    override = yaml.safe_dump({"services": {"otelpower": {"command": args}}})
    compose = ComposeProject(require_compose(), tmp_path, image, override)
    assert not (tmp_path / "config").exists()
    up = compose("up", "-d", "--no-build", "otelpower")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        series = await _until_reading(compose, port, plug)
        ((labels, _),) = series.items()
        labels = dict(labels)
        assert (labels["device"], labels["room"], labels["shelf"]) == (
            plug.alias,
            "unassigned",
            "unassigned",
        )
        assert (tmp_path / "config").is_dir()  # created empty by Docker: the same mount
        logs = compose.logs()
        assert "no config file: zero-config" in logs, logs
        assert "Traceback" not in logs, logs
    finally:
        down = compose("down", "-v", "-t", "20")
    assert down.returncode == 0, down.stdout + down.stderr
