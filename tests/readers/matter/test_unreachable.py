"""A Matter server that cannot be reached: one clear log line and self-metric, no crash."""

from __future__ import annotations

import asyncio
import logging

from harness.ports import free_port
from harness.wait import wait_for
from otelpower.core.model import DeviceStatus
from otelpower.readers.matter.reader import MatterReader, redact_url
from tests.conftest import make_config


async def test_unreachable_server_is_reported_once(caplog) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"  # nothing listens there
    config = make_config(
        {
            "house": "h",
            "matter": {"url": url},
            "devices": [
                {
                    "device_id": "48:22:54:00:00:01",
                    "room": "r",
                    "shelf": "s",
                    "device": "d",
                    "matter": {"node_id": 5},
                }
            ],
        },
        poll={"backoff_max": 1},
    )
    caplog.set_level(logging.WARNING, logger="otelpower")
    reader = MatterReader(config)
    task = asyncio.create_task(reader.run())
    try:
        await wait_for(lambda: reader.store.get("48:22:54:00:00:01").status is DeviceStatus.OFFLINE)
        await asyncio.sleep(2.5)  # a few reconnect attempts
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not reader.connected
    snap = reader.store.get("48:22:54:00:00:01")
    assert not snap.up and "Matter server unreachable" in snap.detail
    lines = [r.getMessage() for r in caplog.records if "Matter server" in r.getMessage()]
    assert len(lines) == 1, lines  # no flood while it stays down


def test_url_credentials_never_shown() -> None:
    assert redact_url("ws://user:secret@host:5580/ws") == "ws://host:5580/ws"
