"""The plug password never shows: not in logs, errors, /metrics or any command's output.

Real processes against the emulator: `sim` owning the plugs with a password, `run` with the
right and then a wrong password, and the one-shot `read`, `discover` and `check`; every byte
they print and every /metrics body is searched for both passwords.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.ports import free_port
from harness.processes import cli_process as process
from harness.promtext import find, parse
from harness.wait import wait_for
from otelpower.sim import builtin_profiles

pytestmark = pytest.mark.live  # starts otelpower processes and emulated plugs

RIGHT = "pw-" + secrets.token_hex(8)
WRONG = "pw-" + secrets.token_hex(8)


def metrics_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def statuses(text: str) -> set[str]:
    return {dict(k)["status"] for k in find(parse(text), "tplink_native_device_status")}


async def test_no_output_shows_the_password(tmp_path: Path) -> None:
    config = tmp_path / "plugs.yaml"
    owner = {"KASA_USERNAME": "owner@example.com", "KASA_PASSWORD": RIGHT}
    port = free_port()
    seen: list[str] = []
    profiles = [p.stem for p in builtin_profiles()]  # every transport, TPAP included
    count = str(len(profiles))
    async with process("sim", "--count", count, "--config-out", str(config), env=owner) as sim:
        await wait_for(lambda: config.exists() and config.stat().st_size > 0, timeout=20)
        data = yaml.safe_load(config.read_text())
        data["poll"] = {"interval": 0.5, "timeout": 3}
        data["discovery"] = {"enabled": False}
        data["prometheus"] = {"host": "127.0.0.1", "port": port}
        config.write_text(yaml.safe_dump(data))

        wanted = {RIGHT: lambda s: s == {"ok"}, WRONG: lambda s: "auth_failed" in s}
        for password, reached in wanted.items():
            env = {**owner, "KASA_PASSWORD": password}
            async with process("run", str(config), env=env) as run:
                await wait_for(lambda: reached(statuses(metrics_text(port))), timeout=30)  # noqa: B023
                seen.append(metrics_text(port))
                run.send_signal(signal.SIGTERM)
                out, err = await asyncio.wait_for(run.communicate(), 20)
                seen += [out.decode(), err.decode()]

        native = next(d["native"] for d in data["devices"] if d.get("native"))
        tpap = data["devices"][profiles.index("p110_tpap")]["native"]
        commands = [
            ["read", f"{native['host']}:{native['port']}", "--json"],
            ["read", f"{tpap['host']}:{tpap['port']}", "--json"],
            ["discover", "--json", "--target", native["host"], "--wait", "2"],
            ["check", str(config)],
        ]
        for args in commands:
            for password in (RIGHT, WRONG):
                async with process(*args, env={**owner, "KASA_PASSWORD": password}) as cmd:
                    out, err = await asyncio.wait_for(cmd.communicate(), 30)
                    seen += [out.decode(), err.decode()]
        sim.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(sim.communicate(), 20)
        seen += [out.decode(), err.decode()]

    assert any("auth_failed" in text for text in seen)  # the wrong password was noticed
    for text in seen:
        assert RIGHT not in text and WRONG not in text


async def test_a_matter_url_token_never_reaches_the_log(caplog) -> None:
    """aiohttp quotes the whole URL in its error: the reader scrubs it before logging."""
    from aiohttp import web

    from otelpower.readers.matter.reader import MatterReader
    from tests.conftest import make_config

    async def refuse(_: web.Request) -> web.Response:
        return web.Response(status=403)  # the handshake fails: aiohttp's error quotes the URL

    app = web.Application()
    app.router.add_get("/ws", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    token = "tok-" + secrets.token_hex(8)
    url = f"ws://user:pw-{token}@127.0.0.1:{port}/ws?token={token}"
    device = {"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s", "matter": {"node_id": 1}}
    reader = MatterReader(make_config({"devices": [device], "matter": {"url": url}}))
    task = asyncio.create_task(reader.run())
    try:
        await wait_for(lambda: any("Matter server" in r.getMessage() for r in caplog.records))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Matter server" in text and token not in text, text
    assert all(token not in s.detail for s in reader.store.all())
