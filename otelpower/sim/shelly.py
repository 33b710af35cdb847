"""Emulated Shelly Gen2+ devices: the RPC protocol over HTTP and WebSocket on loopback.

Built from Shelly's public API documentation (shelly-api-docs.shelly.cloud/gen2: General/
RPCProtocol, General/Authentication, Components/Switch, Sys, WiFi, Shelly service), not from
what a client expects. Served on one port per device:

* ``GET /shelly``: identification, never behind authentication;
* ``GET /rpc/<Method>?k=v``: one call, params from the query (values parsed as JSON);
* ``POST /rpc``: a JSON-RPC 2.0 request frame ``{"id", "src", "method", "params"}``;
* ``GET /rpc`` with a WebSocket upgrade: request/response frames, and notifications
  (``NotifyStatus`` with the changed fields, ``NotifyFullStatus``) to a peer that has made a
  request (its ``src`` is where notifications go, as ``dst``).

Authentication (``ShellyOptions.password``): digest, SHA-256, user ``admin``, realm = the
device id; HA1 = SHA256(admin:realm:password). Over RPC frames the ``auth`` object's
response = SHA256(HA1:nonce:nc:cnonce:auth:HA2) with HA2 = SHA256("dummy_method:dummy_uri");
over HTTP the ``Authorization: Digest`` header (RFC 7616, HA2 = SHA256(METHOD:uri)).
A 401 carries the challenge: over RPC as the error message, a JSON string with auth_type,
nonce, nc, realm, algorithm; over HTTP also as ``WWW-Authenticate``. Firmware 2.0 nonce
handling: a nonce lives one hour and serves up to 30,000 requests; each use must raise
``nc`` (a repeated or lower nc is refused); an expired nonce with otherwise right credentials
gets a fresh challenge with ``"stale": true``. Only ``Shelly.GetDeviceInfo`` and ``/shelly``
are open.

The devices advertise firmware 1.7.1 but check authentication by the current documentation's
firmware 2.0 rules (the stricter: nc must rise, nonces expire).

Where the documentation says nothing this emulator is stricter than a client needs, and the
docstrings say so: a realm, username or algorithm other than the device's is refused; a
nonce the device never issued is refused (not ``stale``); after ``lockout_after`` failed
logins in a row every login is refused for ``lockout_s`` (even a right one).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from .clock import PlugClock
from .loadcurve import LoadCurve, Meter

USERNAME = "admin"  # the only user (General/Authentication)
ALGORITHM = "SHA-256"
NONCE_TTL_S = 3600.0  # firmware 2.0: a nonce is valid for one hour...
NONCE_MAX_USES = 30_000  # ...and for up to 30,000 requests
HA2_RPC = hashlib.sha256(b"dummy_method:dummy_uri").hexdigest()
OPEN_METHODS = frozenset({"Shelly.GetDeviceInfo"})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ShellyFault(StrEnum):
    """Misbehaviour of one emulated Shelly device."""

    NONE = "none"
    OFFLINE = "offline"  # open connections reset, the port closed: connection refused
    SILENT = "silent"  # connections are accepted; nothing is ever answered


@dataclass(frozen=True)
class ShellyModel:
    """What the documentation says one model reports (Switch status fields per model)."""

    key: str
    model: str  # the order code, Shelly.GetDeviceInfo "model"
    app: str
    gen: int
    id_prefix: str  # the device id is <id_prefix>-<mac, 12 lowercase hex digits>
    channels: int
    freq: bool  # switch:N.freq
    pf: bool  # switch:N.pf
    ret_aenergy: bool  # switch:N.ret_aenergy (returned energy)
    base_w: tuple[float, ...]  # load curve per channel
    fw_id: str = "20250924-062729/1.7.1-gd336f31"
    ver: str = "1.7.1"


MODELS: dict[str, ShellyModel] = {
    m.key: m
    for m in (
        # Plus Plug S (Gen2): apower, voltage, current, aenergy, temperature; no freq, no pf
        ShellyModel(
            "plus-plug-s",
            "SNPL-00112EU",
            "PlusPlugS",
            2,
            "shellyplusplugs",
            1,
            freq=False,
            pf=False,
            ret_aenergy=False,
            base_w=(42.0,),
        ),
        # Plug S Gen3: adds freq (and the returned-energy counter)
        ShellyModel(
            "plug-s-gen3",
            "S3PL-00112EU",
            "PlugSG3",
            3,
            "shellyplugsg3",
            1,
            freq=True,
            pf=False,
            ret_aenergy=True,
            base_w=(35.0,),
        ),
        # Pro 4PM: four metered relays with pf and freq
        ShellyModel(
            "pro-4pm",
            "SPSW-104PE16EU",
            "Pro4PM",
            2,
            "shellypro4pm",
            4,
            freq=True,
            pf=True,
            ret_aenergy=True,
            base_w=(120.0, 15.0, 60.0, 800.0),
        ),
    )
}


@dataclass
class ShellyOptions:
    """How to emulate one Shelly device (``Simulator.start_shelly``)."""

    model: str = "plus-plug-s"  # a key of MODELS
    password: str = ""  # "" = authentication off (auth_en false)
    host: str | None = None  # 127.x.y.z; None = allocate
    port: int | None = None  # None = a free port (a real device: 80)
    mac: str | None = None
    name: str | None = None  # sys.device.name
    start_wh: float = 0.0  # aenergy.total at start, per channel
    on: bool = True  # every relay's initial output
    latency_s: float = 0.0  # before every reply
    notify_interval_s: float = 1.0  # how often changed values go out as NotifyStatus
    lockout_after: int = 5  # failed logins in a row before the lock-out (stricter)
    lockout_s: float = 60.0
    nonce_ttl_s: float = NONCE_TTL_S
    nonce_max_uses: int = NONCE_MAX_USES
    energy_persists: bool = False  # aenergy.total survives a reboot (see ShellyDevice.reboot)


@dataclass
class _Nonce:
    issued: float
    last_nc: int = 0
    uses: int = 0


@dataclass(eq=False)
class _Peer:
    ws: web.WebSocketResponse
    request: web.Request
    src: str | None = None  # learnt from its first request: notifications go there
    last: dict[str, Any] = field(default_factory=dict)  # what it was last told


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class ShellyDevice:
    """One emulated Gen2+ device on its own loopback address and port."""

    def __init__(
        self, options: ShellyOptions, *, host: str, mac: str, index: int, clock: PlugClock
    ) -> None:
        if options.model not in MODELS:
            raise ValueError(f"unknown Shelly model {options.model!r}; one of {', '.join(MODELS)}")
        self.options = options
        self.spec = MODELS[options.model]
        self.host = host
        self.port = options.port or 0
        self.mac = mac.lower()  # aa:bb:cc:dd:ee:ff
        self.index = index
        self.clock = clock
        self.device_id = f"{self.spec.id_prefix}-{self.mac_hex.lower()}"
        self.password = options.password
        self.fault = ShellyFault.NONE
        self.logins = 0  # requests that carried credentials (auth object / Authorization)
        self.failed_logins = 0  # of those, refused
        self.stale_logins = 0  # of those, answered with a fresh nonce (stale: true)
        self.requests = 0  # every RPC call received
        self.boots = 1
        self._failures_in_row = 0
        self._locked_until = 0.0
        self._nonces: dict[int, _Nonce] = {}
        self._booted = clock.now()
        self._cfg_rev = 10
        self.meters = [
            Meter(
                LoadCurve(w, 230.0, seed=int(self.mac_hex, 16) * 8 + n),  # stable per device
                start_wh=options.start_wh,
                on=options.on,
                clock=clock.now,
            )
            for n, w in enumerate(self.spec.base_w[: self.spec.channels])
        ]
        self._runner: web.AppRunner | None = None
        self._peers: set[_Peer] = set()
        self._notifier: asyncio.Task[None] | None = None
        self._hang = asyncio.Event()  # never set: SILENT handlers wait on it
        self._tasks: set[asyncio.Task[None]] = set()  # Shelly.Reboot's delayed restart

    # -- identity -------------------------------------------------------------

    @property
    def mac_hex(self) -> str:
        return self.mac.replace(":", "").upper()

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def auth_en(self) -> bool:
        return bool(self.password)

    def __repr__(self) -> str:
        return f"<ShellyDevice {self.spec.key} {self.host}:{self.port} {self.device_id}>"

    def device_info(self) -> dict[str, Any]:
        """Shelly.GetDeviceInfo / GET /shelly."""
        return {
            "name": self.options.name,
            "id": self.device_id,
            "mac": self.mac_hex,
            "slot": 0,
            "model": self.spec.model,
            "gen": self.spec.gen,
            "fw_id": self.spec.fw_id,
            "ver": self.spec.ver,
            "app": self.spec.app,
            "auth_en": self.auth_en,
            "auth_domain": self.device_id if self.auth_en else None,
        }

    # -- readings ---------------------------------------------------------------

    def readings(self) -> list[dict[str, Any]]:
        """The truth per channel: power_w, voltage_v, current_a, energy_wh, relay_on."""
        now = self.clock.now()
        out = []
        for m in self.meters:
            s = m.sample(now)
            out.append(
                {
                    "power_w": s.power_w,
                    "voltage_v": s.voltage_v,
                    "current_a": s.current_a,
                    "energy_wh": s.energy_wh,
                    "relay_on": s.on,
                }
            )
        return out

    def switch_status(self, n: int, now: float | None = None) -> dict[str, Any]:
        """Switch.GetStatus: the documented fields this model has."""
        now = self.clock.now() if now is None else now
        meter = self.meters[n]
        s = meter.sample(now)
        minute_ts = int(now // 60 * 60)
        by_minute = [
            round(max(0.0, meter.energy_at(b + 60) - meter.energy_at(b)) * 1000, 3)
            for b in (minute_ts - 60 * (i + 1) for i in range(3))
        ]  # mWh of the last three whole minutes, the latest first
        temp_c = round(38.0 + 0.01 * s.power_w + math.sin(now / 600.0), 1)
        status: dict[str, Any] = {
            "id": n,
            "source": "init",
            "output": s.on,
            "apower": round(s.power_w, 1),
            "voltage": round(s.voltage_v, 1),
        }
        if self.spec.freq:
            status["freq"] = 50.0
        status["current"] = round(s.current_a, 3)
        if self.spec.pf:
            status["pf"] = 0.93 if s.on else 0.0
        status["aenergy"] = {
            "total": round(s.energy_wh, 3),
            "by_minute": by_minute,
            "minute_ts": minute_ts,
        }
        if self.spec.ret_aenergy:
            returned = {"total": 0.0, "by_minute": [0.0, 0.0, 0.0], "minute_ts": minute_ts}
            status["ret_aenergy"] = returned
        status["temperature"] = {"tC": temp_c, "tF": round(temp_c * 9 / 5 + 32, 1)}
        return status

    def sys_status(self, now: float | None = None) -> dict[str, Any]:
        now = self.clock.now() if now is None else now
        return {
            "mac": self.mac_hex,
            "restart_required": False,
            "time": time.strftime("%H:%M", time.gmtime(now)),
            "unixtime": int(now),
            "uptime": int(now - self._booted),
            "ram_size": 260_000,
            "ram_free": 120_000,
            "fs_size": 458_752,
            "fs_free": 200_000,
            "cfg_rev": self._cfg_rev,
            "kvs_rev": 0,
            "schedule_rev": 0,
            "webhook_rev": 0,
            "available_updates": {},
        }

    def wifi_status(self) -> dict[str, Any]:
        return {"sta_ip": self.host, "status": "got ip", "ssid": "otelpower-lab", "rssi": -58}

    def status(self) -> dict[str, Any]:
        """Shelly.GetStatus: every component's status."""
        now = self.clock.now()
        out: dict[str, Any] = {
            "ble": {},
            "cloud": {"connected": False},
            "mqtt": {"connected": False},
        }
        for n in range(len(self.meters)):
            out[f"switch:{n}"] = self.switch_status(n, now)
        out["sys"] = self.sys_status(now)
        out["wifi"] = self.wifi_status()
        out["ws"] = {"connected": False}
        return out

    def config(self) -> dict[str, Any]:
        """Shelly.GetConfig."""
        out: dict[str, Any] = {
            "ble": {"enable": False},
            "cloud": {"enable": False, "server": None},
            "mqtt": {"enable": False},
        }
        for n in range(len(self.meters)):
            out[f"switch:{n}"] = {
                "id": n,
                "name": None,
                "in_mode": "follow" if self.spec.channels > 1 else "momentary",
                "initial_state": "match_input" if self.spec.channels > 1 else "restore_last",
                "auto_on": False,
                "auto_on_delay": 60.0,
                "auto_off": False,
                "auto_off_delay": 60.0,
                "power_limit": 4480 if self.spec.channels > 1 else 2500,
                "voltage_limit": 280,
                "current_limit": 16.0 if self.spec.channels > 1 else 12.0,
            }
        out["sys"] = {
            "device": {
                "name": self.options.name,
                "mac": self.mac_hex,
                "fw_id": self.spec.fw_id,
                "discoverable": True,
                "eco_mode": False,
            },
            "location": {"tz": "Etc/UTC", "lat": None, "lon": None},
            "debug": {"mqtt": {"enable": False}, "websocket": {"enable": False}},
            "sntp": {"server": "time.google.com"},
            "cfg_rev": self._cfg_rev,
        }
        out["wifi"] = {
            "ap": {"ssid": self.device_id, "is_open": True, "enable": False},
            "sta": {"ssid": "otelpower-lab", "is_open": False, "enable": True, "ipv4mode": "dhcp"},
        }
        out["ws"] = {"enable": False, "server": None, "ssl_ca": "ca.pem"}
        return out

    # -- RPC --------------------------------------------------------------------

    def _switch_id(self, params: dict[str, Any]) -> int:
        n = params.get("id")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < len(self.meters):
            raise RpcError(-105, f"Argument 'id', value {n!r} not found!")
        return n

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """The result of one (authorised) call; RpcError otherwise."""
        if method == "Shelly.GetDeviceInfo":
            return self.device_info()
        if method == "Shelly.GetStatus":
            return self.status()
        if method == "Shelly.GetConfig":
            return self.config()
        if method == "Shelly.GetComponents":
            # no dynamic (virtual) components on an emulated device
            comps = [] if params.get("dynamic_only") else self._static_components()
            offset = int(params.get("offset", 0))
            return {
                "components": comps[offset:],
                "cfg_rev": self._cfg_rev,
                "offset": offset,
                "total": len(comps),
            }
        if method == "Shelly.ListMethods":
            return {"methods": sorted(_METHODS)}
        if method == "Sys.GetStatus":
            return self.sys_status()
        if method == "Sys.GetConfig":
            return self.config()["sys"]
        if method == "WiFi.GetStatus":
            return self.wifi_status()
        if method == "Switch.GetStatus":
            return self.switch_status(self._switch_id(params))
        if method == "Switch.GetConfig":
            return self.config()[f"switch:{self._switch_id(params)}"]
        if method in ("Switch.Set", "Switch.Toggle"):
            n = self._switch_id(params)
            was = self.meters[n].on
            if method == "Switch.Set":
                on = params.get("on")
                if not isinstance(on, bool):
                    raise RpcError(-103, "Missing required argument 'on'!")
            else:
                on = not was
            self.meters[n].set_on(on)
            return {"was_on": was}
        if method == "Shelly.Reboot":
            delay = float(params.get("delay_ms", 1000)) / 1000
            self._later(delay, self.reboot())
            return None
        raise RpcError(404, f"No handler for {method}")

    def _later(self, delay: float, coro: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _static_components(self) -> list[dict[str, Any]]:
        status, config = self.status(), self.config()
        return [{"key": k, "status": status.get(k, {}), "config": v} for k, v in config.items()]

    # -- authentication ------------------------------------------------------------

    def challenge(self, *, stale: bool = False, nc: bool = True) -> dict[str, Any]:
        """A fresh nonce, remembered (the 401 body's JSON)."""
        now = self.clock.now()
        # expired nonces are kept a while longer: their users are told "stale", not refused
        self._nonces = {
            k: v for k, v in self._nonces.items() if now - v.issued < 4 * self.options.nonce_ttl_s
        }
        nonce = int(now) ^ secrets.randbits(24)
        while nonce in self._nonces:
            nonce += 1
        self._nonces[nonce] = _Nonce(issued=now)
        out: dict[str, Any] = {
            "auth_type": "digest",
            "nonce": nonce,
            **({"nc": 1} if nc else {}),
            "realm": self.device_id,
            "algorithm": ALGORITHM,
        }
        if stale:
            out["stale"] = True
        return out

    def _check(
        self,
        realm: Any,
        user: Any,
        algorithm: Any,
        nonce: Any,
        nc: Any,
        response: Any,
        expected: Callable[[str], str],
    ) -> str:
        """'' when valid, 'stale' for an expired nonce with right credentials, else 'bad'."""
        self.logins += 1
        now = self.clock.now()
        if now < self._locked_until:
            return "bad"  # stricter: locked out, whatever the password
        if realm != self.device_id or user != USERNAME or algorithm != ALGORITHM:
            return "bad"
        try:
            nonce_n, nc_n = int(nonce), int(nc)
        except (TypeError, ValueError):
            return "bad"
        issued = self._nonces.get(nonce_n)
        if issued is None:
            return "bad"  # stricter: a nonce this device never issued
        ha1 = _sha256(f"{USERNAME}:{self.device_id}:{self.password}")
        if not isinstance(response, str) or not secrets.compare_digest(response, expected(ha1)):
            return "bad"
        if now - issued.issued >= self.options.nonce_ttl_s or (
            issued.uses >= self.options.nonce_max_uses
        ):
            self._nonces.pop(nonce_n, None)
            return "stale"
        if nc_n <= issued.last_nc:
            return "bad"  # a replayed or lowered nonce count
        issued.last_nc, issued.uses = nc_n, issued.uses + 1
        return ""

    def _verdict(self, result: str) -> str:
        if result == "bad":
            self.failed_logins += 1
            self._failures_in_row += 1
            if self._failures_in_row >= self.options.lockout_after:
                self._locked_until = self.clock.now() + self.options.lockout_s
                self._failures_in_row = 0
        elif result == "stale":
            self.stale_logins += 1
        elif result == "":
            self._failures_in_row = 0
        return result

    def check_rpc_auth(self, auth: Any) -> str:
        """The RPC frame's ``auth`` object: '' (valid), 'stale', 'bad' or 'missing'."""
        if not isinstance(auth, dict):
            return "missing"
        cnonce, nonce, nc = auth.get("cnonce"), auth.get("nonce"), auth.get("nc", 1)

        def expected(ha1: str) -> str:
            return _sha256(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{HA2_RPC}")

        return self._verdict(
            self._check(
                auth.get("realm"),
                auth.get("username"),
                auth.get("algorithm"),
                nonce,
                nc,
                auth.get("response"),
                expected,
            )
        )

    def check_http_auth(self, header: str | None, method: str) -> str:
        """The ``Authorization: Digest`` header (RFC 7616, qop auth, SHA-256)."""
        if not header or not header.lower().startswith("digest "):
            return "missing"
        fields = _parse_digest(header[7:])
        nonce, nc, cnonce, uri = (fields.get(k) for k in ("nonce", "nc", "cnonce", "uri"))
        try:
            nc_n = int(nc or "", 16)
        except ValueError:
            nc_n = None
        if fields.get("qop") != "auth" or uri is None:
            return self._verdict("bad")

        def expected(ha1: str) -> str:
            ha2 = _sha256(f"{method}:{uri}")
            return _sha256(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")

        return self._verdict(
            self._check(
                fields.get("realm"),
                fields.get("username"),
                fields.get("algorithm", ALGORITHM),
                nonce,
                nc_n,
                fields.get("response"),
                expected,
            )
        )

    def erase_energy(self) -> None:
        """Every channel's aenergy.total restarts from 0 (as Switch.ResetCounters does)."""
        for m in self.meters:
            m.reset()

    def set_password(self, password: str) -> None:
        """Shelly.SetAuth: "" turns authentication off. Issued nonces are forgotten."""
        self.password = password
        self._nonces.clear()

    # -- faults and lifecycle ------------------------------------------------------

    async def set_fault(self, fault: ShellyFault | str) -> None:
        self.fault = ShellyFault(fault)
        if self.fault is ShellyFault.OFFLINE:
            await self._close()
        elif self._runner is None:
            await self._open()

    async def reboot(self, down_s: float = 0.0) -> None:
        """Restart: connections drop, the port is closed ``down_s``, uptime starts at 0.

        aenergy.total: the documentation does not say it survives a restart; Gen2 devices are
        widely reported to count from 0 after one, so it resets unless ``energy_persists``.
        Issued nonces are forgotten (they live in RAM).
        """
        await self._close()
        if down_s > 0:
            await asyncio.sleep(down_s)
        self._booted = self.clock.now()
        self.boots += 1
        self._nonces.clear()
        if not self.options.energy_persists:
            for m in self.meters:
                m.reset()
        if self.fault is not ShellyFault.OFFLINE:
            await self._open()

    async def start(self) -> None:
        await self._open()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close(reset=False)

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_get("/shelly", self._http_shelly)
        app.router.add_get("/rpc", self._http_ws)
        app.router.add_post("/rpc", self._http_post)
        app.router.add_get("/rpc/{method}", self._http_get)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        self._notifier = asyncio.get_running_loop().create_task(self._notify_loop())

    async def _close(self, *, reset: bool = True) -> None:
        """Stop listening; open connections are reset (no WebSocket close frame: the device
        lost power or its network), or with ``reset=False`` closed politely."""
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.cancel()
            await asyncio.gather(notifier, return_exceptions=True)
        for peer in list(self._peers):
            transport = peer.request.transport
            if reset and transport is not None:
                transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await peer.ws.close()
        self._peers.clear()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _before_reply(self) -> None:
        if self.fault is ShellyFault.SILENT:
            await self._hang.wait()
        if self.options.latency_s > 0:
            await asyncio.sleep(self.options.latency_s)

    # -- HTTP --------------------------------------------------------------------

    async def _http_shelly(self, request: web.Request) -> web.StreamResponse:
        await self._before_reply()
        return web.json_response(self.device_info())

    def _http_unauthorized(self, verdict: str, frame_id: Any = None) -> web.Response:
        ch = self.challenge(stale=verdict == "stale", nc=False)
        header = (
            f'Digest qop="auth", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
            f"algorithm={ALGORITHM}" + (", stale=true" if verdict == "stale" else "")
        )
        body = {"code": 401, "message": json.dumps(ch)}
        if frame_id is not None:
            body = {"id": frame_id, "src": self.device_id, "error": body}
        return web.json_response(body, status=401, headers={"WWW-Authenticate": header})

    async def _http_get(self, request: web.Request) -> web.StreamResponse:
        await self._before_reply()
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        for key, raw in request.query.items():
            try:
                params[key] = json.loads(raw)
            except ValueError:
                params[key] = raw  # a bare string
        self.requests += 1
        if self.auth_en and method not in OPEN_METHODS:
            verdict = self.check_http_auth(request.headers.get("Authorization"), request.method)
            if verdict:
                return self._http_unauthorized(verdict)
        try:
            return web.json_response(self.call(method, params))
        except RpcError as exc:
            status = 404 if exc.code == 404 else 500
            return web.json_response({"code": exc.code, "message": exc.message}, status=status)

    async def _http_post(self, request: web.Request) -> web.StreamResponse:
        await self._before_reply()
        try:
            frame = json.loads(await request.read())
        except ValueError:
            return web.json_response({"code": -32700, "message": "Parse error"}, status=400)
        reply = self._frame_reply(frame, None, http=request)
        if isinstance(reply, web.Response):
            return reply
        status = 200 if "result" in reply else 500
        return web.json_response(reply, status=status)

    # -- frames (HTTP POST and WebSocket) --------------------------------------------

    def _frame_reply(
        self, frame: Any, peer: _Peer | None, http: web.Request | None = None
    ) -> dict[str, Any] | web.Response:
        """The response frame to one request frame (HTTP 401 as a response over HTTP)."""
        if not isinstance(frame, dict):
            return {
                "id": None,
                "src": self.device_id,
                "error": {"code": -32600, "message": "Invalid request"},
            }
        fid, src, method = frame.get("id"), frame.get("src"), frame.get("method")
        params = frame.get("params") or {}
        base: dict[str, Any] = {"id": fid, "src": self.device_id}
        if isinstance(src, str) and src:
            base["dst"] = src
        # stricter than a forgiving parser: id, src and method are required (RPCProtocol)
        if fid is None or not isinstance(src, str) or not src or not isinstance(method, str):
            return {**base, "error": {"code": -32600, "message": "Invalid request frame"}}
        if not isinstance(params, dict):
            return {**base, "error": {"code": -32602, "message": "params must be an object"}}
        self.requests += 1
        if self.auth_en and method not in OPEN_METHODS:
            verdict = self.check_rpc_auth(frame.get("auth"))
            if verdict == "missing" and http is not None:
                verdict = self.check_http_auth(http.headers.get("Authorization"), "POST")
            if verdict:
                if http is not None:
                    return self._http_unauthorized(verdict, fid)
                ch = self.challenge(stale=verdict == "stale")
                return {**base, "error": {"code": 401, "message": json.dumps(ch)}}
        if peer is not None:
            peer.src = src
        try:
            return {**base, "result": self.call(method, params)}
        except RpcError as exc:
            return {**base, "error": {"code": exc.code, "message": exc.message}}

    async def _http_ws(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise web.HTTPBadRequest(text="WebSocket upgrade expected")
        await self._before_reply()
        ws = web.WebSocketResponse(protocols=("json-rpc",))
        await ws.prepare(request)
        peer = _Peer(ws, request)
        self._peers.add(peer)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                await self._before_reply()
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    await ws.send_json(
                        {
                            "id": None,
                            "src": self.device_id,
                            "error": {"code": -32700, "message": "Parse error"},
                        }
                    )
                    continue
                reply = self._frame_reply(frame, peer)
                assert isinstance(reply, dict)
                await ws.send_str(json.dumps(reply))
        finally:
            self._peers.discard(peer)
        return ws

    # -- notifications ---------------------------------------------------------------

    def _notify_view(self, status: dict[str, Any]) -> dict[str, Any]:
        """The fields whose change is notified: switch values (not the minute figures)."""
        return {k: v for k, v in status.items() if k.startswith("switch:") or k == "sys"}

    async def _notify_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.notify_interval_s)
            if self.fault is not ShellyFault.NONE:
                continue
            await self.notify_changes()

    async def notify_changes(self) -> None:
        """NotifyStatus to every identified peer: each component's changed fields."""
        now = self.clock.now()
        status = self.status()
        for peer in list(self._peers):
            if peer.src is None or peer.ws.closed:
                continue
            params: dict[str, Any] = {}
            for key, comp in status.items():
                if not key.startswith("switch:"):
                    continue
                before = peer.last.get(key, {})
                changed = {
                    k: v for k, v in comp.items() if k != "temperature" and before.get(k) != v
                }
                if changed:
                    params[key] = {"id": comp["id"], **changed}
                peer.last[key] = comp
            if params:
                await self._send_notification(peer, "NotifyStatus", {"ts": round(now, 2), **params})

    async def notify_full_status(self) -> None:
        """NotifyFullStatus (the whole status) to every identified peer."""
        status = self.status()
        for peer in list(self._peers):
            if peer.src is None or peer.ws.closed:
                continue
            peer.last = {k: v for k, v in status.items() if k.startswith("switch:")}
            await self._send_notification(
                peer, "NotifyFullStatus", {"ts": round(self.clock.now(), 2), **status}
            )

    async def send_raw(self, text: str) -> None:
        """A frame of any text to every connected peer (a device out of spec, or hostile)."""
        for peer in list(self._peers):
            if not peer.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await peer.ws.send_str(text)

    async def _send_notification(self, peer: _Peer, method: str, params: dict[str, Any]) -> None:
        frame = {"src": self.device_id, "dst": peer.src, "method": method, "params": params}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await peer.ws.send_str(json.dumps(frame))


_METHODS = (
    "Shelly.GetDeviceInfo",
    "Shelly.GetStatus",
    "Shelly.GetConfig",
    "Shelly.GetComponents",
    "Shelly.ListMethods",
    "Shelly.Reboot",
    "Sys.GetStatus",
    "Sys.GetConfig",
    "WiFi.GetStatus",
    "Switch.GetStatus",
    "Switch.GetConfig",
    "Switch.Set",
    "Switch.Toggle",
)


def _parse_digest(text: str) -> dict[str, str]:
    """key=value / key="value" pairs of a Digest header."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lower()
        i = eq + 1
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            out[key] = text[i + 1 : end]
            i = end + 1
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            out[key] = unquote(text[i:end].strip())
            i = end
    return out
