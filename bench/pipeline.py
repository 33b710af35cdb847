"""End-to-end latencies through the real pipeline: stale series and Matter value updates.

``bench_stale``: one emulated P110 (KLAP) plug served in this process -> an ``otelpower run``
process (``python -m otelpower.cli``; poll interval 1 s, poll timeout 2 s, backoff_max 1 s,
OTLP/gRPC export interval 1 s, stale markers on) -> build/otelcol-otelpower on
collector-config/config.yaml (harness/backends.py COLLECTOR_TEST_ENV: WAL flush
200 ms) -> VictoriaMetrics (``-search.latencyOffset=1s``, cache off). The plug goes offline
(``Fault.OFFLINE``: sockets closed; python-kasa retries the refused KLAP connection, so the poll
fails only at the 2 s poll timeout, as with a real plug that stops answering); we time until
its ``tplink_native_power_watts`` series is gone from otelpower's /metrics (polled every 20 ms)
and from a VictoriaMetrics instant query at now (no ``time`` parameter: this VM rejects
``time=now``; no force flush: what a dashboard sees; polled every 50 ms). Then it comes back and
is awaited in both before the next outage; each outage starts at another phase of the poll.

``bench_matter``: python-matter-server and a matter.js virtual plug (otelpower/sim), read by
otelpower's MatterReader in this process (``app.Runtime``, as tests/matter
do; poll interval 1 s). A new power value is pushed to the plug at once (``feed_now``, not the
0.5 s feed tick); we time until /metrics shows it (polled every 20 ms). Skipped when the Matter
test bed is not installed or UDP port 5540 is taken.

Run: ``.venv/bin/python bench/pipeline.py`` (progress on stderr, one JSON line per figure).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from figures import Figure, log

from harness.backends import COLLECTOR_BINARY, VM_BINARY, Collector, VictoriaMetrics
from harness.processes import OtelpowerRun, http_get
from harness.wait import wait_for
from otelpower import app
from otelpower.config import parse_config
from otelpower.config.yamlsource import YamlDoc
from otelpower.readers import registry
from otelpower.sim import Fault, PlugOptions, Simulator, builtin_profiles

NATIVE_POWER = "tplink_native_power_watts"
MATTER_POWER = "tplink_matter_power_watts"
POLL_S = 1.0
EXPORT_S = 1.0
WAIT_S = 30.0  # bound on every single wait


def grpc_env(otlp_endpoint: str) -> dict[str, str]:
    """OTLP/gRPC to ``otlp_endpoint``, exported every EXPORT_S, stale markers on."""
    return {
        f"OTEL_EXPORTER_OTLP_{kind}{key}": value
        for kind in ("", "METRICS_")
        for key, value in (("ENDPOINT", otlp_endpoint), ("PROTOCOL", "grpc"))
    } | {
        "OTEL_METRIC_EXPORT_INTERVAL": str(int(EXPORT_S * 1000)),
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
        "OTELPOWER_STALE_MARKERS": "true",
    }


def metric_value(port: int, name: str, device_id: str) -> float | None:
    """The value of ``name{device_id=...}`` on /metrics at ``port``, None when absent."""
    body = http_get(f"http://127.0.0.1:{port}/metrics")[1].decode()
    needle = f'device_id="{device_id}"'
    for line in body.splitlines():
        if line.startswith(name + "{") and needle in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def until(
    check: Callable[[], Any], every: float, what: str, timeout: float = WAIT_S
) -> float:
    """harness.wait.wait_for on a blocking ``check`` every ``every`` s; the moment it held."""
    await wait_for(check, timeout, every, what, in_thread=True)
    return time.monotonic()


def phase(i: int, repeats: int) -> float:
    """A wait that spreads the measured events evenly over the 1 s poll cycle."""
    return (i + 0.5) / repeats * POLL_S


def summary(name: str, values: list[float]) -> list[Figure]:
    log(f"{name}: " + ", ".join(f"{v:.3f}" for v in values))
    return [Figure(name, statistics.median(values), "s"), Figure(f"{name}_max", max(values), "s")]


async def bench_stale(repeats: int = 5) -> list[Figure]:
    """Plug offline -> series gone from /metrics and from VictoriaMetrics at now (see module)."""
    for binary, target in ((COLLECTOR_BINARY, "collector"), (VM_BINARY, "victoria-metrics")):
        if not binary.is_file():
            raise FileNotFoundError(f"{binary} is missing: run `make {target}`")
    began = time.monotonic()
    profile = next(p for p in builtin_profiles() if p.stem == "p110_klap")
    gone_metrics: list[float] = []
    gone_vm: list[float] = []
    with tempfile.TemporaryDirectory(prefix="otelpower-bench-stale-") as tmpdir:
        tmp = Path(tmpdir)
        vm = VictoriaMetrics(tmp)
        collector = Collector(tmp, vm.write_url)
        simulator = Simulator()
        run: OtelpowerRun | None = None
        try:
            await asyncio.to_thread(vm.start)
            await asyncio.to_thread(collector.start)
            (plug,) = await simulator.start([PlugOptions(profile)])
            data = simulator.config_dict("bench") | {
                "poll": {"interval": POLL_S, "timeout": 2, "backoff_max": 1},
                "prometheus": {"host": "127.0.0.1", "port": 0},
            }
            config = tmp / "otelpower.yaml"
            config.write_text(yaml.safe_dump(data))
            run = OtelpowerRun(tmp, config, grpc_env(collector.otlp_grpc_endpoint))
            await asyncio.to_thread(run.start)
            port, mac = run.port, plug.mac
            expr = f'{NATIVE_POWER}{{device_id="{mac}"}}'

            def on_metrics() -> bool:
                return metric_value(port, NATIVE_POWER, mac) is not None

            def in_vm() -> bool:
                return bool(vm.api("query", {"query": expr})["result"])

            log(f"stale: pipeline up in {time.monotonic() - began:.1f}s; plug {mac}")
            for i in range(repeats):
                await until(on_metrics, 0.05, f"{mac} on /metrics")
                await until(in_vm, 0.05, f"{mac} in VictoriaMetrics")
                await asyncio.sleep(phase(i, repeats))
                t0 = time.monotonic()
                await plug.set_fault(Fault.OFFLINE)
                waits = [
                    asyncio.create_task(until(lambda: not on_metrics(), 0.02, "gone: /metrics")),
                    asyncio.create_task(until(lambda: not in_vm(), 0.05, "gone: VM")),
                ]
                try:
                    t_metrics, t_vm = await asyncio.gather(*waits)
                finally:
                    for task in waits:
                        task.cancel()
                gone_metrics.append(t_metrics - t0)
                gone_vm.append(t_vm - t0)
                log(f"stale {i + 1}/{repeats}: /metrics {t_metrics - t0:.3f}s, VM {t_vm - t0:.3f}s")
                await plug.set_fault(Fault.NONE)
        except BaseException:
            for proc in (run, collector, vm):
                if proc is not None:
                    log(f"{proc.name} log tail:\n{proc.log_tail(15)}")
            raise
        finally:
            for proc in (run, collector, vm):
                if proc is not None:
                    await asyncio.to_thread(proc.stop)
            await simulator.stop()
    log(f"stale: {repeats} outages in {time.monotonic() - began:.1f}s")
    return summary("stale_metrics_s", gone_metrics) + summary("stale_vm_s", gone_vm)


def port_5540_free() -> bool:
    """Whether the fixed Matter port (UDP 5540, what matter.js binds) is free."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("::", 5540))
        except OSError:
            return False
    return True


async def bench_matter(repeats: int = 5) -> list[Figure]:
    """Value change on the virtual Matter plug -> new value on /metrics (see module)."""
    from otelpower.sim.matter import VirtualMatterPlug
    from otelpower.sim.matter_server import MatterServerProcess, commission, server_available

    if not server_available():
        log("matter: skipped, the Matter test bed is not installed: run `make setup`")
        return []
    if not port_5540_free():
        log("matter: skipped, UDP port 5540 is in use (another Matter plug or test runs)")
        return []
    began = time.monotonic()
    mac = "48:22:54:bb:00:01"
    values: dict[str, Any] = {
        "power_w": 12.5, "voltage_v": 230.0, "current_a": 0.054, "energy_wh": 1500.0, "on": True
    }  # fmt: skip
    delays: list[float] = []
    with tempfile.TemporaryDirectory(prefix="otelpower-bench-matter-") as tmpdir:
        tmp = Path(tmpdir)
        server = MatterServerProcess(tmp / "matter-server")
        plug = VirtualMatterPlug(mac=mac, sample=lambda: values, storage_dir=tmp / "plug")
        running = contextlib.AsyncExitStack()
        try:
            await server.start()
            await plug.start()
            node_id = await commission(server.url, plug.passcode, "::1")
            log(f"matter: server up, plug commissioned as node {node_id}")
            device = {"device_id": mac, "room": "lab", "shelf": "bench", "device": "matter"}
            data = {
                "house": "bench",
                "devices": [device],
                "matter": {"url": server.url},
                "poll": {"interval": POLL_S, "timeout": 5},
                "prometheus": {"host": "127.0.0.1", "port": 0},
            }
            config = parse_config(YamlDoc(source="<bench>", data=data), {}, registry.specs())
            runtime = await running.enter_async_context(app.Runtime(config, "matter"))
            port = runtime.prometheus_port
            assert port is not None

            def shows(watts: float) -> Callable[[], bool]:
                return lambda: metric_value(port, MATTER_POWER, mac) == watts

            await until(shows(values["power_w"]), 0.05, "first Matter power value", 60)
            log(f"matter: test bed up in {time.monotonic() - began:.1f}s")
            for i in range(repeats):
                await asyncio.sleep(phase(i, repeats))
                watts = 20.0 + 1.25 * i
                t0 = time.monotonic()
                values["power_w"] = watts
                plug.feed_now()
                delays.append(await until(shows(watts), 0.02, f"power {watts} W") - t0)
                log(f"matter {i + 1}/{repeats}: {watts} W on /metrics after {delays[-1]:.3f}s")
        finally:
            await running.aclose()
            await plug.stop()
            await server.stop()
    log(f"matter: {repeats} changes in {time.monotonic() - began:.1f}s")
    return summary("matter_update_s", delays)


async def main() -> list[Figure]:
    return await bench_stale() + await bench_matter()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        for figure in asyncio.run(main()):
            print(figure.json())
