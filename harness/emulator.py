"""Emulated plugs in a child process, so they do not share the reader's CPU or event loop.

Used by bench/ and the soak (tests/test_soak.py). The parent talks to the child over a
``multiprocessing`` pipe: the child sends ``("config", dict)`` once every plug listens, then
answers ``"cpu"`` (its ``time.process_time()``), ``("latency", s)``, ``("chaos", seed)``
(faults at random from now on), ``"calm"`` (chaos stopped, every plug healed),
``("fault", n, name)`` (the first ``n`` plugs get fault ``name``; ``"none"`` heals them) and
``"requests"`` (the requests the plugs answered since the last ask: their arrival times, on
this machine's monotonic clock), and exits on ``"stop"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing as mp
import os
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

NET = os.environ.get("OTELPOWER_EMULATOR_NET", "127.231")
#: plugs per Simulator: one 127.A.B.0/24 block holds at most 254 addresses
PER_BLOCK = 250
#: what chaos does to a plug; OVERSIZED (4 MB replies) is left out: at random it would
#: measure allocator high-water marks, not otelpower
FAULTS = ("offline", "slow", "garbage", "malformed", "truncated", "wrong_key")
NONSENSE: tuple[Any, ...] = (-5000, 1e30, "x", math.nan, [1])


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _chaos(plugs: list[Any], rng: random.Random, stop: asyncio.Event) -> int:
    """Every 50 ms one random plug gets a fault, a reboot, nonsense values, or heals."""
    from otelpower.sim import Fault

    actions = 0
    while not stop.is_set():
        plug = rng.choice(plugs)
        roll = rng.random()
        if roll < 0.45:
            plug.fault = Fault.NONE
            plug.device.overrides = {}
        elif roll < 0.75:
            plug.fault = Fault(rng.choice(FAULTS))
        elif roll < 0.9:
            plug.drop_sessions()  # a reboot: the KLAP/AES/TPAP session is gone
        else:
            key = "power_mw" if plug.transport != "XOR" else "power"
            plug.device.overrides = {key: rng.choice(NONSENSE)}
        actions += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
    return actions


def counting_handle(record: Callable[[Any], None]) -> Callable[..., dict[str, Any]]:
    """``DeviceModel.handle`` that first calls ``record(device)`` for every request a plug
    answers (a KLAP/AES/TPAP request or an XOR frame, batched or not; handshakes and
    discovery are not requests). Set it as ``DeviceModel.handle``."""
    from otelpower.sim.device import DeviceModel

    handle = DeviceModel.handle

    def counted(self: DeviceModel, request: dict[str, Any]) -> dict[str, Any]:
        record(self)
        return handle(self, request)

    return counted


async def _serve(
    count: int, latency_s: float, profiles: Sequence[str], slow_s: float, conn: Connection
) -> None:
    from otelpower.sim import Fault, PlugOptions, Simulator, builtin_profiles

    arrivals: list[float] = []
    from otelpower.sim.device import DeviceModel

    DeviceModel.handle = counting_handle(  # type: ignore[method-assign]
        lambda _: arrivals.append(time.monotonic())
    )

    paths = {p.stem: p for p in builtin_profiles()}
    sims: list[Simulator] = []
    chaos: asyncio.Task[int] | None = None
    stop = asyncio.Event()
    try:
        devices: list[dict[str, Any]] = []
        left, block = count, 0
        while left > 0:
            n = min(left, PER_BLOCK)
            # fixed blocks in 127.231.x (or OTELPOWER_EMULATOR_NET: two runs side by side):
            # distinct per block, unlikely to collide with tests
            sim = Simulator(f"{NET}.{block + 10}.0")
            sims.append(sim)
            first = count - left
            options = [
                PlugOptions(paths[profiles[(first + i) % len(profiles)]], latency_s=latency_s)
                for i in range(n)
            ]
            await sim.start(options)
            devices += sim.config_dict()["devices"]
            left, block = left - n, block + 1
        plugs = [plug for sim in sims for plug in sim.plugs]
        for plug in plugs:
            plug.slow_s = slow_s
        for i, dev in enumerate(devices, start=1):
            dev["device"] = f"bench-{i}"
        conn.send(("config", {"house": "bench", "devices": devices}))
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg == "cpu":
                conn.send(("cpu", time.process_time()))
            elif isinstance(msg, tuple) and msg[0] == "latency":
                for plug in plugs:
                    plug.latency_s = msg[1]
                conn.send(("latency", msg[1]))
            elif isinstance(msg, tuple) and msg[0] == "chaos":
                stop.clear()
                chaos = asyncio.create_task(_chaos(plugs, random.Random(msg[1]), stop))
                conn.send(("chaos", msg[1]))
            elif msg == "calm":
                stop.set()
                actions = await chaos if chaos is not None else 0
                chaos = None
                for plug in plugs:
                    plug.device.overrides = {}
                    await plug.set_fault(Fault.NONE)
                conn.send(("calm", actions))
            elif isinstance(msg, tuple) and msg[0] == "fault":
                _, n, name = msg
                for plug in plugs[:n]:
                    await plug.set_fault(Fault(name))
                conn.send(("fault", n))
            elif msg == "requests":
                conn.send(("requests", arrivals[:]))
                arrivals.clear()
            elif msg == "stop":
                break
    finally:
        stop.set()
        for sim in sims:
            await sim.stop()


def _child(
    count: int, latency_s: float, profiles: Sequence[str], slow_s: float, conn: Connection
) -> None:
    from otelpower import eventloop

    raise_fd_limit()
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # dropped connections at stop
    try:
        eventloop.run(_serve(count, latency_s, profiles, slow_s, conn))  # as `otelpower sim`
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        raise


@dataclass
class EmulatorProcess:
    """``count`` plugs answering after ``latency_s``, in a spawned process; plug ``i`` is
    ``profile`` (a builtin profile's stem), or ``profile[i % len(profile)]`` for a mix."""

    count: int
    latency_s: float = 0.05
    profile: str | Sequence[str] = "p110_klap"
    startup_timeout_s: float = 120.0
    #: how long a plug with the ``slow`` fault takes to answer
    slow_s: float = 5.0

    def __post_init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        profiles = (self.profile,) if isinstance(self.profile, str) else tuple(self.profile)
        self._proc = ctx.Process(
            target=_child,
            args=(self.count, self.latency_s, profiles, self.slow_s, child_conn),
            name=f"emulator-{self.count}",
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

    def _ask(self, msg: Any, timeout_s: float = 120.0) -> Any:
        self._conn.send(msg)
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"emulator did not answer {msg!r} within {timeout_s:g}s")
        kind, value = self._conn.recv()
        expected = msg if isinstance(msg, str) else msg[0]
        if kind != expected:
            raise RuntimeError(f"emulator answered {kind}: {value}")
        return value

    def cpu_s(self) -> float:
        """The child's process CPU time so far, in seconds."""
        return float(self._ask("cpu"))

    def set_latency(self, seconds: float) -> None:
        """Every plug answers after ``seconds`` from now on."""
        self._ask(("latency", seconds))

    def chaos(self, seed: int) -> None:
        """From now on, every 50 ms a random plug gets a fault, a reboot or nonsense values."""
        self._ask(("chaos", seed))

    def calm(self) -> int:
        """Stop the chaos and heal every plug; the number of chaos actions taken."""
        return int(self._ask("calm"))

    def set_fault(self, n: int, fault: str) -> None:
        """The first ``n`` plugs get ``fault`` (a ``Fault`` value; ``"none"`` heals them)."""
        self._ask(("fault", n, fault))

    def requests(self) -> list[float]:
        """Arrival times (``time.monotonic()``) of the requests answered since the last call."""
        return list(self._ask("requests"))

    @property
    def pid(self) -> int | None:
        return self._proc.pid

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
