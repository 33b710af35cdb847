"""Child processes with a log file, stopped for sure: SIGTERM, then SIGKILL after a grace."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from harness.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


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


class OtelpowerRun(Process):
    """``otelpower run CONFIG`` (``python -m otelpower.cli``) with ``env`` on top of ours,
    /metrics on a free port; healthy once /readyz is 200."""

    name = "otelpower run"

    def __init__(self, tmp: Path, config: Path, env: dict[str, str]) -> None:
        super().__init__(tmp / "otelpower.log")
        self.config = config
        self.port = free_port()
        self.env = env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        run = ["run", str(self.config), "--prometheus-port", str(self.port)]
        return [sys.executable, "-m", "otelpower.cli", *run]

    def healthy(self) -> bool:
        try:
            return http_get(f"{self.url}/readyz", timeout=1)[0] == 200
        except OSError:
            return False


@asynccontextmanager
async def cli_process(*args: str, env: dict[str, str] | None = None) -> AsyncIterator:
    """``python -m otelpower.cli ARGS`` with piped output; killed on the way out."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "otelpower.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
