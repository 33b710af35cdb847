"""The real python-matter-server as a child process, for tests and demos of the Matter reader.

The server lives in its own venv (``.tools/matter-server``, built by ``make setup`` from
``tools/matter-server-requirements.txt``) because its ``[server]`` extra pins libraries we do not
want in otelpower's runtime lock. Attestation uses the Matter Test PAA exported into
``.tools/paa`` (``make setup``), so matter.js test devices (``VirtualMatterPlug``) commission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import aiohttp
from matter_server.client import MatterClient

from otelpower.sim.process import terminate

from .matter import child_prefix

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_VENV = REPO_ROOT / ".tools" / "matter-server"
SERVER_BIN = SERVER_VENV / "bin" / "matter-server"
PAA_DIR = REPO_ROOT / ".tools" / "paa"
# The CHIP SDK keeps its own config in /data/chip_*.ini whatever --storage-path says: the path
# is compiled into home-assistant-chip-core, and the SDK does not start when it cannot write it.
CHIP_DATA_DIR = Path("/data")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
COMMISSION_TIMEOUT_S = 60.0


class MatterServerError(RuntimeError):
    """The Matter server is missing or did not start / stop as expected."""


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ensure_server_installed(server_bin: Path = SERVER_BIN, paa_dir: Path = PAA_DIR) -> None:
    """Raise with a hint unless the server venv and the test PAA are in place."""
    if not server_bin.is_file():
        raise MatterServerError(
            f"{server_bin} is missing: run `make matter-deps` (the Matter test bed)"
        )
    if not any(paa_dir.glob("*.der")):
        raise MatterServerError(
            f"no PAA certificate in {paa_dir}: run `make matter-deps` (the Matter test bed)"
        )


def ensure_chip_data_dir(path: Path = CHIP_DATA_DIR) -> None:
    """The CHIP SDK needs a writable ``/data``; create it when we may."""
    if path.is_dir() and os.access(path, os.W_OK):
        return
    if not path.exists() and os.geteuid() == 0:
        path.mkdir(mode=0o755)
        return
    user = pwd.getpwuid(os.geteuid()).pw_name
    # an existing /data may be a real data mount: never recursive (nothing under it changes)
    fix = f"sudo chown {user} {path}" if path.exists() else f"sudo install -d -o {user} {path}"
    raise MatterServerError(
        f"the CHIP SDK needs a writable {path} (it keeps chip_*.ini there): run `{fix}`"
        " (or run as root)"
    )


def touch_paa_version(paa_dir: Path) -> None:
    """Keep the server from downloading certificates.

    It skips the download only when ``.version`` is younger than a day (and without the file it
    deletes the certificates it finds), so refresh the file's time before every start.
    """
    version = paa_dir / ".version"
    version.touch()
    os.utime(version)


class MatterServerProcess:
    """``matter-server`` on a free loopback port with its storage in ``storage_dir``."""

    def __init__(
        self,
        storage_dir: Path,
        *,
        port: int | None = None,
        server_bin: Path = SERVER_BIN,
        paa_dir: Path = PAA_DIR,
        primary_interface: str | None = None,
        log_level: str = "info",
        log_level_sdk: str = "error",
        vendor_id: int | None = None,
        fabric_id: int | None = None,
        netns: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.storage_dir = Path(storage_dir)
        self.port = port
        self.server_bin = Path(server_bin)
        self.paa_dir = Path(paa_dir)
        self.primary_interface = primary_interface
        self.log_level = log_level
        self.log_level_sdk = log_level_sdk
        self.vendor_id = vendor_id
        self.fabric_id = fabric_id
        self.netns = netns
        self.extra_args = list(extra_args or [])
        self.start_duration: float | None = None  # seconds of the last start()
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"<MatterServerProcess {self.url if self.port else '-'} {self.storage_dir}>"

    @property
    def url(self) -> str:
        if self.port is None:
            raise MatterServerError("server not started yet")
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def log_path(self) -> Path:
        return self.storage_dir / "matter-server.log"

    def command(self) -> list[str]:
        assert self.port is not None
        cmd = [
            *child_prefix(self.netns),
            str(self.server_bin),
            "--storage-path",
            str(self.storage_dir),
            "--port",
            str(self.port),
            "--listen-address",
            "127.0.0.1",
            "--paa-root-cert-dir",
            str(self.paa_dir),
            "--log-level",
            self.log_level,
            "--log-level-sdk",
            self.log_level_sdk,
        ]
        if self.primary_interface:
            cmd += ["--primary-interface", self.primary_interface]
        if self.vendor_id is not None:
            cmd += ["--vendorid", str(self.vendor_id)]
        if self.fabric_id is not None:
            cmd += ["--fabricid", str(self.fabric_id)]
        return cmd + self.extra_args

    async def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the server and wait until its WebSocket answers."""
        if self.running:
            return
        ensure_server_installed(self.server_bin, self.paa_dir)
        ensure_chip_data_dir()
        touch_paa_version(self.paa_dir)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_tcp_port()
        cmd = self.command()
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        self._log.flush()
        t0 = time.monotonic()
        self._proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise
        self.start_duration = time.monotonic() - t0
        log.info("matter-server up on %s in %.1fs", self.url, self.start_duration)

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self._proc is None or self._proc.returncode is not None:
                    raise MatterServerError(
                        f"matter-server exited early; see {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.ws_connect(
                        self.url, timeout=aiohttp.ClientWSTimeout(2)
                    ) as ws:
                        msg = await ws.receive_json(timeout=5)  # server info on connect
                        if "schema_version" in msg:
                            return
                if time.monotonic() > deadline:
                    raise MatterServerError(
                        f"matter-server did not answer on {self.url} within {timeout}s; "
                        f"see {self.log_path}:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.2)

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``; returns the exit code."""
        proc, self._proc = self._proc, None
        code = await terminate(proc, timeout, "matter-server") if proc is not None else None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    async def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        """Stop and start again: same storage (fabric, nodes) and same port."""
        await self.stop()
        await self.start(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def __aenter__(self) -> MatterServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def commission(
    url: str, passcode: int, ip: str = "::1", timeout: float = COMMISSION_TIMEOUT_S
) -> int:
    """Commission the device listening on ``ip`` port 5540 (CHIP's fixed port); its node id."""
    async with aiohttp.ClientSession() as session, listening_client(url, session) as client:
        async with asyncio.timeout(timeout):
            node = await client.commission_on_network(passcode, ip_addr=ip)
    return int(node.node_id)


@contextlib.asynccontextmanager
async def listening_client(
    url: str, session: aiohttp.ClientSession, timeout: float = 10.0
) -> AsyncIterator[MatterClient]:
    """A connected ``MatterClient`` whose listen loop runs (needed for command results/events)."""
    client = MatterClient(url, session)
    await client.connect()
    ready = asyncio.Event()
    task = asyncio.create_task(client.start_listening(ready), name="matter-client-listen")
    try:
        async with asyncio.timeout(timeout):
            done, _ = await asyncio.wait(
                [task, asyncio.ensure_future(ready.wait())], return_when=asyncio.FIRST_COMPLETED
            )
        if task in done:
            task.result()  # raises what stopped the loop
            raise MatterServerError("the Matter client stopped listening at once")
        yield client
    finally:
        await client.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def server_available() -> bool:
    """Whether the server venv, the PAA certificate and ``node`` are installed."""
    return SERVER_BIN.is_file() and any(PAA_DIR.glob("*.der")) and shutil.which("node") is not None
