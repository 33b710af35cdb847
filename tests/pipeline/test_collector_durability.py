"""What a collector restart, rollout, VictoriaMetrics outage, full WAL or damaged WAL loses.

The whole way with real parts: emulated plugs -> otelpower (OTLP/gRPC, its resend buffer) ->
otelcol-guard running otelcol-otelpower (collector-config/config.yaml, the WAL) ->
VictoriaMetrics. The loss is counted exactly: every timestamp of one power series that
otelpower handed to its OTLP exporter, against the raw samples VictoriaMetrics stores
(/api/v1/export). Each test prints its measured figures (pytest -s shows them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from harness.backends import GUARD_BINARY, Collector, GuardedCollector, VictoriaMetrics
from harness.processes import http_get
from harness.wait import wait_for
from otelpower import app
from otelpower.sim import PlugOptions, builtin_profiles
from tests.conftest import make_config
from tests.pipeline.conftest import point_otlp_at, require_binary

PROFILES = {p.stem: p for p in builtin_profiles()}
POWER = "tplink_native_power_watts"
FAIL_AFTER_S = 3  # GUARD_EXPORT_FAIL_AFTER in these tests
#: OTEL_EXPORTER_OTLP_TIMEOUT: bounded retries while the collector is down
TIMEOUT_S = 2
DELIVERY_TIMEOUT = 45.0  # bound on the backlog's delivery after a gap (retries back off to 1 s)


@pytest.fixture
def guard_binary() -> Path:
    return require_binary(GUARD_BINARY, "collector")


def guarded(tmp_path: Path, vm: VictoriaMetrics, binary: Path, guard: Path, **kw: Any):
    env = {"GUARD_EXPORT_FAIL_AFTER": f"{FAIL_AFTER_S}s", **kw.pop("env", {})}
    return GuardedCollector(tmp_path, vm.write_url, binary=binary, guard=guard, env=env, **kw)


@pytest.fixture
def collector(
    collector_binary: Path, guard_binary: Path, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> Iterator[GuardedCollector]:
    col = guarded(tmp_path, victoria_metrics, collector_binary, guard_binary)
    col.start()
    try:
        yield col
    finally:
        col.stop()


class Watched:
    """otelpower running, with the timestamps (ms) of one power series it exported."""

    def __init__(self, runtime: app.Runtime, mac: str) -> None:
        self.exporter = runtime.telemetry.exporter
        assert self.exporter is not None and self.exporter.resend is not None
        self.mac = mac
        self.sent: list[int] = []
        self.points_per_export = 0
        inner = self.exporter.export

        def export(data, timeout_millis: float = 10_000, **kwargs: Any):  # type: ignore[no-untyped-def]
            points = 0
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        points += len(metric.data.data_points)
                        if metric.name != POWER:
                            continue
                        for p in metric.data.data_points:
                            if (p.attributes or {}).get("device_id") == mac:
                                self.sent.append(p.time_unix_nano // 1_000_000)
            self.points_per_export = max(self.points_per_export, points)
            return inner(data, timeout_millis=timeout_millis, **kwargs)

        self.exporter.export = export  # type: ignore[method-assign]

    def stored(self, vm: VictoriaMetrics) -> set[int]:
        vm.flush()
        query = f'match[]={POWER}{{device_id="{self.mac}"}}'
        status, body = http_get(f"{vm.url}/api/v1/export?{query.replace('"', '%22')}")
        assert status == 200, body
        out: set[int] = set()
        for line in body.decode().splitlines():
            out.update(json.loads(line)["timestamps"])
        return out

    def missing(self, vm: VictoriaMetrics, upto: int | None = None) -> set[int]:
        sent = {t for t in self.sent if upto is None or t <= upto}
        return sent - self.stored(vm)

    async def exports(self, n: int, *, failed: bool, timeout: float = 60) -> None:
        """Wait until ``n`` more exports succeeded (or failed)."""
        attr = "exports_failed" if failed else "exports_ok"
        start = getattr(self.exporter, attr)
        await wait_for(
            lambda: getattr(self.exporter, attr) >= start + n,
            timeout,
            interval=0.1,
            what=f"{n} more exports ({attr})",
        )

    async def delivered(self, vm: VictoriaMetrics, *, lossy: bool = False) -> int:
        """Wait for every exported sample to be stored (``lossy``: for the newest one); the
        number never stored."""
        upto = self.sent[-1]
        with suppress(AssertionError):
            await wait_for(
                lambda: upto in self.stored(vm) if lossy else not self.missing(vm, upto),
                DELIVERY_TIMEOUT,
                interval=0.5,
                in_thread=True,
            )
        return len(self.missing(vm, upto))


@asynccontextmanager
async def otelpower(simulator, plugs: int = 2) -> AsyncIterator[Watched]:
    names = ["p110_klap", "kp115_xor"]
    options = [PlugOptions(PROFILES[names[i % 2]]) for i in range(plugs)]
    started = await simulator.start(options)
    config = make_config(
        simulator.config_dict(),
        poll={"interval": 0.5, "timeout": 2},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    async with app.Runtime(config, "native") as runtime:
        yield Watched(runtime, started[0].mac)


def report(case: str, watched: Watched, lost: int, **extra: Any) -> None:
    figures = " ".join(f"{k}={v}" for k, v in extra.items())
    print(
        f"\n{case}: {lost} of {len(set(watched.sent))} samples of one series lost;"
        f" resend buffer dropped {watched.exporter.resend.dropped_points} points,"
        f" resent {watched.exporter.resend.resent_batches} batches {figures}"
    )


@pytest.mark.parametrize("buffer", ["resend", "off"])
async def test_collector_killed_and_restarted_loses_nothing(
    simulator, victoria_metrics, collector: GuardedCollector, monkeypatch, buffer
):
    """SIGKILL, a gap of three exports, a new collector on the same WAL. The control without
    otelpower's resend buffer (OTELPOWER_OTLP_RESEND_POINTS=0) loses the gap: issue 18 item 5."""
    point_otlp_at(collector, monkeypatch, TIMEOUT_S)
    if buffer == "off":
        monkeypatch.setenv("OTELPOWER_OTLP_RESEND_POINTS", "0")
    async with otelpower(simulator) as watched:
        await watched.exports(2, failed=False)
        await asyncio.to_thread(collector.kill)  # SIGKILL to the guard and the collector
        await watched.exports(3, failed=True)  # a gap of three exports (about 12 s)
        await asyncio.to_thread(collector.start)
        await watched.exports(2, failed=False)
        lost = await watched.delivered(victoria_metrics, lossy=buffer == "off")
    report(f"SIGKILL + restart (buffer {buffer})", watched, lost)
    if buffer == "off":
        assert lost >= 3  # the three failed exports' samples, at least
        assert watched.exporter.resend.dropped_points > 0
    else:
        assert lost == 0


async def test_collector_killed_under_its_guard_loses_nothing(
    simulator, victoria_metrics, collector: GuardedCollector, monkeypatch
):
    """The container case: the collector dies, the guard starts it again on the same WAL."""
    point_otlp_at(collector, monkeypatch, TIMEOUT_S)
    async with otelpower(simulator) as watched:
        await watched.exports(2, failed=False)
        await asyncio.to_thread(collector.kill_collector)
        await wait_for(
            lambda: collector.guard_metrics().get("otelcol_guard_collector_restarts_total"),
            20,
            interval=0.2,
            in_thread=True,
        )
        await watched.exports(3, failed=False)
        lost = await watched.delivered(victoria_metrics)
    report("SIGKILL, guard restarts it", watched, lost)
    assert lost == 0


async def test_collector_rolled_loses_nothing(
    simulator,
    victoria_metrics,
    collector: GuardedCollector,
    collector_binary,
    guard_binary,
    tmp_path,
    monkeypatch,
):
    """A Recreate rollout: SIGTERM, a gap, a new collector on the same WAL and address."""
    point_otlp_at(collector, monkeypatch, TIMEOUT_S)
    async with otelpower(simulator) as watched:
        await watched.exports(2, failed=False)
        await asyncio.to_thread(collector.stop)  # SIGTERM: drains, closes the WAL
        await watched.exports(3, failed=True)
        await asyncio.to_thread(collector.start)
        await watched.exports(2, failed=False)
        lost = await watched.delivered(victoria_metrics)
    report("SIGTERM + new collector", watched, lost)
    assert lost == 0


def wal_bytes(col: Collector) -> int:
    wal = col.wal_dir / "prom_remotewrite"
    return sum(f.stat().st_size for f in wal.iterdir()) if wal.is_dir() else 0


async def test_victoria_metrics_outage_loses_nothing_and_health_says_so(
    simulator, victoria_metrics, collector: GuardedCollector, monkeypatch
):
    point_otlp_at(collector, monkeypatch, TIMEOUT_S)
    async with otelpower(simulator) as watched:
        await watched.exports(2, failed=False)
        assert collector.guard_get("/")[0] == 200
        await asyncio.to_thread(victoria_metrics.stop)
        before, exports = wal_bytes(collector), watched.exporter.exports_ok
        await wait_for(  # health turns 503 once remote write failed for FAIL_AFTER_S
            lambda: collector.guard_get("/")[0] == 503,
            FAIL_AFTER_S + 15,
            interval=0.2,
            in_thread=True,
        )
        _status, why = collector.guard_get("/")
        assert "remote write failing" in why, why
        assert collector.guard_get("/ready")[0] == 200  # still takes data: the WAL buffers
        await watched.exports(3, failed=False)  # the collector takes it all into the WAL
        grown = wal_bytes(collector) - before
        n = watched.exporter.exports_ok - exports
        points = watched.points_per_export
        await asyncio.to_thread(victoria_metrics.start)
        await wait_for(
            lambda: collector.guard_get("/")[0] == 200,
            DELIVERY_TIMEOUT,
            interval=0.2,
            in_thread=True,
        )
        lost = await watched.delivered(victoria_metrics)
    per_point = grown / max(1, n * points)
    # the documented buffer: PRW_WAL_MAX_BYTES 80% of the 2 Gi PVC, 1,000 plugs like these,
    # their points every 15 s
    bound = 0.8 * 2 * 2**30
    hour_at_1000 = per_point * points / 2 * 1000 * 240
    report(
        "VictoriaMetrics down",
        watched,
        lost,
        wal_bytes_per_point=round(per_point, 1),
        points_per_plug_export=points / 2,
        wal_hours_at_1000_plugs=round(bound / hour_at_1000, 2),
    )
    assert lost == 0
    assert watched.exporter.exports_failed == 0  # the client never noticed


def small_filesystem(path: Path, size: str) -> list[str] | None:
    """Mount a tmpfs of ``size`` at ``path``: as root here (returns []), else the command
    prefix that mounts it in a user+mount namespace of the collector's own (None: neither)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return []
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    mount = f'mount -t tmpfs -o size={size} tmpfs "$0" && exec "$@"'
    probe = subprocess.run(
        [unshare, "-Urm", "sh", "-c", mount, str(path), "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return None
    return [unshare, "-Urm", "sh", "-c", mount, str(path)]


async def test_full_wal_refuses_then_recovers_without_loss(
    simulator, victoria_metrics, collector_binary, guard_binary, tmp_path, monkeypatch
):
    """The WAL on a 256 KiB filesystem, bound 24 KiB, VictoriaMetrics down: the guard
    refuses before the disk fills; otelpower keeps the refused data; all of it arrives."""
    fs = tmp_path / "wal-fs"
    wrap = small_filesystem(fs, "256k")
    if wrap is None:
        pytest.skip("no small filesystem: not root, and unshare -Urm cannot mount a tmpfs here")
    col = guarded(
        tmp_path, victoria_metrics, collector_binary, guard_binary, wrap=wrap,
        env={"PRW_WAL_DIR": str(fs / "prw-wal"), "PRW_WAL_MAX_BYTES": "24576"},
    )  # fmt: skip
    try:
        col.start()
        point_otlp_at(col, monkeypatch, TIMEOUT_S)
        async with otelpower(simulator) as watched:
            await watched.exports(2, failed=False)
            await asyncio.to_thread(victoria_metrics.stop)
            await wait_for(
                lambda: col.guard_metrics().get("otelcol_guard_refusing") == 1,
                60,
                interval=0.2,
                in_thread=True,
            )
            assert col.guard_get("/ready")[0] == 503
            assert "WAL full" in col.guard_get("/")[1]
            await wait_for(  # the collector is back, without its receivers
                lambda: col.guard_metrics().get("otelcol_guard_collector_up") == 1,
                20,
                interval=0.2,
                in_thread=True,
            )
            await watched.exports(2, failed=True)  # refused: otelpower keeps it
            assert watched.exporter.resend.buffered_points > 0
            await asyncio.to_thread(victoria_metrics.start)
            await wait_for(
                lambda: col.guard_get("/ready")[0] == 200,
                DELIVERY_TIMEOUT,
                interval=0.2,
                in_thread=True,
            )
            await watched.exports(2, failed=False)
            lost = await watched.delivered(victoria_metrics)
            metrics = col.guard_metrics()
    finally:
        await asyncio.to_thread(col.stop)
        if wrap == []:
            await asyncio.to_thread(subprocess.run, ["umount", str(fs)], check=False)
    log = col.log_path.read_text(errors="replace")
    assert "no space left on device" not in log
    assert "panic" not in log
    assert metrics["otelcol_guard_refusals_total"] >= 1
    report("WAL full (VictoriaMetrics down)", watched, lost, guard=metrics)
    assert lost == 0


def damage(wal_dir: Path) -> None:
    """A WAL whose last entry was cut short (a write that hit a full disk)."""
    wal = wal_dir / "prom_remotewrite"
    wal.mkdir(parents=True)
    (wal / "00000000000000000001").write_bytes(b"\x85\x02" + b"\x0a" * 40)


def test_damaged_wal_is_set_aside_and_the_collector_starts(
    victoria_metrics, collector_binary, guard_binary, tmp_path
):
    plain = Collector(tmp_path / "plain", victoria_metrics.write_url, binary=collector_binary)
    (tmp_path / "plain").mkdir()
    damage(plain.wal_dir)
    with pytest.raises(RuntimeError, match="log corrupt"):  # the issue: never starts again
        plain.start()

    col = guarded(tmp_path, victoria_metrics, collector_binary, guard_binary)
    damage(col.wal_dir)
    t0 = time.monotonic()
    col.start()
    try:
        started = time.monotonic() - t0
        metrics = col.guard_metrics()
        assert metrics["otelcol_guard_wal_set_aside_total"] == 1
        assert metrics["otelcol_guard_wal_set_aside_bytes_total"] == 42
        assert col.guard_get("/")[0] == 200
        aside = list(col.wal_dir.glob("prom_remotewrite.damaged-*"))
        assert len(aside) == 1, aside
        assert "set aside as" in col.log_path.read_text()
    finally:
        col.stop()
    print(f"\ndamaged WAL: set aside, collector healthy after {started:.1f}s")


async def test_rolled_during_victoria_metrics_outage_loses_nothing(
    simulator, victoria_metrics, collector: GuardedCollector, monkeypatch
):
    """The backlog in the WAL survives a rollout while VictoriaMetrics is down, and a SIGTERM
    does not wait for a backend that is not there."""
    point_otlp_at(collector, monkeypatch, TIMEOUT_S)
    async with otelpower(simulator) as watched:
        await watched.exports(2, failed=False)
        await asyncio.to_thread(victoria_metrics.stop)
        await watched.exports(2, failed=False)  # into the WAL
        t0 = time.monotonic()
        code = await asyncio.to_thread(collector.stop)
        stopped_in = time.monotonic() - t0
        assert code == 0, collector.log_tail()
        assert wal_bytes(collector) > 0
        await watched.exports(2, failed=True)
        await asyncio.to_thread(collector.start)
        await watched.exports(2, failed=False)
        await asyncio.to_thread(victoria_metrics.start)
        lost = await watched.delivered(victoria_metrics)
    report("rolled while VictoriaMetrics is down", watched, lost, stopped_in=round(stopped_in, 1))
    assert lost == 0
