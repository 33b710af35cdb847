"""A plug read through python-kasa (Kasa IOT XOR / KLAP v1, Tapo KLAP v2 and AES)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace

from kasa import Device
from kasa.deviceconfig import DeviceConfig as KasaDeviceConfig
from kasa.deviceconfig import DeviceConnectionParameters

from otelpower.readers.native.links import Clients, Fetched
from otelpower.readers.native.values import device_info, device_mac, device_readings

#: queries per multipleRequest (python-kasa's DeviceConfig.batch_size; its default is 5): a
#: P110's update is 7 module queries, two requests at 5, one at this. python-kasa falls back
#: to one query per request by itself when a plug rejects a batch (JSON decode error, timeout)
BATCH_SIZE = 16


async def connect(config: KasaDeviceConfig) -> KasaLink:
    """Log in and update once, every poll's queries batched in one request. Each plug keeps
    python-kasa's own HTTP session: python-kasa clears a session's cookie jar on every
    request, so a session shared by plugs loses concurrent KLAP logins' cookies."""
    config = replace(config, batch_size=BATCH_SIZE)
    return KasaLink(await Device.connect(config=config), updated=True)


async def disconnect(dev: Device) -> None:
    """Close the device's connection; a plug that does not answer is given up on after 2 s."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await dev.disconnect()


class KasaLink:
    """One python-kasa ``Device``; updated on every fetch."""

    def __init__(self, dev: Device, *, updated: bool = False) -> None:
        self.dev = dev
        self._updated = updated  # Device.connect updates once already
        self._renew = False

    async def fetch(self) -> Fetched:
        if self._renew:
            # python-kasa backs off a failed module and disables it after 10 errors: a fresh
            # Device reads it again as soon as the plug recovers
            await self.close()
            self.dev = (await connect(self.dev.config)).dev
            self._renew = False
        elif not self._updated:
            await self.dev.update()
        self._updated = False
        readings = device_readings(self.dev)
        self._renew = any(d.reason == "unreadable" for r in readings for d in r.dropped)
        return Fetched(device_info(self.dev), readings, device_mac(self.dev))

    async def close(self) -> None:
        await disconnect(self.dev)

    def endpoint(self) -> tuple[str, int] | None:
        return self.dev.host, self.dev.port

    def route(self) -> KasaRoute:
        config = self.dev.config
        return KasaRoute(config.host, config.port_override, config.connection_type)


@dataclass(frozen=True)
class KasaRoute:
    host: str
    port: int | None
    connection: DeviceConnectionParameters

    async def open(self, clients: Clients) -> KasaLink:
        config = KasaDeviceConfig(
            host=self.host,
            port_override=self.port,
            credentials=clients.kasa,
            timeout=clients.request_timeout,
            connection_type=self.connection,
        )
        return await connect(config)
