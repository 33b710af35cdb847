"""The unmodified python-kasa client against emulated plugs over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml
from kasa import Credentials, Device, Discover
from kasa.exceptions import AuthenticationError, KasaException

from otelpower.sim import Fault, PlugOptions, Simulator, load_profile

from .conftest import PROFILES
from .helpers import discovered, energy, has_vi, served

TRANSPORT_CLASS = {
    "KLAP v2": "KlapTransportV2",
    "KLAP v1": "KlapTransport",
    "AES": "AesTransport",
    "XOR": "XorTransport",
}
OWNER = Credentials("owner@example.com", "s3cret-Pa55")


@pytest.mark.parametrize("name", sorted(n for n in PROFILES if not n.endswith("_tpap")))
async def test_builtin_profile_static(sim: Simulator, name: str) -> None:
    """discover_single + update; readings equal the profile; reconnect without discovery.

    (TPAP profiles: python-kasa cannot log in; tests/sim/test_tpap.py has the tapo client.)"""
    (plug,) = await sim.start([PlugOptions(profile=PROFILES[name], static=True)])
    profile = load_profile(PROFILES[name])
    async with discovered(plug) as dev:
        assert type(dev.protocol._transport).__name__ == TRANSPORT_CLASS[plug.transport]
        assert dev.mac.lower() == plug.mac
        truth = plug.readings()
        if profile.children:
            assert len(dev.children) == len(truth["outlets"]) == len(plug.children)
            pairs = list(zip(dev.children, truth["outlets"], strict=True))
        else:
            pairs = [(dev, truth)]
        for target, want in pairs:
            e = energy(target)
            assert e.current_consumption == pytest.approx(want["power_w"])
            assert has_vi(e) == (plug.transport != "AES")  # the AES profile is energy v1
            if has_vi(e):
                assert e.voltage == pytest.approx(want["voltage_v"])
                assert e.current == pytest.approx(want["current_a"], abs=1e-3)
        config = dev.config
    again = await Device.connect(config=config)
    try:
        assert again.mac.lower() == plug.mac
        assert energy(again.children[0] if again.children else again).current_consumption == (
            pytest.approx(pairs[0][1]["power_w"])
        )
    finally:
        await again.disconnect()


async def test_static_values_are_the_profile_values(sim: Simulator) -> None:
    """Independent of the emulator's own readings(): numbers straight from the JSON."""
    k, x, a = await sim.start(
        [
            PlugOptions(profile=PROFILES[n], static=True)
            for n in ("p110_klap", "kp115_xor", "p110_aes")
        ]
    )
    async with discovered(k) as dev:
        e = energy(dev)
        assert (e.current_consumption, e.voltage, e.current) == (48.25, 231.42, 0.231)
        assert e.consumption_today == 0.412 and e.consumption_this_month == 1.812
    async with discovered(x) as dev:
        e = energy(dev)
        assert (e.current_consumption, e.voltage, e.current) == (35.42, 229.87, 0.158)
        assert e.consumption_total == 28.64
    async with discovered(a) as dev:
        assert energy(dev).current_consumption == 12.73


async def test_live_readings_follow_the_curve(sim: Simulator) -> None:
    plugs = await sim.start(
        [PlugOptions(profile=PROFILES[n]) for n in ("p110_klap", "kp115_xor", "ep25_klap")]
    )
    for plug in plugs:
        async with discovered(plug) as dev:
            e, truth = energy(dev), plug.readings()
            assert truth["power_w"] > 1
            # The curve is sampled once a second; allow for a tick between the two reads.
            assert e.current_consumption == pytest.approx(truth["power_w"], rel=0.05)
            nominal = 120 if "(US)" in plug.model else 230
            assert e.voltage == pytest.approx(nominal, rel=0.02)
            assert e.current == pytest.approx(truth["power_w"] / truth["voltage_v"], rel=0.06)
            await dev.turn_off()
            await dev.update()
            assert not plug.readings()["relay_on"] and plug.readings()["power_w"] == 0
            assert energy(dev).current_consumption == 0
            await dev.turn_on()
            await dev.update()
            assert energy(dev).current_consumption > 1


@pytest.mark.parametrize("name", ["p110_klap", "p110_aes", "p110_aes_lv2", "ep25_klap"])
async def test_owner_credentials(sim: Simulator, name: str, tmp_path: Path) -> None:
    profile = PROFILES.get(name)
    if profile is None:  # AES with login v2 (sha1 password2), as on P110 firmware 1.2.x
        data = json.loads(PROFILES["p110_aes"].read_text())
        data["discovery_result"]["result"]["mgt_encrypt_schm"]["lv"] = 2
        profile = tmp_path / f"{name}.json"
        profile.write_text(json.dumps(data))
    (plug,) = await sim.start(
        [PlugOptions(profile=profile, username=OWNER.username, password=OWNER.password)]
    )
    wrong = Credentials(OWNER.username, "wrong")
    with pytest.raises(AuthenticationError):
        async with discovered(plug, wrong):
            pass
    async with discovered(plug, OWNER) as dev:
        assert energy(dev).current_consumption > 0
    plug.set_credentials("new@example.com", "other")
    with pytest.raises(AuthenticationError):
        async with discovered(plug, OWNER):
            pass
    async with discovered(plug, Credentials("new@example.com", "other")) as dev:
        assert dev.mac.lower() == plug.mac


async def test_hs300_outlets_have_their_own_meters(sim: Simulator) -> None:
    (plug,) = await sim.start([PlugOptions(profile=PROFILES["hs300_xor"])])
    async with discovered(plug) as dev:
        outlets = plug.readings()["outlets"]
        assert [c.alias for c in dev.children] == [o["alias"] for o in outlets]
        powers = [energy(c).current_consumption for c in dev.children]
        for got, want in zip(powers, outlets, strict=True):
            assert got == pytest.approx(want["power_w"], rel=0.05, abs=1e-3)
        assert powers[3] == 0 and not dev.children[3].is_on  # outlet 4 is off in the profile
        on = [p for p in powers if p]
        assert len(set(on)) == len(on) == 5  # every outlet has its own curve
        await dev.children[0].turn_off()
        await dev.update()
        assert energy(dev.children[0]).current_consumption == 0
        assert plug.readings()["outlets"][0]["relay_on"] is False


async def test_p304m_outlets_through_control_child(sim: Simulator) -> None:
    (plug,) = await sim.start([PlugOptions(profile=PROFILES["p304m_klap"])])
    async with discovered(plug) as dev:
        outlets = plug.readings()["outlets"]
        for child, want in zip(dev.children, outlets, strict=True):
            assert energy(child).current_consumption == pytest.approx(
                want["power_w"], rel=0.05, abs=1e-3
            )
        await dev.children[1].turn_on()
        assert plug.readings()["outlets"][1]["relay_on"] is True


@pytest.mark.parametrize("name", ["p110_klap", "p110_aes", "kp115_xor"])
async def test_drop_sessions_rehandshakes(sim: Simulator, name: str) -> None:
    (plug,) = await sim.start([PlugOptions(profile=PROFILES[name], static=True)])
    async with discovered(plug) as dev:
        plug.drop_sessions()
        async with asyncio.timeout(8):
            await dev.update()
        assert energy(dev).current_consumption == pytest.approx(plug.readings()["power_w"])


@pytest.mark.parametrize("name", ["kp115_xor", "p110_klap"])
async def test_offline_then_back(sim: Simulator, name: str) -> None:
    (plug,) = await sim.start([PlugOptions(profile=PROFILES[name], static=True)])
    async with discovered(plug) as dev:
        config = dev.config
        await plug.set_fault(Fault.OFFLINE)
        started = time.monotonic()
        with pytest.raises(KasaException):
            async with asyncio.timeout(20):
                await dev.update()
        assert time.monotonic() - started < 20
    with pytest.raises((KasaException, TimeoutError)):
        await Discover.discover_single(plug.host, port=plug.port, discovery_timeout=1)
    await plug.set_fault(Fault.NONE)
    again = await Device.connect(config=config)
    try:
        assert again.mac.lower() == plug.mac
    finally:
        await again.disconnect()


async def test_fault_setter_takes_effect_next_request(sim: Simulator) -> None:
    (plug,) = await sim.start([PlugOptions(profile=PROFILES["kp115_xor"])])
    async with discovered(plug) as dev:
        plug.fault = Fault.OFFLINE  # synchronous setter, sockets close in the background
        with pytest.raises(KasaException):
            await dev.update()
        plug.fault = Fault.NONE
        await plug.settle()
        await dev.update()


async def test_garbage_and_slow(sim: Simulator) -> None:
    k, x = await sim.start(
        [PlugOptions(profile=PROFILES[n], static=True) for n in ("p110_klap", "kp115_xor")]
    )
    for plug in (k, x):
        plug.slow_s = 0.3
        await plug.set_fault(Fault.SLOW)
        started = time.monotonic()
        async with discovered(plug) as dev:
            assert time.monotonic() - started >= 0.3
            await plug.set_fault(Fault.GARBAGE)
            with pytest.raises(KasaException):
                async with asyncio.timeout(15):
                    await dev.update()
        await plug.set_fault(Fault.NONE)


async def test_latency(sim: Simulator) -> None:
    (plug,) = await sim.start([PlugOptions(profile=PROFILES["kp115_xor"], latency_s=0.2)])
    async with discovered(plug) as dev:
        started = time.monotonic()
        await dev.update()
        assert time.monotonic() - started >= 0.2


async def test_move_to(sim: Simulator) -> None:
    plugs = await sim.start([PlugOptions(profile=PROFILES[n]) for n in ("p110_klap", "kp115_xor")])
    for plug in plugs:
        old, port = plug.host, plug.port
        new = f"{sim.block}.{200 + plugs.index(plug)}"
        await plug.move_to(new)
        assert (plug.host, plug.port) == (new, port)
        async with discovered(plug) as dev:
            assert dev.host == new and dev.mac.lower() == plug.mac
        with pytest.raises((KasaException, TimeoutError)):
            await Discover.discover_single(old, port=port, discovery_timeout=1)


async def test_discover_without_port(sim: Simulator) -> None:
    """Broadcast-style discovery to the plug's address: 20002/20004 for KLAP/AES, 9999 XOR."""
    plugs = await sim.start(
        [
            PlugOptions(profile=PROFILES[n])
            for n in ("p110_klap", "p110_aes", "kp115_xor", "ep25_klap", "hs300_xor")
        ]
    )

    async def one(plug):  # type: ignore[no-untyped-def]
        found = await Discover.discover(target=plug.host, discovery_timeout=1)
        assert list(found) == [plug.host]
        dev = found[plug.host]
        try:
            await dev.update()  # XOR: TCP 9999 on the plug's address; others: http_port
            assert dev.mac.lower() == plug.mac
        finally:
            await dev.disconnect()

    await asyncio.gather(*(one(p) for p in plugs))


async def test_unique_identity_and_config(sim: Simulator) -> None:
    plugs = await sim.start([PlugOptions(profile=PROFILES["p110_klap"]) for _ in range(3)])
    assert len({p.mac for p in plugs}) == len({p.host for p in plugs}) == 3
    assert all(p.host.startswith(sim.block + ".") for p in plugs)
    assert not sim.block.startswith("127.0.0")
    cfg = sim.config_dict(house="home")
    assert cfg["house"] == "home"
    assert cfg["discovery"] == {"targets": [p.host for p in plugs]}
    assert cfg["devices"][0] == {
        "device_id": plugs[0].mac,
        "room": "lab",
        "shelf": "sim",
        "device": "p110-1",
        "native": {"host": plugs[0].host, "port": plugs[0].port},
    }
    async with Simulator() as other:  # a second simulator gets its own block
        assert other.block != sim.block


async def test_serve_prints_table_and_config() -> None:
    text = await served([], 2, True, None, "", "")
    assert "host" in text and "transport" in text
    cfg = yaml.safe_load(text[text.index("house:") :])
    assert len(cfg["devices"]) == 2
    assert {d["native"]["host"] for d in cfg["devices"]} == set(cfg["discovery"]["targets"])
