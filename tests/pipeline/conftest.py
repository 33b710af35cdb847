"""The real pipeline as processes: VictoriaMetrics and the otelcol-otelpower collector.

Fixtures
    ``victoria_metrics``  a started :class:`VictoriaMetrics` (free port, data in tmp_path)
    ``collector``         a started :class:`Collector` writing to ``victoria_metrics``, run from
                          collector-config/config.yaml (the real file; only env vars differ)
    ``otlp_env``          points the OTel SDK of this process at ``collector`` (OTEL_* env vars
                          via monkeypatch) and returns the export interval in seconds
    ``collector_binary``  path of build/otelcol-otelpower (skips when missing, outside CI)

Both process classes have ``start()``, ``stop()`` (SIGTERM, then SIGKILL), ``kill()`` (SIGKILL,
a crash) and ``restart()``; they keep their ports and data/WAL directories across restarts,
so a test can take either down for an outage and bring it back. Tests needing other
collector settings can call ``collector.restart(env={...})`` or build their own ``Collector``.

When the binaries are missing the tests skip, unless CI is set: there ``make test`` builds
them first (``make collector victoria-metrics``), so missing binaries are a failure.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_BINARY = Path(os.environ.get("OTELCOL_BINARY", ROOT / "build" / "otelcol-otelpower"))
COLLECTOR_CONFIG = ROOT / "collector-config" / "config.yaml"
VM_BINARY = Path(os.environ.get("VICTORIA_METRICS_BINARY", "/usr/bin/victoria-metrics"))

# Export interval the ``otlp_env`` fixture gives the SDK.
EXPORT_INTERVAL_S = 2.0
# Collector settings for tests: short batch and WAL flush, fast retries after an outage.
COLLECTOR_TEST_ENV = {
    "BATCH_TIMEOUT": "200ms",
    "PRW_WAL_FLUSH": "200ms",
    "PRW_RETRY_MAX_INTERVAL": "1s",
    "PROM_METRIC_EXPIRATION": "5m",
    "OTELCOL_LOG_LEVEL": "info",
}


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port never handed out before in this run: the kernel may give a just-released
    port again, and two components of one collector got the same one (seen in CI)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def require_binary(path: Path, make_target: str) -> Path:
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = f"{path} is missing: run `make {make_target}`"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so `make test` should have built it)")
    pytest.skip(reason)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Process:
    """One child process with a log file; stop() is SIGTERM, then SIGKILL after a grace."""

    name = "process"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def command(self) -> list[str]:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} already runs")
        with self.log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} not healthy after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, timeout: float = 30.0) -> None:
        self.stop()
        self.start(timeout)


class VictoriaMetrics(Process):
    """A single-node VictoriaMetrics; data in ``data_dir``, kept across restarts."""

    name = "victoria-metrics"

    def __init__(self, tmp: Path, *, latency_offset: str = "1s", binary: Path = VM_BINARY):
        super().__init__(tmp / "victoria-metrics.log")
        self.binary = binary
        self.port = free_port()
        self.data_dir = tmp / "vm-data"
        self.latency_offset = latency_offset
        self.extra_args: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-retentionPeriod=100y",  # tests may write old timestamps
            f"-search.latencyOffset={self.latency_offset}",
            "-search.disableCache",  # every query sees the newest samples
            "-loggerLevel=WARN",
            *self.extra_args,
        ]

    def healthy(self) -> bool:
        try:
            return http_get(f"{self.url}/health", timeout=1)[0] == 200
        except OSError:
            return False

    def flush(self) -> None:
        """Make every ingested sample searchable now (VM buffers them for up to ~1 s)."""
        http_get(f"{self.url}/internal/force_flush")

    def api(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]]) -> Any:
        """GET /api/v1/<path>; returns ``data`` of a successful answer, raises otherwise."""
        query = urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"VictoriaMetrics /api/v1/{path} {params}: {status} {answer}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None, *, flush: bool = True) -> list[dict]:
        """Instant query: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``, at ``at`` or now."""
        if flush:
            self.flush()
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", params)["result"]

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0, *, flush: bool = True
    ) -> list[dict]:
        """Range query: ``[{"metric": {...}, "values": [[ts, "v"], ...]}, ...]``."""
        if flush:
            self.flush()
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}s"}
        return self.api("query_range", params)["result"]

    def series(
        self, match: str, start: float | None = None, end: float | None = None
    ) -> list[dict[str, str]]:
        """Label sets of the series matching ``match`` (``/api/v1/series``)."""
        self.flush()
        params: list[tuple[str, Any]] = [("match[]", match)]
        if start is not None:
            params.append(("start", f"{start:.3f}"))
        if end is not None:
            params.append(("end", f"{end:.3f}"))
        return self.api("series", params)

    def wait_for(
        self, expr: str, predicate: Callable[[list[dict]], Any] = bool, timeout: float = 20.0
    ) -> list[dict]:
        """Poll an instant query until ``predicate(result)`` holds; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr}: condition not met within {timeout}s; last {result}")
            time.sleep(0.2)


class Collector(Process):
    """build/otelcol-otelpower on collector-config/config.yaml with free ports.

    Ports and the WAL directory are fixed at construction, so restarts keep them; ``env``
    overrides config variables (see the header of config.yaml).
    """

    name = "otelcol-otelpower"

    def __init__(
        self,
        tmp: Path,
        remote_write_url: str,
        *,
        binary: Path = COLLECTOR_BINARY,
        config: Path = COLLECTOR_CONFIG,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(tmp / "otelcol.log")
        self.binary = binary
        self.config = config
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.prom_port = free_port()
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.wal_dir = tmp / "otelcol-wal"
        self.env = {
            **COLLECTOR_TEST_ENV,
            "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.grpc_port}",
            "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.http_port}",
            "VM_REMOTE_WRITE_URL": remote_write_url,
            "PRW_WAL_DIR": str(self.wal_dir),
            "PROM_EXPORTER_ENDPOINT": f"127.0.0.1:{self.prom_port}",
            "HEALTH_ENDPOINT": f"127.0.0.1:{self.health_port}",
            "OTELCOL_METRICS_HOST": "127.0.0.1",
            "OTELCOL_METRICS_PORT": str(self.metrics_port),
            **(env or {}),
        }

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}/metrics"

    def command(self) -> list[str]:
        return [str(self.binary), "--config", str(self.config)]

    def healthy(self) -> bool:
        try:
            return http_get(f"http://127.0.0.1:{self.health_port}/", timeout=1)[0] == 200
        except OSError:
            return False

    def restart(self, timeout: float = 30.0, env: Mapping[str, str] | None = None) -> None:
        self.stop()
        self.env.update(env or {})
        self.start(timeout)

    def scrape(self) -> str:
        """The Prometheus exporter's /metrics text (use tests.promtext.parse on it)."""
        return http_get(self.prometheus_url)[1].decode()

    def own_metrics(self) -> str:
        """The collector's own telemetry (otelcol_* metrics)."""
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")[1].decode()

    def validate(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "validate", "--config", str(self.config)],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def collector_binary() -> Path:
    return require_binary(COLLECTOR_BINARY, "collector")


@pytest.fixture
def vm_binary() -> Path:
    return require_binary(VM_BINARY, "victoria-metrics")


@pytest.fixture
def victoria_metrics(vm_binary: Path, tmp_path: Path) -> Iterator[VictoriaMetrics]:
    vm = VictoriaMetrics(tmp_path, binary=vm_binary)
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture
def collector(
    collector_binary: Path, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> Iterator[Collector]:
    col = Collector(tmp_path, victoria_metrics.write_url, binary=collector_binary)
    col.start()
    try:
        yield col
    finally:
        col.stop()


@pytest.fixture
def otlp_env(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> float:
    """OTLP/gRPC to ``collector`` every EXPORT_INTERVAL_S; returns that interval (s)."""
    for key in list(os.environ):
        if key.startswith("OTEL_EXPORTER_OTLP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.otlp_grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", str(math.floor(EXPORT_INTERVAL_S * 1000)))
    return EXPORT_INTERVAL_S
