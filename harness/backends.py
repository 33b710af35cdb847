"""The real pipeline's backends as processes: VictoriaMetrics, Prometheus and the collector.

Both have ``start()``, ``stop()`` (SIGTERM, then SIGKILL), ``kill()`` (SIGKILL, a crash) and
``restart()``; they keep their ports and data/WAL directories across restarts, so a test can
take either down for an outage and bring it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.ports import free_port
from harness.processes import ROOT, Process, http_get

COLLECTOR_BINARY = Path(os.environ.get("OTELCOL_BINARY", ROOT / "build" / "otelcol-otelpower"))
COLLECTOR_CONFIG = ROOT / "collector-config" / "config.yaml"
GUARD_BINARY = Path(os.environ.get("OTELCOL_GUARD_BINARY", ROOT / "build" / "otelcol-guard"))
VM_BINARY = Path(os.environ.get("VICTORIA_METRICS_BINARY", "/usr/bin/victoria-metrics"))
PROMETHEUS_BINARY = Path(os.environ.get("PROMETHEUS_BINARY", "/usr/bin/prometheus"))
# Collector settings for tests: short WAL flush, fast retries after an outage.
COLLECTOR_TEST_ENV = {
    "PRW_WAL_FLUSH": "200ms",
    "PRW_RETRY_MAX_INTERVAL": "1s",
    "PROM_METRIC_EXPIRATION": "5m",
    "OTELCOL_LOG_LEVEL": "info",
}


class QueryApi:
    """The Prometheus HTTP query API, as VictoriaMetrics and Prometheus both serve it, on
    ``127.0.0.1:port``; ``health_path`` answers 200 once it is up."""

    name: str
    port: int
    health_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return http_get(f"{self.url}{self.health_path}", timeout=1)[0] == 200
        except OSError:
            return False

    def flush(self) -> None:
        """Make every ingested sample searchable now (a no-op where they already are)."""

    def api(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]]) -> Any:
        """GET /api/v1/<path>; returns ``data`` of a successful answer, raises otherwise."""
        query = urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"{self.name} /api/v1/{path} {params}: {status} {answer}")
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


class VictoriaMetrics(QueryApi, Process):
    """A single-node VictoriaMetrics; data in ``data_dir``, kept across restarts."""

    name = "victoria-metrics"
    health_path = "/health"

    def __init__(self, tmp: Path, *, latency_offset: str = "1s", binary: Path = VM_BINARY):
        super().__init__(tmp / "victoria-metrics.log")
        self.binary = binary
        self.port = free_port()
        self.data_dir = tmp / "vm-data"
        self.latency_offset = latency_offset
        self.extra_args: list[str] = []

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

    def flush(self) -> None:
        """Make every ingested sample searchable now (VM buffers them for up to ~1 s)."""
        http_get(f"{self.url}/internal/force_flush")


class Prometheus(QueryApi, Process):
    """Debian's Prometheus (2.42), scraping ``scrape_configs`` (a YAML list) on its own."""

    name = "prometheus"
    health_path = "/-/ready"

    def __init__(self, tmp: Path, scrape_configs: str, *, binary: Path = PROMETHEUS_BINARY):
        super().__init__(tmp / "prometheus.log")
        self.binary = binary
        self.port = free_port()
        self.config = tmp / "prometheus.yml"
        self.config.write_text(f"scrape_configs:\n{scrape_configs}")
        self.data_dir = tmp / "prometheus-data"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.data_dir}",
            "--log.level=warn",
        ]


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
        """The Prometheus exporter's /metrics text (use harness.promtext.parse on it)."""
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


class GuardedCollector(Collector):
    """The collector run by build/otelcol-guard, as the image runs it (collector-config/guard).

    ``stop()`` stops the guard (which stops the collector); ``kill()`` SIGKILLs both;
    ``kill_collector()`` SIGKILLs only the collector, which the guard then starts again.
    ``wrap`` prefixes the command (e.g. ``unshare`` for a small filesystem of its own).
    """

    name = "otelcol-guard"

    def __init__(
        self,
        tmp: Path,
        remote_write_url: str,
        *,
        guard: Path = GUARD_BINARY,
        wrap: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(tmp, remote_write_url, **kwargs)
        self.guard = guard
        self.wrap = wrap or []
        self.guard_port = free_port()
        self.env["GUARD_HEALTH_ENDPOINT"] = f"127.0.0.1:{self.guard_port}"

    def command(self) -> list[str]:
        return [*self.wrap, str(self.guard), *super().command()]

    def guard_get(self, path: str) -> tuple[int, str]:
        try:
            status, body = http_get(f"http://127.0.0.1:{self.guard_port}{path}", timeout=2)
        except OSError as e:
            return 0, str(e)
        return status, body.decode()

    def guard_metrics(self) -> dict[str, float]:
        """otelcol-guard's /metrics as {name: value}."""
        status, text = self.guard_get("/metrics")
        if status != 200:
            return {}
        return {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    def collector_pid(self) -> int | None:
        """The collector's pid: the guard's child (found through /proc)."""
        if self.proc is None:
            return None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.proc.pid and cmdline[0].endswith(self.binary.name.encode()):
                return int(entry.name)
        return None

    def kill_collector(self) -> int:
        pid = self.collector_pid()
        assert pid is not None, "no collector under the guard"
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM to the guard (it stops the collector), SIGKILL to both after ``grace``."""
        if self.proc is None:
            return None
        group = self.proc.pid  # start_new_session: the guard leads the group
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # whatever is left of the group
        self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code
