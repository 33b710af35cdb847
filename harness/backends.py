"""The real pipeline's backends as processes: VictoriaMetrics, Prometheus and the collector.

Both have ``start()``, ``stop()`` (SIGTERM, then SIGKILL), ``kill()`` (SIGKILL, a crash) and
``restart()``; they keep their ports and data/WAL directories across restarts, so a test can
take either down for an outage and bring it back.
"""

from __future__ import annotations

import json
import os
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
VM_BINARY = Path(os.environ.get("VICTORIA_METRICS_BINARY", "/usr/bin/victoria-metrics"))
PROMETHEUS_BINARY = Path(os.environ.get("PROMETHEUS_BINARY", "/usr/bin/prometheus"))
# Collector settings for tests: short batch and WAL flush, fast retries after an outage.
COLLECTOR_TEST_ENV = {
    "BATCH_TIMEOUT": "200ms",
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
