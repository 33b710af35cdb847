"""Profile loading and the request handling that does not need sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otelpower.sim import load_profile
from otelpower.sim.device import DeviceModel

from .conftest import PROFILES

EXPECTED = {
    "p110_klap": ("smart", "P110(EU)", "KLAP v2", 0),
    "p110_aes": ("smart", "P110(EU)", "AES", 0),
    "kp115_xor": ("iot", "KP115(EU)", "XOR", 0),
    "ep25_klap": ("iot", "EP25(US)", "KLAP v1", 0),
    "hs300_xor": ("iot", "HS300(US)", "XOR", 6),
    "p304m_klap": ("smart", "P304M(UK)", "KLAP v2", 3),
    "p110_tpap": ("smart", "P110(EU)", "TPAP", 0),
}


def test_builtin_profiles_classified() -> None:
    assert set(PROFILES) == set(EXPECTED)
    for name, (family, model, transport, children) in EXPECTED.items():
        p = load_profile(PROFILES[name])
        assert (p.family, p.model, p.transport, len(p.children)) == (
            family,
            model,
            transport,
            children,
        )


def test_iot_klap_lv2_is_klap_v2(tmp_path: Path) -> None:
    data = json.loads(PROFILES["ep25_klap"].read_text())
    data["discovery_result"]["result"]["mgt_encrypt_schm"]["lv"] = 2
    path = tmp_path / "ep25_lv2.json"
    path.write_text(json.dumps(data))
    assert load_profile(path).transport == "KLAP v2"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "cannot read JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"foo": {}}', "neither SMART"),
        (
            '{"system": {"get_sysinfo": {"model": "HS100(EU)", "type": "IOT.SMARTPLUGSWITCH"}}}',
            "emeter",
        ),
    ],
)
def test_bad_profile_names_file(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=needle) as info:
        load_profile(path)
    assert "broken.json" in str(info.value)


def _model(name: str, static: bool = True) -> DeviceModel:
    return DeviceModel(
        load_profile(PROFILES[name]),
        mac="48:22:54:01:02:03",
        host="127.9.9.9",
        index=1,
        static=static,
    )


def test_smart_unknown_method_and_batch_stops_at_error() -> None:
    dev = _model("p110_klap")
    assert dev.handle({"method": "get_nothing"}) == {"error_code": -1002}
    reply = dev.handle(
        {
            "method": "multipleRequest",
            "params": {
                "requests": [
                    {"method": "get_device_info"},
                    {"method": "get_nothing"},
                    {"method": "get_energy_usage"},
                ]
            },
        }
    )
    responses = reply["result"]["responses"]
    assert [r["method"] for r in responses] == ["get_device_info", "get_nothing"]
    assert responses[1]["error_code"] == -1002
    info = responses[0]["result"]
    assert info["mac"] == "48-22-54-01-02-03" and info["ip"] == "127.9.9.9"


def test_smart_relay_off_zeroes_power() -> None:
    dev = _model("p110_klap", static=False)
    assert dev.readings()["power_w"] > 0
    assert (
        dev.handle({"method": "set_device_info", "params": {"device_on": False}})["error_code"] == 0
    )
    assert dev.readings()["power_w"] == 0 and not dev.readings()["relay_on"]
    assert dev.handle({"method": "get_emeter_data"})["result"]["power_mw"] == 0
    assert dev.handle({"method": "get_device_info"})["result"]["device_on"] is False


def test_smart_v1_has_no_emeter_data() -> None:
    dev = _model("p110_aes")
    assert dev.handle({"method": "get_emeter_data"})["error_code"] == -1002


def test_iot_unknown_module_and_sysinfo_identity() -> None:
    dev = _model("hs300_xor")
    reply = dev.handle({"nosuch": {"get_x": {}}, "system": {"get_sysinfo": {}}})
    assert reply["nosuch"] == {"err_code": -1, "err_msg": "module not support"}
    info = reply["system"]["get_sysinfo"]
    assert info["mac"] == "48:22:54:01:02:03"
    ids = [c["id"] for c in info["children"]]
    assert ids == [f"{dev.device_id}{i:02d}" for i in range(6)]


def test_live_energy_grows_and_sine_is_deterministic() -> None:
    from otelpower.sim.loadcurve import LoadCurve

    a, b = LoadCurve(60, 230, seed=7), LoadCurve(60, 230, seed=7)
    assert [a.power(t) for t in range(0, 1000, 37)] == [b.power(t) for t in range(0, 1000, 37)]
    assert all(30 < a.power(t) < 90 for t in range(0, 4000, 13))
    # One hour at roughly the base load is roughly 60 Wh.
    assert 45 < a.energy_wh(0, 3600) < 75


def test_meter_energy_counts_only_while_on() -> None:
    from otelpower.sim.loadcurve import LoadCurve, Meter

    now = [1_000_000.0]
    meter = Meter(LoadCurve(100, 230, seed=1), start_wh=5.0, on=True, clock=lambda: now[0])
    now[0] += 3600
    after_hour = meter.sample().energy_wh
    assert 5 + 60 < after_hour < 5 + 140
    meter.set_on(False)
    now[0] += 3600
    off = meter.sample()
    assert (off.power_w, off.current_a, off.energy_wh, off.on) == (0, 0, after_hour, False)
    meter.set_on(True)
    now[0] += 1800
    assert meter.sample().energy_wh > after_hour + 20
