"""Shelly reader: polls Shelly Gen2+ devices with aioshelly (the client Home Assistant uses).

The poll loop is the framework's (readers/polling.py); this module says how to log in to a
device (aioshelly's ``RpcDevice`` over its WebSocket RPC: ``Shelly.GetDeviceInfo``, then
digest authentication when the device has a password, ``Shelly.GetConfig`` and
``Shelly.GetStatus``), how to read it (``Shelly.GetStatus`` on the open connection each
poll) and what its failures mean. aioshelly checks that the device's MAC is the config's
``device_id`` before anything else is read, so an address that another device answers at is
a ``wrong device`` error, never another device's readings.

Polled rather than pushed: a device also sends ``NotifyStatus`` on the connection when a
value changes, but a poll every ``poll.interval`` bounds both the load and the age of a
value the same way as for every other reader, and a device that drops off Wi-Fi without
closing the connection goes ``up`` 0 at its next poll's deadline.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aioshelly.common import ConnectionOptions
from aioshelly.exceptions import (
    DeviceConnectionError,
    InvalidAuthError,
    MacAddressMismatchError,
    ShellyError,
)
from aioshelly.rpc_device import RpcDevice

from otelpower.config import Config
from otelpower.core.model import DeviceStatus
from otelpower.readers import failures
from otelpower.readers.base import ReaderSpec
from otelpower.readers.polling import Fetched, Polled, PollingReader
from otelpower.readers.shelly import settings, values

log = logging.getLogger(__name__)


class ReplyNotUnderstood(Exception):
    """A reply of the wrong shape."""


class _Bounded(logging.Filter):
    """aioshelly logs a frame it cannot parse whole, at ERROR (up to aiohttp's 4 MiB): cut."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if len(text) > 300:
            record.msg, record.args = text[:300] + " …", ()
        return True


logging.getLogger("aioshelly.rpc_device.wsrpc").addFilter(_Bounded())


class ShellyLink:
    """One device's logged-in RPC connection (and the HTTP session it runs on)."""

    def __init__(self, http: aiohttp.ClientSession, device: RpcDevice, host: str, port: int):
        self._http, self._device = http, device
        self._endpoint = (host, port)

    async def fetch(self) -> Fetched:
        if not self._device.connected:  # the device closed it (reboot, Wi-Fi roam): log in
            await self._device.initialize()  # again, aioshelly checking the MAC again
        # one call, parsed fresh each poll (aioshelly's poll() merges replies into the status
        # it keeps, and asks for BLU components too: a device could grow both without bound)
        status = await self._device.call_rpc("Shelly.GetStatus")
        if not isinstance(status, dict):
            raise ReplyNotUnderstood("Shelly.GetStatus did not answer an object")
        info = values.device_info(self._device.shelly, _name(self._device))
        mac = str(self._device.shelly.get("mac") or "")
        return Fetched(info, values.readings(status), _mac(mac) if mac else None)

    async def close(self) -> None:
        try:
            await self._device.shutdown()
        except Exception as exc:  # aioshelly re-raises what killed its receive task (a bad
            log.debug("closing %s:%s: %s", *self._endpoint, exc)  # frame): closed anyway
        finally:
            await self._http.close()

    def endpoint(self) -> tuple[str, int]:
        return self._endpoint


def _mac(text: str) -> str | None:
    """``AABBCCDDEEFF`` (as Shelly sends it) -> ``aa:bb:cc:dd:ee:ff``; None when malformed."""
    digits = text.replace(":", "").lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _name(device: RpcDevice) -> str | None:
    try:
        name = device.name
    except (KeyError, TypeError, AttributeError, ShellyError):
        return None
    return name if isinstance(name, str) and name.strip() else None


class ShellyReader(PollingReader[Polled]):
    def __init__(self, config: Config, spec: ReaderSpec, **kw: Any) -> None:
        super().__init__(config, spec, **kw)
        self._password = settings.auth(config).password
        for device in config.owned_devices(spec):
            if settings.target(device) is None:
                continue  # a Shelly device found some other way: not yet (no host)
            polled = Polled(device)
            self.add(polled)
            self.publish_pending(polled)

    async def open(self, device: Polled) -> ShellyLink:
        target = settings.target(device.cfg)
        assert target is not None
        options = ConnectionOptions(
            target.host,
            settings.USERNAME if self._password else None,
            self._password or None,
            device_mac=device.device_id.replace(":", "").upper(),
            port=target.port,
        )
        # no timeout of its own: the poll's deadline bounds it (two timers firing together
        # would make a silent device look offline)
        http = aiohttp.ClientSession()
        try:
            rpc = await RpcDevice.create(http, None, options)
            try:
                await rpc.initialize()  # a password it needs and lacks: InvalidAuthError
            except BaseException:
                await rpc.shutdown()
                raise
        except BaseException:
            await http.close()
            raise
        return ShellyLink(http, rpc, target.host, target.port)

    def classify(self, exc: BaseException) -> tuple[DeviceStatus, str]:
        timeout = self.config.poll_timeout
        if isinstance(exc, InvalidAuthError):
            if not self._password:
                return (
                    DeviceStatus.AUTH_FAILED,
                    f"the device has a password: set {settings.PASSWORD_ENV}",
                )
            return DeviceStatus.AUTH_FAILED, "authentication failed (password rejected)"
        if isinstance(exc, MacAddressMismatchError):
            return DeviceStatus.ERROR, f"wrong device: {failures.short(exc)}"
        if failures.in_chain(exc, TimeoutError) is not None:  # ours, or aioshelly's own timers
            return DeviceStatus.TIMEOUT, f"no answer within {timeout:g}s"
        if isinstance(exc, DeviceConnectionError | aiohttp.ClientError):
            if (words := failures.socket_detail(exc)) is not None:
                return DeviceStatus.OFFLINE, words
            return DeviceStatus.OFFLINE, "connection lost"
        if isinstance(exc, ShellyError | KeyError | AttributeError | TypeError):
            return DeviceStatus.ERROR, f"reply not understood: {failures.short(exc)}"
        return failures.common(exc, timeout)

    def describe(self, device: Polled) -> str:
        target = settings.target(device.cfg)
        where = f"{target.host}:{target.port}" if target else "no address"
        return f"{device.name} ({device.device_id}, {where})"

    def up_note(self, device: Polled) -> str:
        return f"{device.info.get('model', '?')}, firmware {device.info.get('firmware', '?')}"
