"""Fault modes and the per-plug context the transports consult before every reply."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Protocol

from .device import DeviceModel


class Fault(StrEnum):
    """Misbehaviour injected into one emulated plug."""

    NONE = "none"
    OFFLINE = "offline"  # all sockets closed: connection refused, no discovery reply
    SLOW = "slow"  # answers only after ``slow_s`` seconds
    GARBAGE = "garbage"  # answers 200 / framed replies with garbage bytes
    MALFORMED = "malformed"  # well-encrypted replies that are not JSON
    TRUNCATED = "truncated"  # every reply body cut in half
    OVERSIZED = "oversized"  # valid replies padded to OVERSIZE_BYTES
    WRONG_KEY = "wrong_key"  # replies encrypted with a key the client never agreed


class PlugContext(Protocol):
    """What a transport needs from its plug."""

    device: DeviceModel
    fault: Fault
    username: str
    password: str
    logins: int  # login attempts received (KLAP handshake1, AES login_device, TPAP pake_share)
    oversize_bytes: int  # the padding Fault.OVERSIZED adds to a reply

    def reply_delay(self) -> float: ...


async def before_reply(ctx: PlugContext) -> bool:
    """Sleep the configured delay; False when the plug went offline meanwhile."""
    delay = ctx.reply_delay()
    if delay > 0:
        await asyncio.sleep(delay)
    return ctx.fault is not Fault.OFFLINE


def plaintext(ctx: PlugContext, reply: dict) -> bytes:
    """The reply as the transport encrypts it, spoiled as the fault asks."""
    if ctx.fault is Fault.MALFORMED:
        return MALFORMED
    if ctx.fault is Fault.OVERSIZED:
        reply = {**reply, "padding": "x" * ctx.oversize_bytes}
    return json.dumps(reply).encode()


def cut(body: bytes, fault: Fault) -> bytes:
    """The reply body as sent: half of it with ``TRUNCATED``."""
    return body[: len(body) // 2] if fault is Fault.TRUNCATED else body


OVERSIZE_BYTES = 4 << 20
MALFORMED = b'{"error_code": 0, "result": {"device_on": tru'
GARBAGE = b"\x8a\x13<html>garbage\x00\xff\xfe{not json"
