"""A plug read through python-kasa (Kasa IOT XOR / KLAP v1, Tapo KLAP v2 and AES)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace

from kasa import Device, DeviceEncryptionType, DeviceFamily
from kasa.device_factory import _connect as kasa_connect
from kasa.deviceconfig import DeviceConfig as KasaDeviceConfig
from kasa.deviceconfig import DeviceConnectionParameters
from kasa.exceptions import AuthenticationError
from kasa.protocols import IotProtocol, SmartProtocol

from otelpower.readers.native.bounded import (
    AccountKlap,
    AccountKlapV2,
    BoundedXorTransport,
    http_session,
    refusals,
)
from otelpower.readers.native.errors import Untrusted
from otelpower.readers.native.links import Clients, Fetched, Trust, transport_kind
from otelpower.readers.native.values import device_info, device_mac, device_readings

log = logging.getLogger(__name__)

#: polls a plug is read one query per request after python-kasa fell back to that (a batch
#: answered JSON_DECODE_FAIL or late) before a new Device batches again: python-kasa keeps the
#: fallback for the life of the Device (7 requests a poll over KLAP instead of 1)
BATCH_AGAIN_AFTER = 3
#: queries per multipleRequest (python-kasa's DeviceConfig.batch_size; its default is 5): a
#: P110's update is 7 module queries, two requests at 5, one at this. python-kasa falls back
#: to one query per request by itself when a plug rejects a batch (JSON decode error, timeout)
BATCH_SIZE = 16


#: what try_transports tries without a discovery reply, in order: Tapo KLAP v2, Kasa
#: KLAP v1, Kasa XOR, Tapo AES (the last only where AES logins are allowed). python-kasa's
#: own try_connect_all also tries AES (the password to whatever answers) and cameras.
_CANDIDATES = (
    (DeviceFamily.SmartTapoPlug, DeviceEncryptionType.Klap, 2),
    (DeviceFamily.IotSmartPlugSwitch, DeviceEncryptionType.Klap, None),
    (DeviceFamily.IotSmartPlugSwitch, DeviceEncryptionType.Xor, None),
    (DeviceFamily.SmartTapoPlug, DeviceEncryptionType.Aes, None),
)


async def connect(config: KasaDeviceConfig, keep_alive: bool = True) -> KasaLink:
    """Log in and update once, every poll's queries batched in one request, every reply
    read with a size limit (bounded.py). Each plug has its own HTTP session: python-kasa
    clears a session's cookie jar on every request, so a shared one loses concurrent KLAP
    logins' cookies."""
    session = http_session(keep_alive)
    config = replace(config, batch_size=BATCH_SIZE, http_client=session)
    try:
        with refusals():
            protocol = _protocol(config)
            if protocol is None:
                dev = await Device.connect(config=config)
            else:
                try:
                    dev = await kasa_connect(config, protocol)
                except BaseException:
                    await protocol.close()
                    raise
    except BaseException:
        await session.close()
        raise
    return KasaLink(dev, updated=True, keep_alive=keep_alive)


def _protocol(config: KasaDeviceConfig) -> IotProtocol | SmartProtocol | None:
    """python-kasa's protocol for XOR and KLAP with our transports (bounded XOR replies,
    KLAP that accepts only the account's proof); None: python-kasa's own (AES)."""
    conn = config.connection_type
    iot = conn.device_family.value.startswith("IOT.")
    if conn.encryption_type is DeviceEncryptionType.Xor:
        return IotProtocol(transport=BoundedXorTransport(config=config))
    if conn.encryption_type is not DeviceEncryptionType.Klap:
        return None
    if iot:
        v2 = (conn.login_version or 0) >= 2
        return IotProtocol(transport=(AccountKlapV2 if v2 else AccountKlap)(config=config))
    return SmartProtocol(transport=AccountKlapV2(config=config))


async def try_transports(
    host: str, port: int | None, clients: Clients, trust: Trust
) -> KasaLink | None:
    """Log in over each python-kasa transport in turn (a plug whose discovery reply did not
    come, or one pinned to a transport); None when none answered (a pinned plug: the first
    failure is raised). The account goes only where ``trust`` allows."""
    first: Exception | None = None  # a pinned plug's failure is the poll's
    for family, encryption, login in _CANDIDATES:
        kind = encryption.value.upper()
        if trust.pin is not None and kind != trust.pin:
            continue
        try:
            trust.check(kind, clients)
        except Untrusted:
            continue
        config = KasaDeviceConfig(
            host=host,
            port_override=port,
            credentials=clients.kasa,
            timeout=clients.request_timeout,
            connection_type=DeviceConnectionParameters(family, encryption, login),
        )
        try:
            return await connect(config, clients.keep_alive)
        except AuthenticationError:
            raise  # it is that transport, and the login was rejected
        except Exception as exc:  # not this transport (refused, 404, no answer): the next
            first = first or exc
    if trust.pin is not None and first is not None:
        raise first
    return None


async def disconnect(dev: Device) -> None:
    """Close the device's connection; a plug that does not answer is given up on after 2 s."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await dev.disconnect()


class KasaLink:
    """One python-kasa ``Device``; updated on every fetch."""

    def __init__(self, dev: Device, *, updated: bool = False, keep_alive: bool = True) -> None:
        self.dev = dev
        self._keep_alive = keep_alive
        self.kind = transport_kind(dev.config.connection_type)
        self._updated = updated  # Device.connect updates once already
        self._renew = False
        self._single = 0  # polls since python-kasa fell back to one query per request
        self._said = False  # that fallback was logged (once per plug)

    async def fetch(self) -> Fetched:
        with refusals():
            return await self._fetch()

    async def _fetch(self) -> Fetched:
        if self._renew:
            # python-kasa backs off a failed module and disables it after 10 errors: a fresh
            # Device reads it again as soon as the plug recovers
            await self.close()
            self.dev = (await connect(self.dev.config, self._keep_alive)).dev
            self._renew = False
            self._single = 0
        elif not self._updated:
            await self.dev.update()
        self._updated = False
        readings = device_readings(self.dev)
        self._renew = any(d.reason == "unreadable" for r in readings for d in r.dropped)
        self._renew |= self._batch_again()
        if not self._keep_alive and self.kind == "XOR":  # python-kasa keeps it open otherwise
            await disconnect(self.dev)
        return Fetched(device_info(self.dev), readings, device_mac(self.dev))

    def _batch_again(self) -> bool:
        """True when python-kasa has sent one query per request for BATCH_AGAIN_AFTER polls
        (it read its own private batch size: python-kasa has no public one)."""
        single = getattr(self.dev.protocol, "_multi_request_batch_size", BATCH_SIZE) == 1
        if not single:
            self._single = 0
            return False
        if not self._said:
            self._said = True
            log.info(
                "%s: a batched request was refused or late; one query per request for %d"
                " polls, then batched again",
                self.dev.host,
                BATCH_AGAIN_AFTER,
            )
        self._single += 1
        return self._single >= BATCH_AGAIN_AFTER

    async def close(self) -> None:
        try:
            await disconnect(self.dev)
        finally:
            if (session := self.dev.config.http_client) is not None:
                await session.close()

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

    def moved(self, host: str) -> KasaRoute:
        return replace(self, host=host)

    async def open(self, clients: Clients) -> KasaLink:
        config = KasaDeviceConfig(
            host=self.host,
            port_override=self.port,
            credentials=clients.kasa,
            timeout=clients.request_timeout,
            connection_type=self.connection,
        )
        return await connect(config, clients.keep_alive)
