"""Find plugs by UDP discovery (python-kasa's ``Discover``) and tell them apart by MAC."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kasa import Discover
from kasa.exceptions import UnsupportedDeviceError

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


#: discovery probes in flight at once (a socket each): descriptors stay bounded however
#: many addresses a round probes
FAN_OUT = 64


async def probe(targets: Iterable[str], *, wait_s: float = 3.0) -> dict[str, FoundPlug]:
    """Send discovery to every target, FAN_OUT at a time; MAC -> what answered first.
    Never sends the account (a reply alone proves nothing) and never raises. A MAC that
    answers from two addresses is said once."""
    found: dict[str, FoundPlug] = {}
    slots = asyncio.Semaphore(FAN_OUT)

    def on_raw(raw: dict[str, Any]) -> None:
        plug = parse_reply(raw)
        if plug is None:
            return
        first = found.setdefault(plug.mac, plug)
        if first.ip != plug.ip:
            _twice(plug.mac, first.ip, plug.ip)

    async def one(target: str) -> None:
        async with slots:
            try:
                devices = await Discover.discover(
                    target=target,
                    discovery_timeout=max(1, round(wait_s)),
                    on_discovered_raw=on_raw,
                    on_unsupported=_ignore_unsupported,
                )
            except Exception as exc:  # a probe that fails never ends the reader
                log.debug("discovery to %s failed: %s", target, exc)
                return
            for dev in devices.values():  # we only wanted the replies
                await dev.disconnect()

    await asyncio.gather(*(one(t) for t in await addresses(targets)))
    return found


_TWICE_LOGGED: set[str] = set()


def _twice(mac: str, first: str, second: str) -> None:
    if mac in _TWICE_LOGGED or len(_TWICE_LOGGED) >= 4096:
        return
    _TWICE_LOGGED.add(mac)
    log.warning(
        "discovery: %s answers from %s and from %s: two devices claim one MAC"
        " (the first is used; a plug whose host is in the config is never moved)",
        mac,
        first,
        second,
    )


_UNRESOLVED_LOGGED: set[str] = set()


async def addresses(targets: Iterable[str]) -> list[str]:
    """The IPv4 addresses to probe: addresses as given, host names resolved now (each round,
    so a name that moves is followed); a name that does not resolve is skipped, said once."""
    loop = asyncio.get_running_loop()
    out: list[str] = []
    for target in dict.fromkeys(t.strip() for t in targets if t.strip()):
        try:
            ipaddress.IPv4Address(target)
        except ValueError:
            pass
        else:
            out.append(target)
            continue
        try:
            infos = await loop.getaddrinfo(target, None, family=socket.AF_INET)
        except (OSError, UnicodeError) as exc:
            if target not in _UNRESOLVED_LOGGED:
                _UNRESOLVED_LOGGED.add(target)
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                log.warning("discovery target %s does not resolve (%s): skipped", target, reason)
            continue
        _UNRESOLVED_LOGGED.discard(target)
        out += [str(info[4][0]) for info in infos]
    return list(dict.fromkeys(out))


async def _ignore_unsupported(_: UnsupportedDeviceError) -> None:
    return None
