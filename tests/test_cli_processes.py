"""The shipped commands as processes: `sim` + `run` (what `make demo` does), SIGTERM, check."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.ports import free_port
from harness.processes import cli_process as process
from harness.promtext import find, scrape
from harness.wait import wait_for

pytestmark = pytest.mark.live  # starts otelpower processes and emulated plugs


async def test_sim_then_run_shows_changing_values(tmp_path: Path) -> None:
    config = tmp_path / "demo.yaml"
    port = free_port()
    async with process("sim", "--config-out", str(config)) as sim:
        await wait_for(lambda: config.exists() and config.stat().st_size > 0, timeout=20)
        data = yaml.safe_load(config.read_text())
        data["prometheus"] = {"host": "127.0.0.1", "port": port}
        data["poll"] = {"interval": 0.5, "timeout": 3}
        config.write_text(yaml.safe_dump(data))
        async with process("run", str(config)) as run:

            def powered() -> dict:
                try:
                    return find(scrape(port), "tplink_native_power_watts")
                except OSError:
                    return {}

            first = await wait_for(
                lambda: len({dict(k)["device_id"] for k in powered()}) >= 3, timeout=30
            )
            assert first
            transports = {
                dict(k)["transport"] for k in find(scrape(port), "tplink_native_device_info")
            }
            assert len(transports) >= 3, transports
            for path in ("/healthz", "/readyz"):
                url = f"http://127.0.0.1:{port}{path}"
                resp = await asyncio.to_thread(urllib.request.urlopen, url, timeout=5)
                assert resp.status == 200
                resp.close()
            before = powered()
            await wait_for(lambda: powered() != before, timeout=15)  # the load curve moves

            run.send_signal(signal.SIGTERM)
            await asyncio.wait_for(run.wait(), 10)
            assert run.returncode == 0, (await run.stderr.read()).decode()
        sim.send_signal(signal.SIGTERM)
        await asyncio.wait_for(sim.wait(), 10)


async def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("house: home\ndevices:\n  - device_id: 48:22:54:00:00:01\n    room: [x]\n")
    async with process("run", str(bad)) as run:
        _, err = await asyncio.wait_for(run.communicate(), 20)
    assert run.returncode == 2
    text = err.decode()
    assert "bad.yaml" in text and "devices[0].room (line 4)" in text
    assert "Traceback" not in text


async def test_run_without_a_config_file_says_it_is_zero_config() -> None:
    """What a container or unit started with no file logs: not a config problem."""
    port = free_port()
    # discovery asks loopback only: no broadcast leaves the test
    args = ("run", "--prometheus-port", str(port), "--target", "127.0.0.1")
    async with process(*args) as run:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        await wait_for(ready, timeout=30, in_thread=True)
        run.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(run.communicate(), 15)
    assert run.returncode == 0, err.decode()
    text = err.decode()
    assert "no config file: zero-config, every plug discovery finds is exported" in text, text
    assert "room and shelf 'unassigned'" in text and "Traceback" not in text, text
