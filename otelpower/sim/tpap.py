"""A plug on TPAP firmware: announces ``encrypt_type: TPAP`` and speaks none of KLAP/AES.

python-kasa 0.12 refuses such a plug at discovery (UnsupportedDeviceError); the HTTP side
answers every older-transport request with 404, as the new firmware does.
"""

from __future__ import annotations

from .faults import PlugContext
from .httpbase import HttpListener


class TpapServer:
    def __init__(self, ctx: PlugContext) -> None:
        self._http = HttpListener(ctx, [])

    async def start(self, host: str, port: int) -> int:
        return await self._http.start(host, port)

    async def stop(self) -> None:
        await self._http.stop()

    def drop_sessions(self) -> None:
        return None
