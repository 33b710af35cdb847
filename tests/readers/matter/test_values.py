"""Matter attribute values -> readings: units, nulls, endpoint layout, MAC matching. Pure."""

from __future__ import annotations

import base64

import pytest

from otelpower.readers.matter import values as mv

MAC = bytes.fromhex("482254aa0001")


def plug(**overrides) -> dict:
    attrs = {
        "0/40/1": "TP-Link",
        "0/40/3": "P110M",
        "0/40/15": "SN1",
        "0/40/10": "1.2.3",
        "0/51/0": [
            {"0": "lo", "4": base64.b64encode(bytes(6)).decode()},  # all-zero: skipped
            {"0": "wlan0", "4": base64.b64encode(MAC).decode()},
        ],
        "1/6/0": True,
        "1/29/3": [],
        "2/156/0": [1],  # PowerTopology AvailableEndpoints: measures endpoint 1
        "2/144/8": 12345,  # mW
        "2/144/4": 230100,  # mV
        "2/144/5": 53,  # mA
        "2/144/14": 50020,  # mHz
        "2/144/17": 9500,  # 95.00 %
        "2/145/1": {"0": 1_234_567, "1": 0},  # mWh
        "2/145/2": None,
    }
    attrs.update(overrides)
    return attrs


def test_units_are_normalised() -> None:
    (reading,) = mv.readings(plug())
    assert reading.outlet is None
    assert reading.values == pytest.approx(
        {
            "power_watts": 12.345,
            "voltage_volts": 230.1,
            "current_amperes": 0.053,
            "frequency_hertz": 50.02,
            "power_factor_ratio": 0.95,
            "energy_kilowatt_hours": 1.234567,
            "relay_on": 1.0,
        }
    )


def test_null_is_absent_never_zero() -> None:
    (reading,) = mv.readings(plug(**{"2/144/8": None, "2/144/5": None, "2/145/1": None}))
    assert "power_watts" not in reading.values
    assert "current_amperes" not in reading.values
    assert "energy_kilowatt_hours" not in reading.values


def test_rms_fallback_as_tapo_sends_it() -> None:
    attrs = plug(**{"2/144/11": 229000, "2/144/12": 40})
    del attrs["2/144/4"], attrs["2/144/5"]
    (reading,) = mv.readings(attrs)
    assert reading.values["voltage_volts"] == pytest.approx(229.0)
    assert reading.values["current_amperes"] == pytest.approx(0.04)


def test_two_outlets_with_their_relays() -> None:
    attrs = {
        "1/6/0": True,
        "2/6/0": False,
        "3/144/8": 1000,
        "3/156/0": [1],
        "4/144/8": 2000,
        "4/156/0": [2],
    }
    readings = mv.readings(attrs)
    assert [(r.outlet, r.values["power_watts"], r.values["relay_on"]) for r in readings] == [
        ("1", 1.0, 1.0),
        ("2", 2.0, 0.0),
    ]


def test_meter_on_the_relay_endpoint_itself() -> None:
    (reading,) = mv.readings({"1/6/0": False, "1/144/8": 0})
    assert reading.values == {"power_watts": 0.0, "relay_on": 0.0}


def test_mac_info_and_paths() -> None:
    attrs = plug()
    assert mv.hardware_addresses(attrs) == ["48:22:54:aa:00:01"]
    assert mv.device_info(attrs) == {
        "vendor": "TP-Link",
        "product": "P110M",
        "serial": "SN1",
        "firmware": "1.2.3",
    }
    paths = mv.fresh_paths(attrs)
    assert "2/144/8" in paths and "1/6/0" in paths and "2/145/1" in paths
    assert "2/144/11" not in paths  # not on this node
    assert mv.has_energy(attrs) and not mv.has_energy({"1/6/0": True})


def test_garbage_values_are_dropped() -> None:
    attrs = plug(**{"2/144/8": "lots", "2/145/1": [1], "0/51/0": "nope"})
    (reading,) = mv.readings(attrs)
    assert "power_watts" not in reading.values and "energy_kilowatt_hours" not in reading.values
    assert mv.hardware_addresses(attrs) == []
