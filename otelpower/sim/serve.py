"""``otelpower sim``: the emulated plugs, their table and config, and an optional Matter mirror."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import state as sim_state
from .profile import load_profile
from .server import EmulatedPlug, PlugOptions, Simulator, builtin_profiles
from .shelly import ShellyDevice, ShellyOptions
from .state import SavedPlug, SimState
from .tpap import TpapOptions


def format_table(plugs: list[EmulatedPlug], shellies: list[ShellyDevice] | None = None) -> str:
    """Plain-text table: host, port, mac, model, transport."""
    rows = [("host", "port", "mac", "model", "transport")]
    rows += [(p.host, str(p.port), p.mac, p.model, p.transport) for p in plugs]
    rows += [(d.host, str(d.port), d.mac, d.model, "Shelly RPC") for d in shellies or []]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


async def serve(
    profiles: list[Path],
    count: int = 0,
    static: bool = False,
    config_out: Path | None = None,
    username: str = "",
    password: str = "",
    *,
    matter: bool = False,
    matter_server: str | None = None,
    tpap_tls: int | None = None,
    state: Path | None = None,
    fresh: bool = False,
    shelly: list[str] | None = None,
    shelly_password: str = "",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> None:
    """Run plugs until cancelled: one per profile, or ``count`` over the built-in ones.

    ``tpap_tls``: serve every SMART profile over TPAP with that ``tls`` variant.

    ``matter``: also a virtual Matter plug mirroring the first single plug (see
    otelpower.sim.matter_mirror), commissioned into ``matter_server`` or a local server.

    ``state``: a file that keeps the plugs' addresses, ports and MACs across runs
    (otelpower.sim.state); ``fresh`` starts with new ones (and remembers those).

    ``shelly``: also one Shelly Gen2+ device per model key (otelpower.sim.shelly.MODELS),
    with ``shelly_password`` as its admin password ("": no authentication). Their addresses
    are not kept in ``state``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if profiles:
        paths = list(profiles)
    else:
        builtin = builtin_profiles()
        n = count or len(builtin)
        paths = [builtin[i % len(builtin)] for i in range(n)]
    options = [
        PlugOptions(profile=p, username=username, password=password, static=static) for p in paths
    ]
    if tpap_tls is not None:
        for opt in options:
            if load_profile(opt.profile).family == "smart":
                opt.transport, opt.tpap = "TPAP", TpapOptions(tls=tpap_tls)
    saved = None if state is None or fresh else _load_state(state, err)
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(Simulator(saved.block if saved else None))
        try:
            await sim.start(_with_saved(options, saved))
        except OSError as exc:
            if saved is None:
                raise
            print(
                f"warning: {state}: its addresses are in use ({exc.strerror}: another"
                " otelpower sim?); starting with new ones, and leaving the file as it is",
                file=err,
            )
            state = saved = None
            sim = await stack.enter_async_context(Simulator())
            await sim.start(options)
        await sim.start_shelly(
            [ShellyOptions(model=m, password=shelly_password) for m in shelly or []]
        )
        data = sim.config_dict()
        print(format_table(sim.plugs, sim.shellies), file=out)
        if state is not None:
            _save_state(state, sim, saved, err)
            print(f"\naddresses kept in {state} for the next run (--fresh: new ones)", file=out)
        if matter:
            data = await _start_matter_mirror(stack, sim, data, matter_server, out)
        text = yaml.safe_dump(data, sort_keys=False)
        if config_out is not None:
            await asyncio.to_thread(config_out.write_text, text)
            print(f"\nconfig written to {config_out}", file=out)
        else:
            print("\n" + text, file=out)
        out.flush()
        await asyncio.Event().wait()


def _load_state(path: Path, err: TextIO) -> SimState | None:
    try:
        return sim_state.load(path)
    except sim_state.StateError as exc:
        print(f"warning: {exc}; starting with new addresses (the file is replaced)", file=err)
        return None


def _with_saved(options: list[PlugOptions], saved: SimState | None) -> list[PlugOptions]:
    """Plug n takes saved entry n (copies: ``options`` stay as given, for a fresh retry)."""
    if saved is None:
        return options
    return [
        replace(opt, host=p.host, port=p.port, mac=p.mac) if p else opt
        for opt, p in zip(
            options, [*saved.plugs, *[None] * (len(options) - len(saved.plugs))], strict=False
        )
    ]


def _save_state(path: Path, sim: Simulator, saved: SimState | None, err: TextIO) -> None:
    plugs = [SavedPlug(p.host, p.port, p.mac) for p in sim.plugs]
    later = saved.plugs[len(plugs) :] if saved else []  # kept for a run with more plugs
    try:
        sim_state.save(path, SimState(sim.block, [*plugs, *later]))
    except OSError as exc:
        print(f"warning: {path}: cannot write it ({exc.strerror}); addresses not kept", file=err)


async def _start_matter_mirror(
    stack: contextlib.AsyncExitStack,
    sim: Simulator,
    data: dict[str, Any],
    server_url: str | None,
    out: TextIO,
) -> dict[str, Any]:

    from .matter_mirror import matter_mirror  # the Matter test bed: only when asked for

    native = next((p for p in sim.plugs if not p.children and p.transport != "TPAP"), None)
    if native is None:
        raise ValueError("--matter needs at least one single (non-strip) plug to mirror")
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="otelpower-matter-")))
    mirror = await stack.enter_async_context(matter_mirror(native, workdir, server_url))
    for device in data["devices"]:
        if device["device_id"] == native.mac:
            device["matter"] = {"node_id": mirror.node_id}
    print(
        f"\nvirtual Matter plug mirrors {native.mac} ({native.model}): node {mirror.node_id}"
        f" on {mirror.url}",
        file=out,
    )
    return {**data, "matter": {"url": mirror.url}}
