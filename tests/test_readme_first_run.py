"""README "Pointing it at real plugs", step by step, as a user types it, against emulated plugs:
the commands are the README's own (only the addresses and the port are the emulator's), and no
file is written by hand (the config is what ``discover`` printed, rooms filled in)."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable
from pathlib import Path

from harness.ports import free_port
from harness.processes import cli_process
from harness.promtext import find, scrape
from harness.wait import wait_for
from otelpower.sim import PlugOptions, TpapOptions, builtin_profiles

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {p.stem: p for p in builtin_profiles()}
ENV = {"KASA_USERNAME": "you@example.com", "KASA_PASSWORD": "right-pass"}
SECTION = "## Pointing it at real plugs"


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) : text.index("\n## ", text.index(SECTION) + 1)]
    commands = re.findall(r"^\s*\.venv/bin/otelpower ([^#\n]*)", section, flags=re.M)
    return [c.split() for c in commands]


def _power(port: int) -> dict[str, dict[str, str]]:
    try:
        series = find(scrape(port), "tplink_native_power_watts")
    except OSError:
        return {}
    return {dict(k)["device_id"]: dict(k) for k in series}


async def _run_until(
    args: list[str], port: int, done: Callable[[dict], bool]
) -> dict[str, dict[str, str]]:
    async with cli_process(*args, "--prometheus-port", str(port), env=ENV) as run:
        found = await wait_for(lambda: done(_power(port)) and _power(port), timeout=45)
        run.send_signal(signal.SIGTERM)
        await asyncio.wait_for(run.wait(), 15)
        assert run.returncode == 0, (await run.stderr.read()).decode()[-2000:]
    return found


async def test_the_readme_first_run(simulator, tmp_path: Path) -> None:
    login = {"username": ENV["KASA_USERNAME"], "password": ENV["KASA_PASSWORD"]}
    plugs = await simulator.start(
        [
            PlugOptions(PROFILES["kp115_xor"]),
            PlugOptions(PROFILES["p110_klap"], **login),
            PlugOptions(PROFILES["p110_tpap"], transport="TPAP", tpap=TpapOptions(), **login),
        ]
    )
    aliases = {p.mac: p.alias for p in plugs}
    targets = [a for p in plugs for a in ("--target", p.host)]  # no broadcast on loopback
    commands = _readme_commands()
    assert [c[0] for c in commands] == ["run", "discover", "read", "check", "run"], commands
    first_run, discover, read, check, second_run = commands
    port = free_port()

    # 1. a first number, no file
    assert first_run == ["run"]
    found = await _run_until(["run", *targets], port, lambda p: set(p) == set(aliases))
    assert {mac: labels["device"] for mac, labels in found.items()} == aliases
    assert {(labels["room"], labels["shelf"]) for labels in found.values()} == {
        ("unassigned", "unassigned")
    }

    # 2. discover prints the snippet; the user pastes it and fills in the rooms
    async with cli_process(*discover, *targets, "--wait", "1", env=ENV) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    snippet = out.decode().split("# paste into your config under 'devices:'\n", 1)[1]
    config = tmp_path / check[1]
    config.write_text("devices:\n" + snippet.replace("CHANGE-ME", "office"))

    host = read[1]
    async with cli_process("read", plugs[0].host, *read[2:], env=ENV) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert host != plugs[0].host and proc.returncode == 0, err.decode()
    assert plugs[0].alias in out.decode()
    assert re.search(r"relay (on|off)$", out.decode(), flags=re.M), out.decode()
    assert not re.search(r"\b(True|False|None)\b", out.decode()), out.decode()

    async with cli_process(check[0], str(config), env=ENV) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and "OK" in out.decode(), err.decode()
    assert "CHANGE-ME" not in err.decode(), err.decode()  # every placeholder filled in

    assert second_run == ["run", check[1]]
    found = await _run_until(["run", str(config)], port, lambda p: set(p) == set(aliases))
    assert {mac: labels["device"] for mac, labels in found.items()} == aliases
    assert {labels["room"] for labels in found.values()} == {"office"}
