"""The product as a user runs it: ``otelpower run`` on N emulated plugs, measured from outside.

One ``otelpower run CONFIG`` process (``python -m otelpower.cli``, default settings: poll
every 15 s, /metrics on, OTLP/HTTP to a sink in this process, default self-metrics) reads N
plugs served by ``harness.emulator.EmulatorProcess`` (its own process, 50 ms latency). After
every plug has answered and two more intervals have passed, a steady window of ``cycles``
poll intervals is measured:

- CPU of the whole ``otelpower run`` process tree (the main process and its /metrics
  process) from /proc, per poll (polls counted by otelpower's own
  ``otelpower_poll_duration_seconds`` histogram), and split by thread: the event loop
  (readers, self-metrics), ``otlp-export`` (SDK collection, stale bookkeeping, encoding,
  sending), ``metrics-render`` (the /metrics rendering), ``metrics-pipe`` and the /metrics
  process;
- requests per poll as the plugs saw them (a batched request counts once);
- the poll cycle: the span of each burst of requests the plugs saw (median);
- PSS and RSS of the tree at the end of the window;
- the emulator's own CPU per poll.

Then scrape latency (a GET with gzip every 100 ms over one interval). With ``outage`` (the
largest KLAP run) ``down`` plugs go offline (sockets closed) and we time until every one of them
shows ``up`` 0 and no power series on /metrics; ``outage_s`` later they come back and we time
until all show ``up`` 1 again. PSS is sampled every 10 s from the end of the window to the end
of the run, whose length ``minutes`` sets: the slope says whether memory is flat.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from figures import Figure, log
from otlpsink import OtlpSink
from scrape import percentile, scrape

from harness import proctree
from harness.emulator import EmulatorProcess
from harness.ports import free_port
from harness.processes import OtelpowerRun, http_get

INTERVAL_S = 15.0  # the default poll.interval, and the OTLP export interval
POWER = "tplink_native_power_watts"
UP = "tplink_native_up"
POLLS = "otelpower_poll_duration_seconds_count"
#: threads of ``otelpower run`` by OS name (otelpower.export.threads), and what they do
THREADS = {
    "main": "event loop (readers, self-metrics)",
    "otlp-export": "OTLP: SDK collection, stale bookkeeping, encode, send",
    "metrics-render": "/metrics rendering",
    "metrics-pipe": "hand-over to the /metrics process",
}


class Product(OtelpowerRun):
    """``otelpower run CONFIG`` as a user starts it, OTLP/HTTP to ``otlp_url``."""

    def __init__(self, tmp: Path, config: Path, otlp_url: str) -> None:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
        super().__init__(tmp, config, env)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metrics(self) -> str:
        return http_get(f"{self.url}/metrics", timeout=10)[1].decode()

    def rendering(self) -> int:
        """The sequence number of the rendering /metrics serves now."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            return int(resp.headers["X-Otelpower-Rendering"])


def sum_of(body: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


def up_values(body: str) -> dict[str, float]:
    """device_id -> the value of ``up``."""
    out = {}
    for line in body.splitlines():
        if line.startswith(UP + "{") and 'device_id="' in line:
            device = line.split('device_id="', 1)[1].split('"', 1)[0]
            out[device] = float(line.rsplit(" ", 1)[1])
    return out


def with_power(body: str) -> set[str]:
    return {
        line.split('device_id="', 1)[1].split('"', 1)[0]
        for line in body.splitlines()
        if line.startswith(POWER + "{") and 'device_id="' in line
    }


def bursts(arrivals: list[float], gap_s: float) -> list[float]:
    """Spans of the groups of request arrivals separated by more than ``gap_s``."""
    spans, first, last = [], None, None
    for t in sorted(arrivals):
        if last is not None and t - last > gap_s:
            spans.append(last - first)
            first = None
        first = t if first is None else first
        last = t
    if first is not None and last is not None:
        spans.append(last - first)
    return spans


def wait_until(check: Callable[[], bool], timeout_s: float, every_s: float, what: str) -> float:
    """Poll ``check`` until it holds; the moment it did (monotonic). Raises after timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:g}s")
        time.sleep(every_s)


@dataclass(frozen=True)
class Plan:
    count: int
    profile: str  # a builtin emulator profile, e.g. p110_klap
    cycles: int = 4  # poll intervals in the steady window
    latency_s: float = 0.05
    outage: bool = False
    down: int = 100
    outage_s: float = 300.0
    minutes: float = 0.0  # the whole run, for the memory slope (0: end after the window)


def measure(plan: Plan) -> list[Figure]:
    tag = f"{plan.profile.split('_')[-1]}_{plan.count}"
    emu = EmulatorProcess(plan.count, plan.latency_s, plan.profile)
    sink = OtlpSink()
    started = time.monotonic()
    data = emu.start()
    log(f"product {tag}: {plan.count} plugs up in {time.monotonic() - started:.1f}s")
    with tempfile.TemporaryDirectory(prefix="otelpower-bench-") as tmp:
        # discovery as configured by a user who lists the plugs: probes the addresses in use
        config = {**data, "discovery": {"targets": []}}
        path = Path(tmp) / "plugs.yaml"
        path.write_text(yaml.safe_dump(config))
        run = Product(Path(tmp), path, sink.url)
        try:
            for attempt in range(3):  # a free port may be taken before otelpower binds it
                try:
                    run.start(timeout=120)
                    break
                except RuntimeError as exc:
                    if "address already in use" not in str(exc) or attempt == 2:
                        raise
                    run.port = free_port()
            figures = _measure_running(plan, tag, emu, run)
        except Exception:
            log(f"product {tag}: otelpower log:\n{run.log_tail()}")
            raise
        finally:
            run.stop()
            emu.stop()
            sink.close()
    return figures


def _measure_running(plan: Plan, tag: str, emu: EmulatorProcess, run: Product) -> list[Figure]:
    n = plan.count
    t0 = time.monotonic()
    wait_until(
        lambda: sum(v == 1 for v in up_values(run.metrics()).values()) == n,
        300,
        0.5,
        f"{n} plugs up",
    )
    log(f"product {tag}: all {n} up after {time.monotonic() - t0:.1f}s; warming 2 intervals")
    time.sleep(2 * INTERVAL_S)

    emu.requests()
    body = run.metrics()
    polls0, cpu0 = sum_of(body, POLLS), proctree.cpu_s(run.pid)
    threads0 = proctree.threads_cpu_s(run.pid)
    child0 = {p: proctree.cpu_s(p) for p in proctree.tree(run.pid) if p != run.pid}
    emu0 = emu.cpu_s()
    seq0 = run.rendering()
    window = plan.cycles * INTERVAL_S
    scrapes: list[float] = []
    for _ in range(plan.cycles):  # a scrape per interval, as Prometheus would
        scrapes += scrape(f"{run.url}/metrics", 1)
        time.sleep(INTERVAL_S - scrapes[-1])
    body = run.metrics()
    polls = sum_of(body, POLLS) - polls0
    cpu = proctree.cpu_s(run.pid) - cpu0
    threads1 = proctree.threads_cpu_s(run.pid)
    child = sum(proctree.cpu_s(p) - c for p, c in child0.items())
    emu_cpu = emu.cpu_s() - emu0
    renderings = run.rendering() - seq0
    arrivals = emu.requests()
    mem = proctree.memory(run.pid)
    per_poll = 1000 / polls
    spans = bursts(arrivals, INTERVAL_S / 3)
    log(
        f"product {tag}: {polls:.0f} polls, {len(arrivals)} requests, {cpu:.2f} s CPU in"
        f" {window:.0f} s; bursts {', '.join(f'{s:.2f}' for s in spans)}"
    )
    figures = [
        Figure(f"product_cpu_ms_per_poll_{tag}", cpu * per_poll, "ms"),
        Figure(f"product_requests_per_poll_{tag}", len(arrivals) / polls, "requests"),
        Figure(f"product_pss_mb_{tag}", mem.pss_mb, "MB"),
        Figure(f"product_rss_mb_{tag}", mem.rss_mb, "MB"),
        Figure(f"product_poll_cycle_s_{tag}", statistics.median(spans[1:-1] or spans), "s"),
        Figure(f"product_emulator_cpu_ms_per_poll_{tag}", emu_cpu * per_poll, "ms"),
        Figure(f"product_renderings_per_interval_{tag}", renderings / plan.cycles, "renderings"),
    ]
    other: float | None = None  # threads outside THREADS: asyncio's executor, the SDK's
    for name in sorted(set(threads1) | set(threads0)):
        used = (threads1.get(name, 0.0) - threads0.get(name, 0.0)) * per_poll
        log(f"  thread {name}: {used:.3f} ms per poll")
        if name in THREADS:
            figures.append(Figure(f"product_cpu_ms_per_poll_{tag}_{name}", used, "ms"))
        else:
            other = (other or 0.0) + used
    figures.append(Figure(f"product_cpu_ms_per_poll_{tag}_metrics-process", child * per_poll, "ms"))
    if other is not None:
        figures.append(Figure(f"product_cpu_ms_per_poll_{tag}_other", other, "ms"))
    lat = scrape(f"{run.url}/metrics", int(INTERVAL_S / 0.1), gap_s=0.1)
    figures += [
        Figure(f"product_scrape_p50_ms_{tag}", percentile(lat, 50) * 1000, "ms"),
        Figure(f"product_scrape_p99_ms_{tag}", percentile(lat, 99) * 1000, "ms"),
        Figure(f"product_metrics_bytes_{tag}", len(body), "bytes"),
    ]
    if plan.outage:
        figures += _outage(plan, tag, emu, run)
    return figures


def _outage(plan: Plan, tag: str, emu: EmulatorProcess, run: Product) -> list[Figure]:
    started = time.monotonic()
    figures = []
    devices = [d["device_id"] for d in emu.config["devices"][: plan.down]]
    emu.set_fault(plan.down, "offline")
    t_down = time.monotonic()

    def all_down() -> bool:
        body = run.metrics()
        ups, powered = up_values(body), with_power(body)
        return all(ups.get(d) == 0 for d in devices) and not powered & set(devices)

    done = wait_until(all_down, 120, 0.1, f"{plan.down} plugs down")
    figures.append(Figure(f"product_down_s_{tag}", done - t_down, "s"))
    log(f"product {tag}: {plan.down} plugs down on /metrics after {done - t_down:.1f}s")
    memory: list[tuple[float, float]] = []
    sampler_stop = threading.Event()

    def sample() -> None:
        while not sampler_stop.wait(10):
            memory.append((time.monotonic(), proctree.memory(run.pid).pss_mb))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(max(0.0, plan.outage_s - (time.monotonic() - t_down)))
    emu.set_fault(plan.down, "none")
    t_back = time.monotonic()
    done = wait_until(
        lambda: all(up_values(run.metrics()).get(d) == 1 for d in devices),
        600,
        0.1,
        f"{plan.down} plugs back",
    )
    figures.append(Figure(f"product_return_s_{tag}", done - t_back, "s"))
    log(f"product {tag}: back on /metrics after {done - t_back:.1f}s ({plan.outage_s:g}s outage)")
    end = started + plan.minutes * 60
    while time.monotonic() < end:
        time.sleep(5)
    sampler_stop.set()
    sampler.join()
    if len(memory) >= 3:
        xs, ys = [m[0] for m in memory], [m[1] for m in memory]
        slope = statistics.linear_regression(xs, ys).slope * 3600
        span = (xs[-1] - xs[0]) / 60
        log(f"product {tag}: PSS {ys[0]:.1f} -> {ys[-1]:.1f} MB over {span:.0f} min")
        figures += [
            Figure(f"product_pss_slope_mb_per_h_{tag}", slope, "MB/h"),
            Figure(f"product_pss_mb_{tag}_max", max(ys), "MB"),
            Figure(f"product_memory_minutes_{tag}", span, "min"),
        ]
    return figures


if __name__ == "__main__":
    import argparse

    from figures import report

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--profile", default="p110_klap")
    p.add_argument("--cycles", type=int, default=4)
    p.add_argument("--outage", action="store_true")
    p.add_argument("--outage-s", type=float, default=300.0)
    p.add_argument("--minutes", type=float, default=0.0)
    a = p.parse_args()
    report(
        measure(
            Plan(
                a.count,
                a.profile,
                a.cycles,
                outage=a.outage,
                outage_s=a.outage_s,
                minutes=a.minutes,
            )
        )
    )
