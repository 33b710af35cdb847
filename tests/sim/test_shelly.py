"""The unmodified aioshelly client against emulated Shelly Gen2+ devices over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import yaml

from otelpower.sim import ShellyDevice, ShellyFault, ShellyOptions, Simulator
from otelpower.sim.serve import serve

from .conftest import PROFILES
from .helpers import served

aioshelly = pytest.importorskip("aioshelly")

from aioshelly.common import ConnectionOptions, get_info  # noqa: E402
from aioshelly.exceptions import DeviceConnectionError, InvalidAuthError  # noqa: E402
from aioshelly.rpc_device import RpcDevice, RpcUpdateType, WsServer  # noqa: E402

PASSWORD = "s3cret-Pa55"


@asynccontextmanager
async def client(
    dev: ShellyDevice, password: str | None = None, *, initialize: bool = True
) -> AsyncIterator[RpcDevice]:
    """aioshelly's RpcDevice on the device's address and port (+ initialize); shut down after."""
    async with aiohttp.ClientSession() as session:
        options = ConnectionOptions(
            dev.host, "admin" if password is not None else None, password, port=dev.port
        )
        # no WsServer: that is for devices connecting out to us (sleeping ones)
        rpc = await RpcDevice.create(session, None, options)
        try:
            if initialize:
                async with asyncio.timeout(15):
                    await rpc.initialize()
            yield rpc
        finally:
            await rpc.shutdown()


@pytest.mark.parametrize(
    ("model", "channels", "fields"),
    [
        ("plus-plug-s", 1, {"apower", "voltage", "current", "aenergy", "temperature"}),
        ("plug-s-gen3", 1, {"apower", "voltage", "current", "freq", "aenergy", "ret_aenergy"}),
        ("pro-4pm", 4, {"apower", "voltage", "current", "freq", "pf", "aenergy", "ret_aenergy"}),
    ],
)
@pytest.mark.parametrize("password", ["", PASSWORD])
async def test_client_reads_models(
    sim: Simulator, model: str, channels: int, fields: set[str], password: str
) -> None:
    (dev,) = await sim.start_shelly([ShellyOptions(model=model, password=password)])
    async with client(dev, password or None) as rpc:
        assert rpc.connected and rpc.initialized
        assert rpc.shelly["id"] == dev.device_id and rpc.shelly["mac"] == dev.mac_hex
        assert rpc.shelly["auth_en"] is bool(password)
        assert rpc.requires_auth is bool(password)
        assert rpc.model == dev.model and rpc.firmware_supported
        switches = sorted(k for k in rpc.status if k.startswith("switch:"))
        assert switches == [f"switch:{n}" for n in range(channels)]
        assert sorted(k for k in rpc.config if k.startswith("switch:")) == switches
        assert rpc.status["sys"]["uptime"] >= 0 and "rssi" in rpc.status["wifi"]
        for n, truth in enumerate(dev.readings()):
            sw = rpc.status[f"switch:{n}"]
            assert fields <= set(sw), (model, set(sw))
            assert ("pf" in sw) == ("pf" in fields) and ("freq" in sw) == ("freq" in fields)
            assert sw["output"] is True
            assert sw["apower"] == pytest.approx(truth["power_w"], rel=0.2)
            assert sw["voltage"] == pytest.approx(truth["voltage_v"], rel=0.02)
            assert sw["aenergy"]["total"] >= 0 and len(sw["aenergy"]["by_minute"]) == 3
            assert set(sw["temperature"]) == {"tC", "tF"}
        # later reads: update_status() and poll() over the same socket
        before = rpc.status["switch:0"]["aenergy"]["total"]
        sim.clock.advance(600)
        await rpc.update_status()
        after = rpc.status["switch:0"]["aenergy"]["total"]
        # ten minutes at the curve's power: the counter follows the integral
        want = dev.meters[0].curve.energy_wh(sim.clock.now() - 600, sim.clock.now())
        assert after - before == pytest.approx(want, rel=0.05, abs=0.05)
        await rpc.poll()
        assert rpc.status["sys"]["uptime"] >= 600
    if password:
        assert dev.logins >= 3 and dev.failed_logins == 0


async def test_stale_nonce_is_renewed(sim: Simulator) -> None:
    """Firmware 2.0: after an hour the nonce is stale; aioshelly takes the new challenge."""
    (dev,) = await sim.start_shelly([ShellyOptions(password=PASSWORD)])
    async with client(dev, PASSWORD) as rpc:
        await rpc.update_status()
        failed = dev.failed_logins
        sim.clock.advance(3601)
        await rpc.update_status()
        assert rpc.status["sys"]["uptime"] >= 3601
    assert dev.failed_logins == failed == 0 and dev.stale_logins == 1


async def test_get_info_needs_no_auth(sim: Simulator) -> None:
    (dev,) = await sim.start_shelly([ShellyOptions(model="pro-4pm", password=PASSWORD)])
    async with aiohttp.ClientSession() as session:
        info = await get_info(session, dev.host, port=dev.port)
    assert info["id"] == dev.device_id and info["gen"] == 2 and info["auth_en"] is True
    assert info["auth_domain"] == dev.device_id and info["app"] == "Pro4PM"
    assert dev.logins == 0


async def test_wrong_password(sim: Simulator) -> None:
    (dev,) = await sim.start_shelly([ShellyOptions(password=PASSWORD)])
    with pytest.raises(InvalidAuthError):
        async with client(dev, "wrong"):
            pass
    assert dev.logins == 1 and dev.failed_logins == 1
    # no credentials at all: refused too, and no login counted (none was attempted)
    with pytest.raises(InvalidAuthError):
        async with client(dev):
            pass
    assert dev.logins == 1


async def test_lockout_after_failures(sim: Simulator) -> None:
    """Stricter than documented: after 3 failures even the right password is refused."""
    (dev,) = await sim.start_shelly(
        [ShellyOptions(password=PASSWORD, lockout_after=3, lockout_s=30)]
    )
    for _ in range(3):
        with pytest.raises(InvalidAuthError):
            async with client(dev, "wrong"):
                pass
    with pytest.raises(InvalidAuthError):
        async with client(dev, PASSWORD):
            pass
    sim.clock.advance(31)
    async with client(dev, PASSWORD) as rpc:
        assert rpc.initialized
    assert dev.failed_logins == 4


async def test_offline_and_silent(sim: Simulator) -> None:
    (dev,) = await sim.start_shelly([ShellyOptions()])
    async with client(dev) as rpc:
        await dev.set_fault(ShellyFault.OFFLINE)  # the open WebSocket is reset
        with pytest.raises(DeviceConnectionError):
            await rpc.update_status()
        await asyncio.sleep(0.2)  # the client's receive loop notices the reset
        assert not rpc.connected
    with pytest.raises(DeviceConnectionError):
        async with client(dev):
            pass
    await dev.set_fault(ShellyFault.SILENT)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.5), client(dev):
            pass
    await dev.set_fault(ShellyFault.NONE)
    async with client(dev) as rpc:
        assert rpc.initialized


async def test_reboot_resets_uptime_and_energy(sim: Simulator) -> None:
    (dev,) = await sim.start_shelly([ShellyOptions(start_wh=500.0)])
    sim.clock.advance(120)
    async with client(dev) as rpc:
        assert rpc.status["sys"]["uptime"] >= 120
        assert rpc.status["switch:0"]["aenergy"]["total"] >= 500
    await dev.reboot()
    async with client(dev) as rpc:
        assert rpc.status["sys"]["uptime"] < 5
        assert rpc.status["switch:0"]["aenergy"]["total"] < 1
    assert dev.boots == 2


async def test_reboot_by_rpc(sim: Simulator) -> None:
    """Shelly.Reboot (aioshelly's trigger_reboot): the socket drops, the device comes back."""
    (dev,) = await sim.start_shelly([ShellyOptions(password=PASSWORD)])
    async with client(dev, PASSWORD) as rpc:
        await rpc.trigger_reboot(delay_ms=50)
        await asyncio.sleep(0.5)
        assert not rpc.connected
    assert dev.boots == 2
    async with client(dev, PASSWORD) as rpc:
        assert rpc.status["sys"]["uptime"] < 5


async def test_notifications_reach_the_client(sim: Simulator) -> None:
    """NotifyStatus (the changed fields) and NotifyFullStatus reach aioshelly's status."""
    (dev,) = await sim.start_shelly([ShellyOptions(model="pro-4pm", notify_interval_s=0.2)])
    switched_off, full = asyncio.Event(), asyncio.Event()
    merged_into: list[dict[str, Any]] = []  # NotifyStatus merges; NotifyFullStatus replaces

    def on_update(rpc: RpcDevice, kind: RpcUpdateType) -> None:
        if kind is RpcUpdateType.STATUS and rpc.status["switch:2"]["output"] is False:
            switched_off.set()
        if kind is RpcUpdateType.STATUS and merged_into and rpc.status is not merged_into[0]:
            full.set()

    async with client(dev) as rpc:
        rpc.subscribe_updates(on_update)
        await rpc.call_rpc("Switch.Set", {"id": 2, "on": False})
        async with asyncio.timeout(5):
            await switched_off.wait()  # no poll: only a notification updates the status
        assert rpc.status["switch:2"]["apower"] == 0
        merged_into.append(rpc.status)
        await dev.notify_full_status()
        async with asyncio.timeout(5):
            await full.wait()
        assert rpc.status["switch:2"]["output"] is False and "sys" in rpc.status


async def test_ws_server_is_optional_but_accepted(sim: Simulator) -> None:
    """With a WsServer context (as Home Assistant passes) the client still connects out."""
    (dev,) = await sim.start_shelly([ShellyOptions()])
    async with aiohttp.ClientSession() as session:
        rpc = await RpcDevice.create(
            session, WsServer(), ConnectionOptions(dev.host, port=dev.port)
        )
        try:
            await rpc.initialize()
            assert rpc.status["switch:0"]["output"] is True
        finally:
            await rpc.shutdown()


# -- the wire protocol without aioshelly: what the docs say, stricter where they are silent --


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _auth(dev: ShellyDevice, challenge: dict[str, Any], nc: int, password: str) -> dict[str, Any]:
    ha1 = _sha(f"admin:{dev.device_id}:{password}")
    ha2 = _sha("dummy_method:dummy_uri")
    cnonce = "abc"
    response = _sha(f"{ha1}:{challenge['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return {
        "realm": challenge["realm"],
        "username": "admin",
        "nonce": challenge["nonce"],
        "nc": nc,
        "cnonce": cnonce,
        "response": response,
        "algorithm": "SHA-256",
    }


async def test_http_rpc_get_post_and_digest(sim: Simulator) -> None:
    (open_dev, locked) = await sim.start_shelly(
        [ShellyOptions(model="pro-4pm"), ShellyOptions(password=PASSWORD)]
    )
    async with aiohttp.ClientSession() as s:
        base = f"http://{open_dev.host}:{open_dev.port}"
        async with s.get(f"{base}/rpc/Switch.GetStatus?id=3") as r:
            assert r.status == 200 and (await r.json())["id"] == 3
        async with s.get(f"{base}/rpc/Switch.GetStatus?id=4") as r:
            assert r.status != 200
        frame = {"id": 7, "src": "t", "method": "Sys.GetStatus"}
        async with s.post(f"{base}/rpc", json=frame) as r:
            body = await r.json()
            assert body["id"] == 7 and body["dst"] == "t" and "uptime" in body["result"]
        async with s.post(f"{base}/rpc", json={"id": 8, "method": "Sys.GetStatus"}) as r:
            assert "error" in await r.json()  # no src: refused (the docs require it)

        base = f"http://{locked.host}:{locked.port}"
        async with s.get(f"{base}/rpc/Shelly.GetDeviceInfo") as r:
            assert r.status == 200
        async with s.get(f"{base}/rpc/Shelly.GetStatus") as r:
            assert r.status == 401
            header = r.headers["WWW-Authenticate"]
            assert 'realm="' + locked.device_id in header and "SHA-256" in header
        # standard HTTP digest (aiohttp's client middleware speaks RFC 7616)
        auth = aiohttp.DigestAuthMiddleware("admin", PASSWORD)
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as ds,
            ds.get(f"{base}/rpc/Shelly.GetStatus") as r,
        ):
            assert r.status == 200 and "switch:0" in await r.json()
        # the RPC frame's auth object over POST
        frame = {"id": 1, "src": "t", "method": "Shelly.GetStatus"}
        async with s.post(f"{base}/rpc", json=frame) as r:
            assert r.status == 401
            challenge = json.loads((await r.json())["error"]["message"])
        assert challenge["realm"] == locked.device_id and challenge["algorithm"] == "SHA-256"
        good = {**frame, "auth": _auth(locked, challenge, 1, PASSWORD)}
        async with s.post(f"{base}/rpc", json=good) as r:
            assert r.status == 200
        async with s.post(f"{base}/rpc", json=good) as r:
            assert r.status == 401  # the same nc again: a replay
        again = {**frame, "auth": _auth(locked, challenge, 2, PASSWORD)}
        async with s.post(f"{base}/rpc", json=again) as r:
            assert r.status == 200  # firmware 2.0: the nonce serves again with a higher nc
        wrong_realm = {**again, "auth": {**_auth(locked, challenge, 3, PASSWORD), "realm": "x"}}
        async with s.post(f"{base}/rpc", json=wrong_realm) as r:
            assert r.status == 401
        locked.clock.advance(3601)
        late = {**frame, "auth": _auth(locked, challenge, 4, PASSWORD)}
        async with s.post(f"{base}/rpc", json=late) as r:
            assert r.status == 401
            assert json.loads((await r.json())["error"]["message"])["stale"] is True


async def test_config_dict_lists_shelly_devices(sim: Simulator) -> None:
    assert sim.config_dict()["devices"] == []
    (dev,) = await sim.start_shelly([ShellyOptions(model="pro-4pm")])
    (entry,) = sim.config_dict()["devices"]
    assert entry["vendor"] == "shelly" and entry["device_id"] == dev.mac
    assert entry["shelly"] == {"host": f"{dev.host}:{dev.port}"}
    assert set(entry) == {"device_id", "room", "shelf", "device", "vendor", "shelly"}


async def test_serve_starts_shelly_beside_plugs() -> None:
    """`otelpower sim --shelly pro-4pm`: the table and the config list it after the plugs."""
    text = await served(
        [PROFILES["p110_klap"]], state=None, shelly=["pro-4pm"], shelly_password=PASSWORD
    )
    table, _, config = text.partition("\n\n")
    assert "SPSW-104PE16EU" in table and "Shelly RPC" in table
    devices = yaml.safe_load(config)["devices"]
    assert [d.get("vendor") for d in devices] == [None, "shelly"]
    host = devices[1]["shelly"]["host"]
    assert list(devices[1]["shelly"]) == ["host"] and host.count(":") == 1


def test_cli_knows_every_model() -> None:
    from otelpower.sim.command import SHELLY_MODELS
    from otelpower.sim.shelly import MODELS

    assert set(SHELLY_MODELS) == set(MODELS)


async def test_serve_refuses_unknown_shelly_model() -> None:
    with pytest.raises(ValueError, match="unknown Shelly model"):
        async with asyncio.timeout(10):
            await serve(
                [PROFILES["p110_klap"]], state=None, shelly=["plug-9000"], out=io.StringIO()
            )
