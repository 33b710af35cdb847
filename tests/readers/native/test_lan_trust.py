"""Whatever answers on the LAN is not believed on its word. The emulator plays both the honest
plug and the impostor (another loopback address, the same MAC), with the unmodified
python-kasa and tapo clients on real sockets: the impostor never receives the account's
password or anything derived from it, and the honest plug keeps reporting."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from harness.wait import wait_for
from otelpower.core.model import DeviceStatus
from otelpower.readers.native.errors import Untrusted
from otelpower.readers.native.links import Clients
from otelpower.readers.native.oneshot import discover_plugs
from otelpower.readers.native.opening import open_link
from otelpower.readers.native.reader import NativeReader
from otelpower.sim import EmulatedPlug, Fault, PlugOptions, builtin_profiles
from otelpower.sim.aes import AesServer
from otelpower.sim.klap import KlapServer
from tests.conftest import make_config
from tests.readers.native.test_freshness import running

PROFILES = {p.stem: p for p in builtin_profiles()}
ENV = {"KASA_USERNAME": "owner@example.com", "KASA_PASSWORD": "right-pass"}
OWNER = {"username": ENV["KASA_USERNAME"], "password": ENV["KASA_PASSWORD"]}


def _leaked(plug: EmulatedPlug) -> int:
    """What the device received that carries the password: AES login_device params, KLAP
    handshake2 bodies (an offline guess at the password hash)."""
    server = plug.server
    if isinstance(server, AesServer):
        return len(server.logins_received)
    if isinstance(server, KlapServer):
        return server.proofs_received
    return 0


def _fresh(reader: NativeReader, mac: str, within: float) -> bool:
    snap = reader.store.get(mac)
    return snap is not None and snap.up and time.time() - snap.updated_at <= within


async def test_a_new_aes_device_gets_no_password(simulator) -> None:
    """Zero-config run with the account set (README step 1): a device that answers discovery
    as an AES plug is not logged in to, and says what opting in takes; allow_aes reads it."""
    (impostor,) = await simulator.start([PlugOptions(PROFILES["p110_aes"])])  # takes any login
    data = {"discovery": {"targets": [impostor.host], "interval": 1}}
    reader = NativeReader(make_config(data, ENV))
    async with running(reader):
        await wait_for(lambda: reader.store.get(impostor.mac) is not None, timeout=20)
        snap = reader.store.get(impostor.mac)
        assert snap.status is DeviceStatus.UNSUPPORTED and "allow_aes" in snap.detail
    assert _leaked(impostor) == 0 and impostor.logins == 0
    # the user's opt-in, for plugs that only speak AES
    creds = {"credentials": {"allow_aes": True}}
    reader = NativeReader(make_config({**data, **creds}, ENV))
    async with running(reader):
        await wait_for(lambda: (s := reader.store.get(impostor.mac)) and s.up, timeout=20)
    assert _leaked(impostor) >= 1


async def test_discover_sends_no_password_to_aes(simulator) -> None:
    klap, aes = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"], **OWNER), PlugOptions(PROFILES["p110_aes"])]
    )
    clients = Clients(ENV["KASA_USERNAME"], ENV["KASA_PASSWORD"], 10)
    rows = {r["mac"]: r for r in await discover_plugs([klap.host, aes.host], 2, clients)}
    assert rows[klap.mac]["energy"] == "yes"  # KLAP proved itself first: read
    assert rows[aes.mac]["energy"].startswith("? (unsupported")
    assert _leaked(aes) == 0
    clients.allow_aes = True  # --allow-aes
    rows = {r["mac"]: r for r in await discover_plugs([aes.host], 2, clients)}
    assert rows[aes.mac]["energy"] == "yes" and _leaked(aes) >= 1


@pytest.mark.parametrize("impostor_profile", ["p110_aes", "p110_klap"])
async def test_a_listed_plug_is_not_moved_by_an_impostor(
    simulator, caplog: pytest.LogCaptureFixture, impostor_profile: str
) -> None:
    """A listed KLAP plug with its host in the file; another device answers discovery with
    its MAC (AES taking any login, or KLAP of another account): not moved, no password, no
    auth_failed or login gate; one WARNING names both addresses."""
    (honest,) = await simulator.start([PlugOptions(PROFILES["p110_klap"], **OWNER)])
    (impostor,) = await simulator.start(
        [
            PlugOptions(
                PROFILES[impostor_profile],
                mac=honest.mac,
                username="thief@example.com" if "klap" in impostor_profile else "",
                password="other-pass" if "klap" in impostor_profile else "",
            )
        ]
    )
    data = simulator.config_dict()
    data["devices"] = data["devices"][:1]
    data["discovery"] = {"targets": [impostor.host, honest.host], "interval": 1}
    config = make_config(data, ENV, poll={"interval": 0.3, "timeout": 2})
    reader = NativeReader(config, auth_retry_s=3600)
    caplog.set_level(logging.INFO, logger="otelpower")
    async with running(reader):
        await wait_for(lambda: _elsewhere(caplog, impostor.host), timeout=20)
        logins = honest.logins
        await wait_for(lambda: _fresh(reader, honest.mac, 0.3 + 2), timeout=10)
        polls = reader.store.get(honest.mac).updated_at
        await wait_for(lambda: reader.store.get(honest.mac).updated_at > polls + 1, timeout=10)
        assert _fresh(reader, honest.mac, 0.3 + 2)
        assert reader.store.get(honest.mac).status is DeviceStatus.OK
        # the impostor leaves: nothing changes for the listed plug
        await impostor.stop()
        polls = reader.store.get(honest.mac).updated_at
        await wait_for(lambda: reader.store.get(honest.mac).updated_at > polls, timeout=5)
        assert _fresh(reader, honest.mac, 0.3 + 2)
    assert _leaked(impostor) == 0
    assert impostor.logins == 0 or "klap" in impostor_profile  # a KLAP handshake1 is no secret
    assert honest.logins == logins, "the link to the honest plug was kept"
    assert len(_elsewhere(caplog, impostor.host)) == 1, "said once"
    assert not [r for r in caplog.records if "auth_failed" in r.getMessage()]


async def test_a_plug_found_by_discovery_returns_after_an_impostor(simulator, caplog) -> None:
    """A plug without a host in the file: while it is away, an impostor of another account
    answers with its MAC elsewhere. The move is provisional: the rejected login there is not
    the plug's auth_failed (no 30-minute gate), it goes back to where it last answered and is
    read there as soon as it is back."""
    (honest,) = await simulator.start([PlugOptions(PROFILES["p110_klap"], **OWNER)])
    (impostor,) = await simulator.start(
        [
            PlugOptions(
                PROFILES["p110_klap"],
                mac=honest.mac,
                username="thief@example.com",
                password="other-pass",
            )
        ]
    )
    await impostor.set_fault(Fault.OFFLINE)  # not there yet
    data = simulator.config_dict()
    data["devices"] = data["devices"][:1]
    data["devices"][0]["native"] = {"port": honest.port}
    data["discovery"] = {"targets": [honest.host, impostor.host], "interval": 1}
    reader = NativeReader(make_config(data, ENV), auth_retry_s=3600)
    caplog.set_level(logging.INFO, logger="otelpower")
    async with running(reader):
        await wait_for(lambda: (s := reader.store.get(honest.mac)) and s.up, timeout=20)
        # honest goes away; the impostor answers with its MAC (impostor listens on the
        # honest's port: the same port, another address)
        await honest.set_fault(Fault.OFFLINE)
        impostor.port = honest.port  # its sockets are closed (offline): opened on that port
        await impostor.set_fault(Fault.NONE)
        await wait_for(lambda: _moved(caplog, impostor.host), timeout=30)
        await wait_for(lambda: "back to" in reader.store.get(honest.mac).detail, timeout=20)
        assert reader.store.get(honest.mac).status is not DeviceStatus.AUTH_FAILED
        await honest.set_fault(Fault.NONE)
        await impostor.set_fault(Fault.OFFLINE)
        await wait_for(lambda: reader.store.get(honest.mac).up, timeout=20)
    assert _leaked(impostor) == 0
    assert not [r for r in caplog.records if "auth_failed" in r.getMessage()]


async def test_no_downgrade_to_aes_and_the_pin_holds(simulator) -> None:
    """A plug that logged in over KLAP and then answers as AES at the same address is not
    sent the password, even with allow_aes; a plug pinned to KLAP is never tried over
    anything else."""
    pinned, proven = await simulator.start(
        [PlugOptions(PROFILES["p110_klap"], **OWNER), PlugOptions(PROFILES["p110_klap"], **OWNER)]
    )
    data = simulator.config_dict()
    data["devices"][0]["native"]["transport"] = "klap"
    config = make_config({**data, "credentials": {"allow_aes": True}}, ENV)
    reader = NativeReader(config)
    try:
        await reader.poll_all()
        assert all(reader.store.get(p.mac).up for p in (pinned, proven))
        for plug in (pinned, proven):
            await plug.switch_transport("AES")
        for _ in range(3):
            await reader.poll_all()
        assert "native.transport is KLAP" in _detail(reader, pinned) or not _up(reader, pinned)
        assert "downgrade" in _detail(reader, proven), _detail(reader, proven)
        assert reader.store.get(proven.mac).status is DeviceStatus.UNSUPPORTED
    finally:
        await reader.close()
    assert _leaked(pinned) == _leaked(proven) == 0


def _detail(reader: NativeReader, plug: EmulatedPlug) -> str:
    return reader.store.get(plug.mac).detail


def _up(reader: NativeReader, plug: EmulatedPlug) -> bool:
    return reader.store.get(plug.mac).up


def _elsewhere(caplog: pytest.LogCaptureFixture, ip: str) -> list[Any]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and f"from {ip} says it is this plug" in r.getMessage()
    ]


def _moved(caplog: pytest.LogCaptureFixture, ip: str) -> bool:
    return any(f"found at {ip}" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("family", ["SMART.IPCAMERA", "SMART.TAPODOORBELL"])
async def test_a_reply_that_claims_a_camera_gets_no_login(simulator, family: str) -> None:
    """python-kasa logs in to cameras and doorbells over SslAesTransport (the account's
    email, then an MD5 of its password) whatever encrypt_type the reply names: a reply that
    claims one, even with KLAP, gets no login, and a port no socket can have ends nothing."""
    (impostor,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    real = impostor.device.discovery_result

    port = [impostor.port]

    def claimed(http_port: int) -> dict[str, Any]:
        reply = real(http_port)
        result = reply["result"]
        schm = {**result["mgt_encrypt_schm"], "http_port": port[0]}
        return {**reply, "result": {**result, "device_type": family, "mgt_encrypt_schm": schm}}

    impostor.device.discovery_result = claimed  # type: ignore[method-assign]
    with pytest.raises(Untrusted, match="not a plug"):
        await open_link(impostor.host, None, Clients(*ENV.values(), 4))
    port[0] = 70000  # python-kasa raises ValueError building its URL: one poll's error
    data = {"discovery": {"targets": [impostor.host], "interval": 1}}
    reader = NativeReader(make_config(data, ENV))
    async with running(reader):
        await wait_for(lambda: reader.forgotten, timeout=30, what="forgotten")
    assert impostor.logins == 0 and _leaked(impostor) == 0
    assert reader.store.get(impostor.mac) is None


async def test_default_klap_credentials_are_no_proof(simulator) -> None:
    """A KLAP device that proves only python-kasa's blank (or default) credentials, which
    anyone can compute, is not a plug of the account: never up, never sent handshake2, its
    status says why."""
    (impostor,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])  # blank owner
    data = {"discovery": {"targets": [impostor.host], "interval": 1}}
    reader = NativeReader(make_config(data, ENV))
    async with running(reader):
        await wait_for(lambda: reader.store.get(impostor.mac), timeout=30)
        snap = reader.store.get(impostor.mac)
    assert snap.status is DeviceStatus.AUTH_FAILED and "default or blank" in snap.detail
    assert _leaked(impostor) == 0
    # without an account configured, python-kasa's fallback reads such a plug as before
    reader = NativeReader(make_config(data))
    async with running(reader):
        await wait_for(lambda: (s := reader.store.get(impostor.mac)) and s.up, timeout=20)
