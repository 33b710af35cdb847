"""Fault modes and the per-plug context the transports consult before every reply."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Protocol

from .device import DeviceModel


class Fault(StrEnum):
    """Misbehaviour injected into one emulated plug."""

    NONE = "none"
    OFFLINE = "offline"  # all sockets closed: connection refused, no discovery reply
    SLOW = "slow"  # answers only after ``slow_s`` seconds
    GARBAGE = "garbage"  # answers 200 / framed replies with garbage bytes


class PlugContext(Protocol):
    """What a transport needs from its plug."""

    device: DeviceModel
    fault: Fault
    username: str
    password: str

    def reply_delay(self) -> float: ...


async def before_reply(ctx: PlugContext) -> bool:
    """Sleep the configured delay; False when the plug went offline meanwhile."""
    delay = ctx.reply_delay()
    if delay > 0:
        await asyncio.sleep(delay)
    return ctx.fault is not Fault.OFFLINE


GARBAGE = b"\x8a\x13<html>garbage\x00\xff\xfe{not json"
