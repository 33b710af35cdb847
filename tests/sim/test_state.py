"""``otelpower sim`` keeps its plugs' addresses, ports and MACs across runs (a state file);
``--fresh`` gives new ones; a bad file is named, replaced, and never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from otelpower.sim import PlugOptions, builtin_profiles
from otelpower.sim import state as sim_state

from .helpers import served

pytestmark = pytest.mark.live  # emulated plugs on loopback

PROFILES = builtin_profiles()[:3]


def _plugs(output: str) -> list[tuple[str, int, str]]:
    config = yaml.safe_load(output[output.index("house:") :])
    return [(d["native"]["host"], d["native"]["port"], d["device_id"]) for d in config["devices"]]


async def test_a_second_run_has_the_first_runs_plugs(tmp_path: Path) -> None:
    state = tmp_path / "sim.json"
    first = _plugs(await served(PROFILES, state=state))
    assert f"addresses kept in {state}" in await served(PROFILES, state=state)
    assert _plugs(await served(PROFILES, state=state)) == first
    saved = json.loads(state.read_text())
    assert [(p["host"], p["port"], p["mac"]) for p in saved["plugs"]] == first

    fresh = _plugs(await served(PROFILES, state=state, fresh=True))
    assert {h for h, _, _ in fresh}.isdisjoint({h for h, _, _ in first})
    assert _plugs(await served(PROFILES, state=state)) == fresh  # --fresh's are kept

    fewer = _plugs(await served(PROFILES[:1], state=state))
    assert fewer == fresh[:1]
    assert _plugs(await served(PROFILES, state=state)) == fresh  # the others were kept too


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "line 1: not JSON"),
        ('{"version": 1, "block": "10.0.0"}', "'block' must look like 127.A.B"),
        ('{"version": 7}', "not an otelpower sim state"),
        (
            '{"version": 1, "block": "127.9.9", "plugs": [{"host": "127.9.9.1", "port": 0,'
            ' "mac": "48:22:54:09:09:01"}]}',
            "plugs[0].port: must be a port number",
        ),
    ],
)
async def test_a_bad_state_file_is_named_and_replaced(
    tmp_path: Path, text: str, reason: str
) -> None:
    state = tmp_path / "sim.json"
    state.write_text(text)
    err = io.StringIO()
    plugs = _plugs(await served(PROFILES[:1], state=state, err=err))
    assert f"warning: {state}" in err.getvalue() and reason in err.getvalue(), err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert sim_state.load(state) is not None  # replaced with this run's
    assert _plugs(await served(PROFILES[:1], state=state)) == plugs


async def test_addresses_in_use_fall_back_to_new_ones(tmp_path: Path, simulator) -> None:
    """A second sim on the same state (say, one still running) gets new addresses."""
    (plug,) = await simulator.start([PlugOptions(PROFILES[0])])
    state = tmp_path / "sim.json"
    saved = [sim_state.SavedPlug(plug.host, plug.port, plug.mac)]
    sim_state.save(state, sim_state.SimState(simulator.block, saved))
    before = state.read_text()
    err = io.StringIO()
    ((host, _, _),) = _plugs(await served(PROFILES[:1], state=state, err=err))
    assert host != plug.host and "in use" in err.getvalue(), err.getvalue()
    assert state.read_text() == before  # the running one's file is left alone


def test_the_default_place_follows_config_out() -> None:
    assert sim_state.default_path(Path("run/demo.yaml")) == Path("run/demo.yaml.sim-state.json")
    assert sim_state.default_path(None, {"XDG_STATE_HOME": "/s"}) == Path("/s/otelpower/sim.json")
