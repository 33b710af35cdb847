"""What a process tree costs, read from /proc: CPU per process and per thread, PSS and RSS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and every live descendant."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return pids


def _stat_cpu_s(path: str) -> float:
    """utime + stime of a /proc .../stat file (the fields after the parenthesised name)."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def cpu_s(pid: int) -> float:
    """CPU seconds the tree under ``pid`` has used so far (live processes only)."""
    total = 0.0
    for p in tree(pid):
        try:
            total += _stat_cpu_s(f"/proc/{p}/stat")
        except OSError:
            continue
    return total


def threads_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread of ``pid``, by OS thread name (``comm``); the main thread is
    ``main``, threads of the same name are summed."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            out[name] = out.get(name, 0.0) + _stat_cpu_s(str(task / "stat"))
        except OSError:
            continue
    return out


@dataclass(frozen=True)
class Memory:
    pss_mb: float
    rss_mb: float


def memory(pid: int) -> Memory:
    """PSS and RSS summed over the tree under ``pid`` (smaps_rollup, in MB)."""
    pss = rss = 0
    for p in tree(pid):
        try:
            lines = Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, rest = line.partition(":")
            if key == "Pss":
                pss += int(rest.split()[0])
            elif key == "Rss":
                rss += int(rest.split()[0])
    return Memory(pss / 1024, rss / 1024)
