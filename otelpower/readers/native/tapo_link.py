"""A plug read through the ``tapo`` client: TPAP (SPAKE2+ login, AES-128-CCM data channel).

A lost session (``SESSION_TIMEOUT``, ``TPAP_SESSION_INVALID``) logs in once more inside the
same fetch; a second loss is the poll's failure. Every other client error goes to the
reader as a ``TapoError`` (classified in errors.py), where a rejected login is a standing fault.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from otelpower.core.model import Reading
from otelpower.core.quantities import POWER
from otelpower.readers.native import tapo_values
from otelpower.readers.native.errors import TapoError
from otelpower.readers.native.links import Clients, Fetched

log = logging.getLogger(__name__)


async def _call[T](awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except Exception as exc:  # the client raises plain Exception with Rust Debug text
        raise TapoError(str(exc)) from None


@dataclass(frozen=True)
class TapoRoute:
    address: str  # "host" or "host:port" (the probe and TPAP then use that port)
    strip: bool | None  # None: the model is not known before login

    @classmethod
    def at(cls, host: str, port: int | None, strip: bool | None = None) -> TapoRoute:
        return cls(f"{host}:{port}" if port else host, strip)

    @classmethod
    def announced(cls, host: str, port: int | None, result: dict[str, Any]) -> TapoRoute:
        """From a discovery reply: a non-standard announced port is used as given."""
        if port is None:
            announced = (result.get("mgt_encrypt_schm") or {}).get("http_port")
            port = announced if isinstance(announced, int) and announced not in (80, 443) else None
        model = str(result.get("device_model") or "")
        return cls.at(host, port, tapo_values.is_strip(model) if model else None)

    def moved(self, host: str) -> TapoRoute:
        port = self.address.rpartition(":")[2] if ":" in self.address else None
        return TapoRoute(f"{host}:{port}" if port else host, self.strip)

    async def open(self, clients: Clients) -> TapoLink:
        client = clients.tapo()
        login = client.p304 if self.strip else client.p110
        return TapoLink(await _call(login(self.address)), self, clients)


class TapoLink:
    kind = "TPAP"

    def __init__(self, handler: Any, route: TapoRoute, clients: Clients) -> None:
        self._handler = handler
        self._route = route
        self._clients = clients
        self._children: dict[str, Any] = {}  # outlet device_id -> child handler
        self._typed_usage = True  # False once get_energy_usage's strict result failed here

    def route(self) -> TapoRoute:
        return self._route

    def endpoint(self) -> tuple[str, int] | None:
        return None  # the client's own errors already tell a refused socket

    async def close(self) -> None:
        self._handler = None  # the client keeps no socket open between requests
        self._children.clear()

    async def fetch(self) -> Fetched:
        try:
            return await self._fetch()
        except TapoError as exc:
            if exc.kind != "session":
                raise
        log.debug("%s: session lost; logging in again", self._route.address)
        await _call(self._handler.refresh_session())
        try:
            return await self._fetch()
        except TapoError as exc:
            if exc.kind == "session":
                raise TapoError("session lost again right after a new login") from None
            raise

    async def _fetch(self) -> Fetched:
        info = await _call(self._handler.get_device_info_json())
        model = str(info.get("model") or "")
        if self._route.strip is None:
            self._route = TapoRoute(self._route.address, tapo_values.is_strip(model))
            if self._route.strip:  # logged in as a plug: log in once more as a strip
                self._handler = (await self._route.open(self._clients))._handler
        if self._route.strip:
            readings = await self._strip(info)
        else:
            readings = tapo_values.plug_reading(info, await self._energy(self._handler))
        return Fetched(tapo_values.device_info(info), readings, tapo_values.device_mac(info))

    async def _strip(self, info: dict[str, Any]) -> tuple[Reading, ...]:
        listed = await _call(self._handler.get_child_device_list_json())
        children = tapo_values.outlets(listed)
        values: dict[str, dict[str, Any]] = {}
        for child in children:
            device_id = str(child.get("device_id"))
            handler = self._children.get(device_id)
            if handler is None:
                handler = await _call(self._handler.plug_unchecked(device_id))
                self._children[device_id] = handler
            values[device_id] = await self._energy(handler)
        return tapo_values.strip_readings(info, children, values)

    async def _energy(self, handler: Any) -> dict[str, Any]:
        """get_energy_usage (mW, today, month); where the client cannot parse it (strip
        outlets leave out ``local_time``), get_current_power (whole watts) alone."""
        if self._typed_usage:
            try:
                usage = await _call(handler.get_energy_usage())
            except TapoError as exc:
                if exc.kind == "unknown_method":
                    return {}
                if exc.kind != "reply":
                    raise
                log.debug("%s: energy usage not parsed (%s)", self._route.address, exc)
                self._typed_usage = False
            else:
                values = tapo_values.energy(usage.to_dict())
                if values.get(POWER.key) is not None:
                    return values
                return {**values, **tapo_values.energy(None, await self._power(handler))}
        return tapo_values.energy(None, await self._power(handler))

    async def _power(self, handler: Any) -> Any:
        try:
            return (await _call(handler.get_current_power())).to_dict().get("current_power")
        except TapoError as exc:
            if exc.kind == "unknown_method":
                return None
            raise
