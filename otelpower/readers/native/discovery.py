"""Find plugs by UDP discovery (python-kasa's ``Discover``) and tell them apart by MAC."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kasa import Credentials, Discover
from kasa.exceptions import KasaException, UnsupportedDeviceError

from otelpower.config import normalize_mac

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundPlug:
    """What one discovery reply says about a plug (no connection made)."""

    mac: str
    ip: str
    model: str
    transport: str
    supported: bool = True


def _mac(value: Any) -> str | None:
    try:
        return normalize_mac(str(value)) if value else None
    except ValueError:
        return None


def tpap_supported(result: dict[str, Any]) -> bool:
    """A TPAP variant the ``tapo`` client speaks: TLS off or self-signed (``tls`` 0/1), a
    SPAKE2+ password login (``pake`` has 2, not the default passcode 0)."""
    tpap = result.get("tpap")
    if not isinstance(tpap, dict):
        return True  # announced without details (python-kasa drops them): try it
    pake = tpap.get("pake") or [2]
    return tpap.get("tls", 0) in (0, 1) and 2 in pake and 0 not in pake


def parse_reply(raw: dict[str, Any]) -> FoundPlug | None:
    """Read MAC, IP, model and transport from a raw reply (legacy 9999 or 20002/20004)."""
    info = raw.get("discovery_response") or {}
    ip = str((raw.get("meta") or {}).get("ip", ""))
    if "result" in info:  # 20002/20004: encrypted transports
        result = info["result"] or {}
        schm = result.get("mgt_encrypt_schm") or {}
        enc = str(schm.get("encrypt_type") or "?")
        mac = _mac(result.get("mac"))
        model = str(result.get("device_model", "?"))
        supported = enc in ("KLAP", "AES") or (enc == "TPAP" and tpap_supported(result))
        return FoundPlug(mac, ip, model, enc, supported) if mac else None
    sysinfo = (info.get("system") or {}).get("get_sysinfo") or {}
    mac = _mac(sysinfo.get("mac") or sysinfo.get("mic_mac"))
    return FoundPlug(mac, ip, str(sysinfo.get("model", "?")), "XOR") if mac else None


async def probe(
    targets: Iterable[str],
    *,
    wait_s: float = 3.0,
    credentials: Credentials | None = None,
) -> dict[str, FoundPlug]:
    """Send discovery to every target at once; MAC -> what answered. Never raises."""
    found: dict[str, FoundPlug] = {}

    def on_raw(raw: dict[str, Any]) -> None:
        plug = parse_reply(raw)
        if plug is not None:
            found.setdefault(plug.mac, plug)

    async def one(target: str) -> None:
        try:
            devices = await Discover.discover(
                target=target,
                discovery_timeout=max(1, round(wait_s)),
                on_discovered_raw=on_raw,
                on_unsupported=_ignore_unsupported,
                credentials=credentials,
            )
        except (OSError, KasaException) as exc:
            log.debug("discovery to %s failed: %s", target, exc)
            return
        for dev in devices.values():  # we only wanted the replies
            await dev.disconnect()

    await asyncio.gather(*(one(t) for t in dict.fromkeys(targets)))
    return found


async def _ignore_unsupported(_: UnsupportedDeviceError) -> None:
    return None
