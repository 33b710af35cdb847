"""Shelly Gen2+ status replies as readings (pure logic: shapes from Shelly's API docs)."""

from __future__ import annotations

import pytest

from otelpower.readers.shelly import settings, values

PLUG = {  # Plus Plug S / Plug S Gen3: one metered relay
    "sys": {"uptime": 1234},
    "wifi": {"rssi": -58},
    "switch:0": {
        "id": 0,
        "output": True,
        "apower": 42.5,
        "voltage": 230.1,
        "current": 0.19,
        "aenergy": {"total": 12345.6, "by_minute": [1, 2, 3], "minute_ts": 1700000000},
        "temperature": {"tC": 41.2, "tF": 106.2},
    },
}


def test_a_single_channel_plug_is_one_reading_without_outlet() -> None:
    (reading,) = values.readings(PLUG)
    assert reading.outlet is None and not reading.dropped
    assert reading.values == pytest.approx(
        {
            "power_watts": 42.5,
            "voltage_volts": 230.1,
            "current_amperes": 0.19,
            "energy_kilowatt_hours": 12.3456,
            "relay_on": 1.0,
            "temperature_celsius": 41.2,
            "rssi_dbm": -58.0,
        }
    )


def test_a_four_channel_device_is_read_per_outlet_and_absent_stays_absent() -> None:
    status = {
        f"switch:{i}": {
            "output": i % 2 == 0,
            "apower": 10.0 * i,
            "voltage": 229.0,
            "freq": 50.0,
            "pf": 0.9,
            "aenergy": {"total": 1000.0 * i},
            "ret_aenergy": {"total": 5.0},
        }
        for i in range(4)
    }
    status["input:0"] = {"state": False}  # not a channel
    found = values.readings(status)
    assert [r.outlet for r in found] == ["1", "2", "3", "4"]
    assert found[2].values["power_watts"] == 20.0 and found[2].values["relay_on"] == 1.0
    assert found[1].values["energy_exported_kilowatt_hours"] == 0.005
    assert "current_amperes" not in found[0].values  # the model did not send it: never 0


def test_nonsense_is_dropped_and_counted_not_exported() -> None:
    status = {"switch:0": {"apower": "lots", "voltage": None, "aenergy": {"total": -5}}}
    (reading,) = values.readings(status)
    assert "power_watts" not in reading.values and "voltage_volts" not in reading.values
    assert {d.key for d in reading.dropped} == {"power_watts", "energy_kilowatt_hours"}


def test_a_relay_without_a_meter_is_no_channel() -> None:
    assert values.readings({"switch:0": {"output": True}}) == ()


def test_device_info_and_host_forms() -> None:
    shelly = {"model": "SNPL-00112EU", "gen": 2, "ver": "1.4.4", "mac": "AABBCCDDEEFF"}
    assert values.device_info(shelly, "Desk") == {
        "model": "SNPL-00112EU",
        "generation": "2",
        "firmware": "1.4.4",
        "alias": "Desk",
    }
    assert settings.split_host("10.0.0.5") == ("10.0.0.5", 80)
    assert settings.split_host("10.0.0.5:8080") == ("10.0.0.5", 8080)
    assert settings.split_host("[fe80::1]:81") == ("fe80::1", 81)
    for bad in ("10.0.0.5:0", "10.0.0.5:x", ":80"):
        try:
            settings.split_host(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_the_password_file_is_read_like_the_tplink_one(tmp_path, caplog) -> None:
    """shelly.password_file shares the secret-file rules (config.fields.secret_file): read
    and stripped; missing is a warning and SHELLY_PASSWORD stands; not UTF-8 is a problem."""
    from otelpower.config import ConfigError
    from otelpower.readers.registry import load_config

    def config(file) -> str:
        path = tmp_path / "c.yaml"
        path.write_text(f"shelly: {{password_file: {file}}}\n")
        return str(path)

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert settings.auth(load_config(config(secret), {})).password == "s3cret"
    absent = load_config(config(tmp_path / "absent"), {"SHELLY_PASSWORD": "env"})
    assert settings.auth(absent).password == "env"
    assert "shelly.password_file" in caplog.text and "does not exist" in caplog.text
    secret.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(config(secret), {})
