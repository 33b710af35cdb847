"""Plugs the config does not list: found by discovery, exported under their own name (alias),
in room and shelf "unassigned". Real python-kasa and tapo clients against emulated plugs."""

from __future__ import annotations

from harness.promtext import find, scrape
from harness.wait import wait_for
from otelpower import app
from otelpower.sim import PlugOptions, TpapOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
ENV = {"KASA_USERNAME": "owner@example.com", "KASA_PASSWORD": "right-pass"}
LOCAL = {"host": "127.0.0.1", "port": 0}


def _plugs() -> list[PlugOptions]:
    login = {"username": ENV["KASA_USERNAME"], "password": ENV["KASA_PASSWORD"]}
    return [
        PlugOptions(PROFILES["kp115_xor"]),
        PlugOptions(PROFILES["p110_klap"], **login),
        PlugOptions(PROFILES["p110_tpap"], transport="TPAP", tpap=TpapOptions(), **login),
    ]


def _power_labels(port: int) -> dict[str, dict[str, str]]:
    """device_id -> the labels of its power series."""
    return {dict(k)["device_id"]: dict(k) for k in find(scrape(port), "tplink_native_power_watts")}


async def test_no_devices_listed_exports_every_plug_by_its_alias(simulator) -> None:
    plugs = await simulator.start(_plugs())
    targets = [p.host for p in plugs]
    config = make_config({"discovery": {"targets": targets}}, ENV, prometheus=LOCAL)
    assert not config.devices_listed
    async with app.Runtime(config, "native") as runtime:
        port = runtime.prometheus_port
        await wait_for(
            lambda: (
                {mac: labels["device"] for mac, labels in _power_labels(port).items()}
                == {p.mac: p.alias for p in plugs}
            ),
            timeout=30,
            what="every plug exported under its alias",
        )
        for labels in _power_labels(port).values():
            assert labels["room"] == labels["shelf"] == "unassigned"
            assert labels["house"] == "home"
        info = {
            dict(k)["device_id"]: dict(k) for k in find(scrape(port), "tplink_native_device_info")
        }
        assert {mac: i["alias"] for mac, i in info.items()} == {p.mac: p.alias for p in plugs}


async def test_a_listed_inventory_adopts_only_when_asked(simulator) -> None:
    plugs = await simulator.start(_plugs()[:2])
    data = simulator.config_dict()
    data["devices"] = data["devices"][:1]  # the file lists the first plug only
    listed, unlisted = plugs
    for adopt, expected in ((None, {listed.mac}), (True, {listed.mac, unlisted.mac})):
        discovery = {**data["discovery"], **({} if adopt is None else {"adopt": adopt})}
        config = make_config({**data, "discovery": discovery}, ENV, prometheus=LOCAL)
        async with app.Runtime(config, "native") as runtime:
            port = runtime.prometheus_port
            await wait_for(lambda p=port, e=expected: set(_power_labels(p)) == e, timeout=30)
            labels = _power_labels(port)
            assert labels[listed.mac]["device"] == data["devices"][0]["device"]  # the file's
            if unlisted.mac in expected:
                assert labels[unlisted.mac]["device"] == unlisted.alias
            else:
                # no series at all for it, not even up or status
                assert not [lbl for _, lbl in scrape(port) if ("device_id", unlisted.mac) in lbl]
