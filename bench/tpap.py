"""TPAP beside KLAP in one run: reader CPU per poll and per login, and memory per session.

Each transport runs in a fresh interpreter (so RSS is that of the transport alone) against N
emulated P110 plugs in an emulator child process: the KLAP plugs through python-kasa, the
TPAP plugs through the ``tapo`` client. The same cycle code measures both.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from figures import Figure, log

from harness.emulator import EmulatorProcess, raise_fd_limit

PROFILES = {"klap": "p110_klap", "tpap": "p110_tpap"}


def _one_transport(name: str, n: int, latency_s: float) -> dict[str, float]:
    """Login cycle, then three poll cycles, of N plugs of one transport (fresh process)."""
    raise_fd_limit()
    logging.basicConfig(level=logging.ERROR)
    from run import make_config, not_ok

    from harness.procstat import rss_mb
    from otelpower import eventloop
    from otelpower.readers.native.reader import NativeReader

    async def go() -> dict[str, float]:
        import kasa  # noqa: F401 - libraries in before the baseline RSS
        import tapo  # noqa: F401

        emu = EmulatorProcess(n, latency_s, profile=PROFILES[name], startup_timeout_s=600)
        data = emu.start()
        try:
            reader = NativeReader(make_config(data, concurrency=n, timeout=60))
            rss0 = rss_mb()
            cpu0, t0 = time.process_time(), time.perf_counter()
            await reader.poll_all()  # discovery + login of every plug
            login_cpu, login_s = time.process_time() - cpu0, time.perf_counter() - t0
            rss1 = rss_mb()
            failed = not_ok(reader)
            cycles = 3
            cpu0 = time.process_time()
            for _ in range(cycles):
                await reader.poll_all()
            poll_cpu = (time.process_time() - cpu0) / cycles
            failed += not_ok(reader)
            await reader.close()
        finally:
            emu.stop()
        return {
            "login_cpu_ms": login_cpu * 1000 / n,
            "login_cycle_s": login_s,
            "poll_cpu_ms": poll_cpu * 1000 / n,
            "session_kb": (rss1 - rss0) * 1024 / n,
            "failures": failed,
        }

    return eventloop.run(go())


def bench_tpap(n: int, latency_s: float) -> list[Figure]:
    results: dict[str, dict[str, float]] = {}
    for name in PROFILES:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as fresh:
            results[name] = fresh.submit(_one_transport, name, n, latency_s).result()
        log(f"tpap N={n}: {name} {results[name]}")
    klap, tpap = results["klap"], results["tpap"]
    figures = []
    for name, r in results.items():
        figures += [
            Figure(f"{name}_cpu_ms_per_poll_{n}", r["poll_cpu_ms"], "ms"),
            Figure(f"{name}_login_cpu_ms_{n}", r["login_cpu_ms"], "ms"),
            Figure(f"{name}_session_kb_{n}", r["session_kb"], "kB"),
            Figure(f"{name}_poll_failures_{n}", r["failures"], "polls"),
        ]
    figures += [
        Figure(f"tpap_vs_klap_cpu_per_poll_{n}", tpap["poll_cpu_ms"] / klap["poll_cpu_ms"], "x"),
        Figure(f"tpap_vs_klap_session_memory_{n}", tpap["session_kb"] / klap["session_kb"], "x"),
    ]
    return figures
