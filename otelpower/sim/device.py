"""Transport-independent request handling for one emulated plug (SMART and IOT)."""

from __future__ import annotations

import base64
import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import local, local_epoch
from .loadcurve import LoadCurve, Meter, Sample
from .profile import ChildProfile, Profile, components_of

DEFAULT_BASE_W = 60.0
# Relative loads of strip outlets, so outlets differ from each other.
_OUTLET_FACTORS = (1.0, 0.4, 1.6, 0.15, 0.8, 2.0, 1.2, 0.6)

SMART_OK = 0
SMART_UNKNOWN_METHOD = -1002
SMART_PARAMS_ERROR = -1008
IOT_NO_MODULE = {"err_code": -1, "err_msg": "module not support"}
IOT_NO_METHOD = {"err_code": -2, "err_msg": "member not support"}


class SmartError(Exception):
    """A SMART method failed with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Outlet:
    """One relay + meter: the whole plug, or one outlet of a strip."""

    index: int
    alias: str
    child_id: str | None  # None for single plugs
    meter: Meter
    today0_wh: float
    month0_wh: float
    static_realtime: dict[str, Any] | None = None  # IOT get_realtime to serve unchanged
    day: tuple[int, int, int] = (0, 0, 0)  # the plug-local day "today" counts from
    day_base_wh: float = 0.0  # meter energy when that day began
    month: tuple[int, int] = (0, 0)
    month_base_wh: float = 0.0
    methods: dict[str, Any] = field(default_factory=dict)  # SMART method replies from the dump
    energy_version: int = 1  # SMART energy_monitoring component version

    @property
    def energy_v2(self) -> bool:
        return self.energy_version >= 2 or "get_emeter_data" in self.methods

    def figures(self, epoch: float, utc_offset_s: int) -> tuple[float, float]:
        """(today, this month) in Wh as the plug counts them: each restarts from 0 at the
        plug's local midnight and on the first of the month."""
        wall = local(epoch, utc_offset_s)
        day, month = (wall.year, wall.month, wall.day), (wall.year, wall.month)
        if day != self.day:
            midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
            self.day = day
            self.day_base_wh = self.meter.energy_at(local_epoch(midnight, utc_offset_s))
        if month != self.month:
            first = wall.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            self.month = month
            self.month_base_wh = self.meter.energy_at(local_epoch(first, utc_offset_s))
        energy = self.meter.energy_at(epoch)
        return max(0.0, energy - self.day_base_wh), max(0.0, energy - self.month_base_wh)

    def start_ledger(
        self, epoch: float, utc_offset_s: int, today_wh: float, month_wh: float
    ) -> None:
        """At emulator start: the dump's today/month figures were used earlier this day/month."""
        self.figures(epoch, utc_offset_s)
        energy = self.meter.energy_at(epoch)
        self.day_base_wh, self.month_base_wh = energy - today_wh, energy - month_wh


def _iot_static_sample(rt: dict[str, Any], on: bool) -> Sample:
    def pick(plain: str, milli: str) -> float:
        if plain in rt:
            return float(rt[plain])
        return float(rt.get(milli, 0)) / 1000.0

    return Sample(
        power_w=pick("power", "power_mw"),
        voltage_v=pick("voltage", "voltage_mv"),
        current_a=pick("current", "current_ma"),
        energy_wh=pick("total", "total_wh") * 1000.0,
        on=on,
    )


def smart_static_sample(methods: dict[str, Any], nominal_v: float, on: bool) -> Sample:
    """What a SMART dump says the meter reads (the client's own order of preference)."""
    em = methods.get("get_emeter_data") or {}
    eu = methods.get("get_energy_usage") or {}
    cp = methods.get("get_current_power") or {}
    if "power_mw" in em:
        mw = float(em["power_mw"])
    elif eu.get("current_power") is not None:
        mw = float(eu["current_power"])
    else:
        mw = float(cp.get("current_power", 0)) * 1000.0
    volts = em["voltage_mv"] / 1000.0 if "voltage_mv" in em else nominal_v
    amps = em["current_ma"] / 1000.0 if "current_ma" in em else mw / 1000.0 / volts
    energy = float(em.get("energy_wh", eu.get("month_energy", 0)))
    return Sample(mw / 1000.0, volts, amps, energy, on)


def _override(value: Any, overrides: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {
            k: overrides[k] if k in overrides else _override(v, overrides) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_override(v, overrides) for v in value]
    return value


class DeviceModel:
    """State and request handling of one emulated plug, independent of transport."""

    def __init__(
        self,
        profile: Profile,
        *,
        mac: str,
        host: str,
        index: int,
        static: bool,
        username: str = "",
        clock: Callable[[], float] = time.time,
        utc_offset_s: int | None = None,
    ) -> None:
        self.profile = profile
        self.clock = clock
        dumped_diff = (profile.data.get("get_device_time") or {}).get("time_diff", 0)
        self.utc_offset_s = int(dumped_diff) * 60 if utc_offset_s is None else utc_offset_s
        self.mac = mac
        self.host = host
        self.static = static
        self.username = username
        self.device_id = hashlib.sha1(f"otelpower-sim/{mac}".encode()).hexdigest().upper()
        self.alias = profile.alias or f"{profile.model_base} sim {index}"
        self.nominal_v = 120.0 if profile.us else 230.0
        self.transport = profile.transport  # the emulator may serve a SMART dump over TPAP
        self.tpap: dict[str, Any] | None = None  # the TPAP announce, while serving TPAP
        self.outlets = self._make_outlets(index)
        for o in self.outlets:
            o.start_ledger(self.clock(), self.utc_offset_s, o.today0_wh, o.month0_wh)
        #: reply keys forced to a value wherever they occur (fuzzing the client's parsing)
        self.overrides: dict[str, Any] = {}
        #: the next N batched requests (multipleRequest) are answered JSON_DECODE_FAIL (-1003),
        #: as P100s do now and then (python-kasa then sends one query per request)
        self.reject_batches = 0

    # -- construction ---------------------------------------------------------------

    def _make_outlets(self, index: int) -> list[Outlet]:
        p = self.profile
        seed = int(self.device_id[:8], 16)
        if not p.children:
            return [self._outlet(None, self.alias, self._relay_in_dump(), p.data, seed, 1.0)]
        return [
            self._outlet(
                c,
                c.alias or f"Outlet {c.index + 1}",
                c.on,
                c.methods if p.family == "smart" else p.data,
                seed + 7919 * (c.index + 1),
                # IOT strip dumps hold one reading for all outlets: spread the load.
                1.0 if p.family == "smart" else _OUTLET_FACTORS[c.index % len(_OUTLET_FACTORS)],
            )
            for c in p.children
        ]

    def _energy_version(self, child: ChildProfile | None) -> int:
        if self.profile.family != "smart":
            return 1
        if child is None:
            return self.profile.components.get("energy_monitoring", 1)
        listing = self.profile.data.get("get_child_device_component_list", {})
        for entry in listing.get("child_component_list", []):
            if entry.get("device_id") == child.dump_id:
                return components_of({"component_nego": entry}).get("energy_monitoring", 1)
        return components_of(child.methods).get("energy_monitoring", 1)

    def _relay_in_dump(self) -> bool:
        if self.profile.family == "iot":
            return bool(self.profile.sysinfo.get("relay_state", 1))
        return bool(self.profile.device_info.get("device_on", True))

    def _outlet(
        self,
        child: ChildProfile | None,
        alias: str,
        on: bool,
        methods: dict[str, Any],
        seed: int,
        factor: float,
    ) -> Outlet:
        static_rt = None
        if self.profile.family == "iot":
            static_rt = dict(methods["emeter"]["get_realtime"])
            truth = _iot_static_sample(static_rt, True)
            today0 = month0 = 0.0
        else:
            truth = smart_static_sample(methods, self.nominal_v, True)
            eu = methods.get("get_energy_usage") or {}
            today0 = float(eu.get("today_energy", 0))
            month0 = float(eu.get("month_energy", 0))
        if self.static:
            curve = LoadCurve(0, self.nominal_v, seed)
            meter = Meter(curve, start_wh=truth.energy_wh, on=on, static=truth, clock=self.clock)
        else:
            base = truth.power_w if truth.power_w >= 1.0 else DEFAULT_BASE_W
            curve = LoadCurve(base * factor, self.nominal_v, seed)
            meter = Meter(curve, start_wh=truth.energy_wh, on=on, clock=self.clock)
        return Outlet(
            index=child.index if child else 0,
            alias=alias,
            child_id=f"{self.device_id}{child.index:02d}" if child else None,
            meter=meter,
            today0_wh=today0,
            month0_wh=month0,
            static_realtime=static_rt,
            methods=methods if self.profile.family == "smart" else {},
            energy_version=self._energy_version(child),
        )

    # -- public helpers ---------------------------------------------------------------

    @property
    def is_strip(self) -> bool:
        return bool(self.profile.children)

    def readings(self) -> dict[str, Any]:
        """Current truth of the meters (sum over outlets for strips)."""
        now = self.clock()
        samples = [o.meter.sample(now) for o in self.outlets]
        if not self.is_strip:
            return _reading_dict(samples[0])
        return {
            "power_w": sum(s.power_w for s in samples),
            "voltage_v": sum(s.voltage_v for s in samples) / len(samples),
            "current_a": sum(s.current_a for s in samples),
            "energy_total_kwh": sum(s.energy_wh for s in samples) / 1000.0,
            "relay_on": any(s.on for s in samples),
            "outlets": [
                {"alias": o.alias, "id": o.child_id, **_reading_dict(s)}
                for o, s in zip(self.outlets, samples, strict=True)
            ],
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one decoded request of the plug's own family."""
        if self.profile.family == "smart":
            reply = self.handle_smart(request)
        else:
            reply = self.handle_iot(request)
        return _override(reply, self.overrides) if self.overrides else reply

    def local_now(self) -> datetime:
        """The plug's wall-clock time (its clock, in its time zone)."""
        return local(self.clock(), self.utc_offset_s)

    def erase_energy(self) -> None:
        """Erase the meters' statistics: every counter, today and month restart from 0."""
        for o in self.outlets:
            o.meter.reset()
            o.start_ledger(self.clock(), self.utc_offset_s, 0.0, 0.0)

    # -- discovery ------------------------------------------------------------------

    def mac_dashed(self) -> str:
        return self.mac.replace(":", "-").upper()

    def discovery_result(self, http_port: int) -> dict[str, Any]:
        """Body of the 20002/20004 reply."""
        p, transport = self.profile, self.transport
        schm: dict[str, Any] = {
            "is_support_https": bool(self.tpap and self.tpap["tls"]),
            "encrypt_type": transport if transport in ("AES", "TPAP") else "KLAP",
            "http_port": http_port,
        }
        if p.family == "smart" and transport in ("KLAP v2", "TPAP"):
            schm["lv"] = 2
        elif p.login_version is not None:
            schm["lv"] = p.login_version
        owner = hashlib.md5(self.username.encode()).hexdigest().upper() if self.username else ""
        result = {
            "device_id": self.device_id,
            "device_model": p.model,
            "device_type": p.device_type,
            "factory_default": False,
            "ip": self.host,
            "is_support_iot_cloud": True,
            "mac": self.mac_dashed(),
            "mgt_encrypt_schm": schm,
            "obd_src": "tplink",
            "owner": owner,
        }
        if transport == "TPAP" and self.tpap is not None:
            result["tpap"] = self.tpap
        return {"error_code": 0, "result": result}

    # -- SMART ----------------------------------------------------------------------

    def handle_smart(self, request: dict[str, Any]) -> dict[str, Any]:
        method = request.get("method")
        params = request.get("params")
        if method == "multipleRequest":
            if self.reject_batches > 0:
                self.reject_batches -= 1
                return {"error_code": -1003}
            return {"error_code": 0, "result": {"responses": self._multi(params, None)}}
        try:
            result = self._smart_call(str(method), params, None)
        except SmartError as ex:
            return {"error_code": ex.code}
        return {"error_code": 0, "result": result}

    def _multi(self, params: Any, outlet: Outlet | None) -> list[dict[str, Any]]:
        responses: list[dict[str, Any]] = []
        for req in (params or {}).get("requests", []):
            method = str(req.get("method"))
            try:
                result = self._smart_call(method, req.get("params"), outlet)
            except SmartError as ex:
                # Like a real device: report the failure and stop the batch.
                responses.append({"method": method, "error_code": ex.code})
                break
            responses.append({"method": method, "result": result, "error_code": 0})
        return responses

    def _smart_call(self, method: str, params: Any, outlet: Outlet | None) -> Any:
        if outlet is not None:
            return self._smart_child_call(outlet, method, params)
        data = self.profile.data
        single = None if self.is_strip else self.outlets[0]
        match method:
            case "get_device_info":
                return self._smart_device_info()
            case "set_device_info":
                if single is not None and isinstance(params, dict) and "device_on" in params:
                    single.meter.set_on(bool(params["device_on"]))
                return {}
            case "get_energy_usage" | "get_current_power" | "get_emeter_data" if single:
                return self._smart_energy(single, method)
            case "get_emeter_vgain_igain" if single and single.energy_v2:
                return data.get(method) or {"vgain": 124000, "igain": 11300}
            case "get_device_time":
                return self._smart_time(data.get(method) or {})
            case "get_connect_cloud_state" if method not in data:
                return {"status": 0}
            case "get_child_device_list" if self.is_strip:
                return self._smart_child_list(params)
            case "get_child_device_component_list" if self.is_strip:
                return self._smart_child_components()
            case "control_child" if self.is_strip:
                return self._control_child(params)
        if method in data and method.startswith(("get_", "component_nego", "qs_")):
            return copy.deepcopy(data[method])
        raise SmartError(SMART_UNKNOWN_METHOD)

    def _smart_device_info(self) -> dict[str, Any]:
        info = copy.deepcopy(self.profile.device_info)
        info.update(
            device_id=self.device_id,
            mac=self.mac_dashed(),
            ip=self.host,
            nickname=base64.b64encode(self.alias.encode()).decode(),
        )
        if not self.is_strip:
            self._patch_relay(info, self.outlets[0])
        return info

    def _patch_relay(self, info: dict[str, Any], outlet: Outlet) -> None:
        m = outlet.meter
        info["device_on"] = m.on
        info["on_time"] = int(self.clock() - m.on_since) if m.on else 0

    def _smart_time(self, dumped: dict[str, Any]) -> dict[str, Any]:
        return {
            "time_diff": self.utc_offset_s // 60,
            "timestamp": int(self.clock()),
            "region": dumped.get("region", "UTC"),
        }

    def _smart_energy(self, outlet: Outlet, method: str) -> dict[str, Any]:
        methods = outlet.methods
        if method != "get_energy_usage" and not outlet.energy_v2:
            raise SmartError(SMART_UNKNOWN_METHOD)
        s = outlet.meter.sample()
        if self.static and outlet.meter.on and method in methods:
            return copy.deepcopy(methods[method])
        mw = round(s.power_w * 1000)
        if method == "get_current_power":
            return {"current_power": round(s.power_w)}
        if method == "get_emeter_data":
            return {
                "current_ma": round(s.current_a * 1000),
                "energy_wh": round(s.energy_wh),
                "power_mw": mw,
                "voltage_mv": round(s.voltage_v * 1000),
            }
        today, month = outlet.figures(self.clock(), self.utc_offset_s)
        base = copy.deepcopy(methods.get("get_energy_usage") or {})
        live = {
            "current_power": mw,
            "today_energy": round(today),
            "month_energy": round(month),
            "local_time": self.local_now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        if not base:
            base = {"today_runtime": 0, "month_runtime": 0, "electricity_charge": [0, 0, 0]}
            base.update(live)
            return base
        base.update({k: v for k, v in live.items() if k in base})
        return base

    # SMART strips (P304M and friends): children are addressed through control_child.

    def _outlet_by_id(self, child_id: Any) -> Outlet:
        for o in self.outlets:
            if o.child_id == child_id:
                return o
        raise SmartError(SMART_PARAMS_ERROR)

    def _smart_child_info(self, outlet: Outlet) -> dict[str, Any]:
        listing = self.profile.data.get("get_child_device_list", {}).get("child_device_list", [])
        info = copy.deepcopy(outlet.methods.get("get_device_info") or listing[outlet.index])
        info.update(
            device_id=outlet.child_id,
            original_device_id=self.device_id,
            nickname=base64.b64encode(outlet.alias.encode()).decode(),
            mac=self.mac_dashed().replace("-", ""),
        )
        self._patch_relay(info, outlet)
        return info

    def _smart_child_list(self, params: Any) -> dict[str, Any]:
        start = int((params or {}).get("start_index", 0))
        children = [self._smart_child_info(o) for o in self.outlets]
        return {"child_device_list": children[start:], "start_index": start, "sum": len(children)}

    def _smart_child_components(self) -> dict[str, Any]:
        dumped = self.profile.data.get("get_child_device_component_list", {})
        by_dump_id = {c.get("device_id"): c for c in dumped.get("child_component_list", [])}
        out = []
        for o, c in zip(self.outlets, self.profile.children, strict=True):
            entry = copy.deepcopy(by_dump_id.get(c.dump_id) or {"component_list": []})
            entry["device_id"] = o.child_id
            out.append(entry)
        return {"child_component_list": out, "start_index": 0, "sum": len(out)}

    def _control_child(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict):
            raise SmartError(SMART_PARAMS_ERROR)
        outlet = self._outlet_by_id(params.get("device_id"))
        req = params.get("requestData") or {}
        method = str(req.get("method"))
        if method == "multipleRequest":
            inner = {
                "error_code": 0,
                "result": {"responses": self._multi(req.get("params"), outlet)},
            }
        else:
            try:
                inner = {
                    "error_code": 0,
                    "result": self._smart_child_call(outlet, method, req.get("params")),
                }
            except SmartError as ex:
                inner = {"error_code": ex.code}
        return {"responseData": inner}

    def _smart_child_call(self, outlet: Outlet, method: str, params: Any) -> Any:
        match method:
            case "get_device_info":
                return self._smart_child_info(outlet)
            case "set_device_info":
                if isinstance(params, dict) and "device_on" in params:
                    outlet.meter.set_on(bool(params["device_on"]))
                return {}
            case "get_energy_usage" | "get_current_power" | "get_emeter_data":
                return self._smart_energy(outlet, method)
            case "get_emeter_vgain_igain" if outlet.energy_v2:
                return outlet.methods.get(method) or {"vgain": 124000, "igain": 11300}
        if method in outlet.methods:
            return copy.deepcopy(outlet.methods[method])
        raise SmartError(SMART_UNKNOWN_METHOD)

    # -- IOT (legacy) -----------------------------------------------------------------

    def handle_iot(self, request: dict[str, Any]) -> dict[str, Any]:
        context = request.get("context") or {}
        targets = self._iot_targets(context.get("child_ids"))
        response: dict[str, Any] = {}
        for module, calls in request.items():
            if module == "context":
                continue
            if not isinstance(calls, dict):
                response[module] = dict(IOT_NO_MODULE)
                continue
            response[module] = self._iot_module(module, calls, targets)
        return response

    def _iot_targets(self, child_ids: Any) -> list[Outlet] | None:
        if not child_ids:
            return None
        out = []
        for cid in child_ids:
            for o in self.outlets:
                if o.child_id is not None and (o.child_id == cid or o.child_id.endswith(str(cid))):
                    out.append(o)
        return out

    def _iot_module(
        self, module: str, calls: dict[str, Any], targets: list[Outlet] | None
    ) -> dict[str, Any]:
        handlers = {"system": self._iot_system, "emeter": self._iot_emeter, "time": self._iot_time}
        dumped = self.profile.data.get(module)
        if module not in handlers and not isinstance(dumped, dict):
            return dict(IOT_NO_MODULE)
        out: dict[str, Any] = {}
        for method, args in calls.items():
            result = None
            if module in handlers:
                result = handlers[module](method, args if isinstance(args, dict) else {}, targets)
            if result is None and isinstance(dumped, dict) and method in dumped:
                result = copy.deepcopy(dumped[method])
            out[method] = result if result is not None else dict(IOT_NO_METHOD)
        return out

    def sysinfo(self) -> dict[str, Any]:
        """``system.get_sysinfo`` with this plug's identity and live relay state."""
        info = copy.deepcopy(self.profile.sysinfo)
        info.update(mac=self.mac.upper(), deviceId=self.device_id, alias=self.alias, err_code=0)
        now = self.clock()
        if self.is_strip:
            dumped = info.get("children") or []
            kids = []
            for o in self.outlets:
                kid = copy.deepcopy(dumped[o.index]) if o.index < len(dumped) else {}
                kid.update(
                    id=o.child_id,
                    alias=o.alias,
                    state=int(o.meter.on),
                    on_time=int(now - o.meter.on_since) if o.meter.on else 0,
                )
                kid.setdefault("next_action", {"type": -1})
                kids.append(kid)
            info["children"] = kids
            info["child_num"] = len(kids)
        else:
            m = self.outlets[0].meter
            info["relay_state"] = int(m.on)
            if "on_time" in info:
                info["on_time"] = int(now - m.on_since) if m.on else 0
        return info

    def _iot_system(
        self, method: str, args: dict[str, Any], targets: list[Outlet] | None
    ) -> dict[str, Any] | None:
        if method == "get_sysinfo":
            return self.sysinfo()
        if method == "set_relay_state":
            for o in targets if targets is not None else self.outlets:
                o.meter.set_on(bool(args.get("state", 1)))
            return {"err_code": 0}
        return None

    def _iot_time(
        self, method: str, args: dict[str, Any], targets: list[Outlet] | None
    ) -> dict[str, Any] | None:
        now = self.local_now()
        if method == "get_time":
            return {
                "year": now.year,
                "month": now.month,
                "mday": now.day,
                "hour": now.hour,
                "min": now.minute,
                "sec": now.second,
                "err_code": 0,
            }
        if method == "get_timezone":
            return {"index": 39, "err_code": 0}  # (UTC) Greenwich Mean Time
        return None

    def _iot_emeter(
        self, method: str, args: dict[str, Any], targets: list[Outlet] | None
    ) -> dict[str, Any] | None:
        outlets = targets if targets else self.outlets
        milli = "power_mw" in (self.outlets[0].static_realtime or {})
        now = self.local_now()
        if method == "get_realtime":
            if len(outlets) == 1:
                return self._iot_realtime(outlets[0], milli)
            return self._iot_sum([self._iot_realtime(o, milli) for o in outlets], milli)
        if method in ("get_daystat", "get_monthstat"):
            figures = [o.figures(self.clock(), self.utc_offset_s) for o in outlets]
            wh = sum(f[0] if method == "get_daystat" else f[1] for f in figures)
            entry: dict[str, Any] = {"year": now.year, "month": now.month}
            key = "day_list" if method == "get_daystat" else "month_list"
            if method == "get_daystat":
                entry["day"] = now.day
            if milli:
                entry["energy_wh"] = round(wh)
            else:
                entry["energy"] = round(wh / 1000.0, 3)
            match_year = int(args.get("year", now.year)) == now.year
            match_month = method == "get_monthstat" or int(args.get("month", now.month)) == (
                now.month
            )
            return {key: [entry] if match_year and match_month else [], "err_code": 0}
        return None

    def _iot_realtime(self, o: Outlet, milli: bool) -> dict[str, Any]:
        s = o.meter.sample()
        if self.static and o.meter.on and o.static_realtime is not None:
            rt = copy.deepcopy(o.static_realtime)
        elif milli:
            rt = {
                "current_ma": round(s.current_a * 1000),
                "power_mw": round(s.power_w * 1000),
                "total_wh": round(s.energy_wh),
                "voltage_mv": round(s.voltage_v * 1000),
            }
        else:
            rt = {
                "current": round(s.current_a, 6),
                "power": round(s.power_w, 6),
                "total": round(s.energy_wh / 1000.0, 3),
                "voltage": round(s.voltage_v, 6),
            }
        if self.is_strip:
            rt["slot_id"] = o.index
        rt["err_code"] = 0
        return rt

    @staticmethod
    def _iot_sum(parts: list[dict[str, Any]], milli: bool) -> dict[str, Any]:
        keys = ("current_ma", "power_mw", "total_wh") if milli else ("current", "power", "total")
        vkey = "voltage_mv" if milli else "voltage"
        out: dict[str, Any] = {k: sum(p.get(k, 0) for p in parts) for k in keys}
        out[vkey] = sum(p.get(vkey, 0) for p in parts) / len(parts)
        if milli:
            out[vkey] = round(out[vkey])
        out["err_code"] = 0
        return out


def _reading_dict(s: Sample) -> dict[str, Any]:
    return {
        "power_w": s.power_w,
        "voltage_v": s.voltage_v,
        "current_a": s.current_a,
        "energy_total_kwh": s.energy_wh / 1000.0,
        "relay_on": s.on,
    }
