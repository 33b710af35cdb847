"""Emulated plugs in a child process, so they do not share the reader's CPU.

The parent talks to the child over a ``multiprocessing`` pipe:
the child sends ``("config", dict)`` once every plug listens, then answers ``"cpu"`` with its
own ``time.process_time()`` and exits on ``"stop"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

#: plugs per Simulator: one 127.A.B.0/24 block holds at most 254 addresses
PER_BLOCK = 250


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(count: int, latency_s: float, profile: str, conn: Connection) -> None:
    from otelpower.sim import PlugOptions, Simulator, builtin_profiles

    path = next(p for p in builtin_profiles() if p.stem == profile)
    sims: list[Simulator] = []
    try:
        devices: list[dict[str, Any]] = []
        left, block = count, 0
        while left > 0:
            n = min(left, PER_BLOCK)
            # fixed blocks in 127.231.x: distinct per block, unlikely to collide with tests
            sim = Simulator(f"127.231.{block + 10}.0")
            sims.append(sim)
            await sim.start([PlugOptions(path, latency_s=latency_s) for _ in range(n)])
            devices += sim.config_dict()["devices"]
            left, block = left - n, block + 1
        for i, dev in enumerate(devices, start=1):
            dev["device"] = f"bench-{i}"
        conn.send(("config", {"house": "bench", "devices": devices}))
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg == "cpu":
                conn.send(("cpu", time.process_time()))
            elif isinstance(msg, tuple) and msg[0] == "latency":
                for sim in sims:
                    for plug in sim.plugs:
                        plug.latency_s = msg[1]
                conn.send(("latency", msg[1]))
            elif msg == "stop":
                break
    finally:
        for sim in sims:
            await sim.stop()


def _child(count: int, latency_s: float, profile: str, conn: Connection) -> None:
    from otelpower import eventloop

    raise_fd_limit()
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # dropped connections at stop
    try:
        eventloop.run(_serve(count, latency_s, profile, conn))  # as `otelpower sim` runs
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        raise


@dataclass
class EmulatorProcess:
    """``count`` plugs of ``profile`` answering after ``latency_s``, in a spawned process."""

    count: int
    latency_s: float = 0.05
    profile: str = "p110_klap"
    startup_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child,
            args=(self.count, self.latency_s, self.profile, child_conn),
            name=f"bench-emulator-{self.count}",
            daemon=True,
        )
        self.config: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        """Start the child and return the otelpower config dict for its plugs."""
        self._proc.start()
        if not self._conn.poll(self.startup_timeout_s):
            self.stop()
            raise RuntimeError(f"emulator did not start {self.count} plugs in time")
        kind, value = self._conn.recv()
        if kind != "config":
            self.stop()
            raise RuntimeError(f"emulator failed: {value}")
        self.config = value
        return value

    def cpu_s(self) -> float:
        """The child's process CPU time so far, in seconds."""
        self._conn.send("cpu")
        kind, value = self._conn.recv()
        if kind != "cpu":
            raise RuntimeError(f"emulator answered {kind}: {value}")
        return float(value)

    def set_latency(self, seconds: float) -> None:
        """Every plug answers after ``seconds`` from now on."""
        self._conn.send(("latency", seconds))
        kind, value = self._conn.recv()
        if kind != "latency":
            raise RuntimeError(f"emulator answered {kind}: {value}")

    def stop(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send("stop")
            self._proc.join(15)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
