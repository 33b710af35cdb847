"""Every python-kasa fixture dump, emulated statically, reads back the dump's own values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kasa import Module

from otelpower.readers.native.values import device_readings
from otelpower.sim import PlugOptions, Simulator

from .conftest import FIXTURES
from .helpers import discovered, energy, has_vi


def _expected(dump: dict) -> tuple[float, float | None, float | None]:
    """(power W, voltage V, current A) as the dump states them (None: not in the dump)."""
    if "system" in dump:
        rt = dump["emeter"]["get_realtime"]

        def pick(plain: str, milli: str) -> float:
            return rt[plain] if plain in rt else rt[milli] / 1000

        return (
            pick("power", "power_mw"),
            pick("voltage", "voltage_mv"),
            pick("current", "current_ma"),
        )
    em, eu = dump.get("get_emeter_data", {}), dump.get("get_energy_usage", {})
    if "power_mw" in em:
        power = em["power_mw"] / 1000
    elif eu.get("current_power") is not None:
        power = eu["current_power"] / 1000
    else:
        power = dump["get_current_power"]["current_power"]
    volts = em["voltage_mv"] / 1000 if "voltage_mv" in em else None
    amps = em["current_ma"] / 1000 if "current_ma" in em else None
    return power, volts, amps


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


async def test_fixture_corpus_reads_back() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"no fixture corpus at {FIXTURES}")
    paths = sorted(FIXTURES.rglob("*.json"))
    if not paths:
        pytest.skip(f"no JSON under {FIXTURES}")
    async with Simulator() as sim:
        plugs = await sim.start([PlugOptions(profile=p, static=True) for p in paths])
        for path, plug in zip(paths, plugs, strict=True):
            dump = _load(path)
            power, volts, amps = _expected(dump)
            async with discovered(plug) as dev:
                assert dev.mac.lower() == plug.mac, path.name
                # real devices' values are all plausible: nothing is dropped
                dropped = [d for r in device_readings(dev) for d in r.dropped]
                assert not dropped, (path.name, dropped)
                targets = dev.children if dev.children else [dev]
                states = [o["relay_on"] for o in plug.readings().get("outlets", [plug.readings()])]
                for target, on in zip(targets, states, strict=True):
                    e = energy(target)
                    want_p = power if on else 0.0
                    assert e.current_consumption == pytest.approx(want_p), path.name
                    if volts is not None:
                        assert has_vi(e), path.name
                        assert e.voltage == pytest.approx(volts), path.name
                        assert e.current == pytest.approx(amps if on else 0.0), path.name
                    if target is not dev:
                        assert Module.Energy in target.modules
