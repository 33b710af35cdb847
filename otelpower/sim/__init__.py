"""Loopback emulator of TP-Link Kasa/Tapo plugs (KLAP v1/v2, AES, XOR, TPAP) and Shelly Gen2+
devices (RPC over HTTP and WebSocket) for the readers' unmodified client libraries, and a
virtual Matter plug (matter.js) mirroring one of them.

The names below are imported on first use, so ``import otelpower.sim.command`` (the CLI) needs
none of the emulator's libraries.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EmulatedPlug": ".server",
    "Fault": ".faults",
    "PlugClock": ".clock",
    "PlugOptions": ".server",
    "Simulator": ".server",
    "TpapOptions": ".tpap",
    "builtin_profiles": ".server",
    "Profile": ".profile",
    "ShellyDevice": ".shelly",
    "ShellyFault": ".shelly",
    "ShellyOptions": ".shelly",
    "load_profile": ".profile",
    "serve": ".serve",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
