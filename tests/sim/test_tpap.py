"""TPAP conformance: the unmodified ``tapo`` client and python-kasa <-> the emulator's TPAP side."""

from __future__ import annotations

import pytest
import tapo
from kasa import Discover
from kasa.exceptions import UnsupportedDeviceError

from otelpower.readers.native.errors import TapoError
from otelpower.sim import Fault, PlugOptions, TpapOptions

from .conftest import PROFILES
from .helpers import served

PASSWORD = "right-pass"


def tpap(profile: str = "p110_tpap", **options) -> PlugOptions:
    return PlugOptions(
        PROFILES[profile], password=PASSWORD, transport="TPAP", tpap=TpapOptions(**options)
    )


def address(plug) -> str:
    return f"{plug.host}:{plug.port}"


async def kind_of(awaitable) -> str:
    with pytest.raises(Exception) as caught:
        await awaitable
    return TapoError(str(caught.value)).kind


@pytest.mark.parametrize("tls", [0, 1])
async def test_tapo_client_logs_in_and_reads(sim, tls: int) -> None:
    (plug,) = await sim.start([tpap(tls=tls)])
    handler = await tapo.ApiClient("owner@example.com", PASSWORD, 5).p110(address(plug))
    info = await handler.get_device_info_json()
    assert info["mac"].replace("-", ":").lower() == plug.mac
    usage = (await handler.get_energy_usage()).to_dict()
    assert usage["current_power"] > 0 and usage["today_energy"] >= 0
    assert plug.logins == 1 and len(plug.server.sessions) == 1
    assert (plug.server.tls_connections > 0) is bool(tls)


async def test_python_kasa_sees_the_plug_as_tpap(sim) -> None:
    (plug,) = await sim.start([tpap()])
    with pytest.raises(UnsupportedDeviceError) as caught:
        await Discover.discover_single(plug.host, discovery_timeout=3, timeout=3)
    assert caught.value.discovery_result["mgt_encrypt_schm"]["encrypt_type"] == "TPAP"


async def test_every_client_error_kind_is_recognised(sim) -> None:
    """Each kind provoked from the unmodified client: a rewording upstream fails here."""
    plug, locking, cloud, strip, gone, expiring = await sim.start(
        [
            tpap(),
            tpap(lock_after=2),
            tpap(tls=2),
            tpap("p304m_klap"),
            tpap(),
            tpap(session_ttl_s=0),
        ]
    )
    right = tapo.ApiClient("owner@example.com", PASSWORD, 5)
    wrong = tapo.ApiClient("owner@example.com", "wrong-pass", 5)
    assert await kind_of(wrong.p110(address(plug))) == "credentials"
    assert plug.server.failed_in_a_row == 1 and not plug.server.locked
    assert await kind_of(wrong.p110(address(locking))) == "credentials"
    assert await kind_of(wrong.p110(address(locking))) == "locked"
    assert await kind_of(right.p110(address(locking))) == "locked"  # even the right password
    assert await kind_of(right.p110(address(cloud))) == "unsupported"
    handler = await right.p110(address(plug))
    plug.drop_sessions()
    assert await kind_of(handler.get_device_info_json()) == "session"  # TPAP_SESSION_INVALID
    expired = await right.p110(address(expiring))
    assert await kind_of(expired.get_device_info_json()) == "session"  # 401: SESSION_TIMEOUT
    power_strip = await right.p304(address(strip))
    children = (await power_strip.get_child_device_list_json())["child_device_list"]
    outlet = await power_strip.plug_unchecked(children[0]["device_id"])
    assert await kind_of(outlet.get_energy_usage()) == "reply"  # no local_time, as real P304M
    await gone.set_fault(Fault.OFFLINE)
    assert await kind_of(right.p110(address(gone))) == "offline"
    await gone.set_fault(Fault.SLOW)
    gone.slow_s = 5
    assert await kind_of(tapo.ApiClient("", PASSWORD, 1).p110(address(gone))) == "timeout"


async def test_sim_serves_every_tapo_profile_over_tpap_on_request() -> None:
    profiles = [PROFILES["p110_klap"], PROFILES["kp115_xor"]]
    text = await served(profiles, 0, True, None, "", PASSWORD, tpap_tls=1)
    rows = [line.split() for line in text.splitlines()[1:3]]
    assert [(r[3], r[4]) for r in rows] == [("P110(EU)", "TPAP"), ("KP115(EU)", "XOR")]
