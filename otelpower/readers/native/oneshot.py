"""One-shot native operations behind ``otelpower read`` and ``otelpower discover``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from otelpower.config.yamlsource import PLACEHOLDER
from otelpower.core.model import Reading
from otelpower.core.quantities import (
    CURRENT,
    ENERGY_MONTH,
    ENERGY_TODAY,
    ENERGY_TOTAL,
    POWER,
    RELAY_ON,
    VOLTAGE,
)
from otelpower.readers.native import discovery as kasa_discovery
from otelpower.readers.native.links import Clients, Fetched, Link
from otelpower.readers.native.opening import open_link

_JSON_KEYS = {
    "power_w": POWER.key,
    "voltage_v": VOLTAGE.key,
    "current_a": CURRENT.key,
    "energy_today_kwh": ENERGY_TODAY.key,
    "energy_month_kwh": ENERGY_MONTH.key,
    "energy_total_kwh": ENERGY_TOTAL.key,
}


def _reading_json(reading: Reading | None) -> dict[str, Any]:
    values = reading.values if reading else {}
    out: dict[str, Any] = {name: values.get(key) for name, key in _JSON_KEYS.items()}
    relay = values.get(RELAY_ON.key)
    out["relay_on"] = None if relay is None else bool(relay)
    return out


def summarize(fetched: Fetched) -> dict[str, Any]:
    """The ``read --json`` object: readings (null where absent), model, mac; outlets for strips."""
    readings = fetched.readings
    main = readings[0]
    outlets = [r for r in readings if r.outlet is not None]
    info = fetched.info
    result: dict[str, Any] = {
        **_reading_json(None if outlets else main),
        "model": info["model"] or None,
        "alias": info.get("alias") or None,
        "mac": fetched.mac,
        "firmware": info["firmware"] or None,
        "transport": info["transport"],
    }
    if outlets:
        per_outlet = [_reading_json(r) for r in outlets]
        power = [o["power_w"] for o in per_outlet if o["power_w"] is not None]
        result["power_w"] = round(sum(power), 3) if power else None
        result["relay_on"] = any(o["relay_on"] for o in per_outlet)
        result["outlets"] = per_outlet
    return result


async def _fetch_once(host: str, port: int | None, clients: Clients) -> Fetched:
    link: Link | None = None
    try:
        link = await open_link(host, port, clients)
        return await link.fetch()
    finally:
        if link is not None:
            await link.close()


async def read_plug(
    host: str, port: int | None, clients: Clients, deadline_s: float
) -> dict[str, Any]:
    """Learn the transport, log in and read one plug once; raises on any failure."""
    async with asyncio.timeout(deadline_s):
        return summarize(await _fetch_once(host, port, clients))


#: devices ``discover`` logs in to at once, and at most (a flood is listed, not logged in to)
DETAILS_AT_ONCE = 16
DETAILS_MAX = 256


def _row(plug: kasa_discovery.FoundPlug) -> dict[str, Any]:
    return {
        "mac": plug.mac,
        "ip": plug.ip,
        "model": plug.model,
        "alias": None,
        "firmware": None,
        "transport": plug.transport if plug.supported else f"{plug.transport} (unsupported)",
        "energy": "?",
    }


async def _details(plug: kasa_discovery.FoundPlug, clients: Clients) -> dict[str, Any]:
    row = _row(plug)
    if not plug.supported:
        return row
    try:
        async with asyncio.timeout(10):
            fetched = await _fetch_once(plug.ip, None, clients)
        info = fetched.info
        has_energy = any(POWER.key in r.values for r in fetched.readings)
        row.update(
            model=info["model"] or plug.model,
            alias=info.get("alias") or None,
            firmware=info["firmware"] or None,
            transport=info["transport"],
            energy="yes" if has_energy else "no",
        )
    except Exception as exc:
        from otelpower.readers.native.errors import classify

        row["energy"] = f"? ({classify(exc, 10)[0]})"
    return row


async def discover_plugs(
    targets: list[str], wait_s: float, clients: Clients
) -> list[dict[str, Any]]:
    found = await kasa_discovery.probe(targets, wait_s=wait_s)  # no account in a probe
    slots = asyncio.Semaphore(DETAILS_AT_ONCE)

    async def details(plug: kasa_discovery.FoundPlug) -> dict[str, Any]:
        async with slots:
            return await _details(plug, clients)

    plugs = sorted(found.values(), key=lambda p: p.mac)
    rows = await asyncio.gather(*(details(p) for p in plugs[:DETAILS_MAX]))
    # past DETAILS_MAX (a flood of replies), the rest as their replies said, not logged in to
    rest = [{**_row(p), "energy": "? (not read: too many answered)"} for p in plugs[DETAILS_MAX:]]
    return [*rows, *rest]


def yaml_snippet(rows: list[dict[str, Any]]) -> str:
    """``devices:`` entries; ``device`` is the plug's alias where it told us (JSON quoting is
    valid YAML, whatever the alias holds)."""
    lines = []
    for r in rows:
        fallback = f"{r['model'].split('(')[0].lower() or 'plug'}-{r['mac'][-5:].replace(':', '')}"
        name = json.dumps(r.get("alias") or fallback, ensure_ascii=False)
        lines += [
            f'  - device_id: "{r["mac"]}"',
            f"    room: {PLACEHOLDER}",
            f"    shelf: {PLACEHOLDER}",
            f"    device: {name}",
            f"    native: {{host: {r['ip']}}}",
        ]
    return "\n".join(lines)
