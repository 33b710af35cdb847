"""``otelpower read``'s text output: words a person reads, not Python values."""

from __future__ import annotations

from otelpower.readers.native.commands import reading_lines

VALUES = {
    "power_w": 12.5,
    "voltage_v": 230.1,
    "current_a": 0.061,
    "energy_today_kwh": 0.2,
    "energy_month_kwh": 3.4,
    "energy_total_kwh": 56.7,
    "relay_on": True,
}
ABSENT = dict.fromkeys(VALUES)


def _result(**over: object) -> dict:
    base = {"model": "P110", "alias": "Desk", "mac": "48:22:54:01:02:03", "firmware": "1.2.3"}
    return {**VALUES, **base, "transport": "KLAP", **over}


def test_a_plug_reads_in_words() -> None:
    lines = reading_lines(_result())
    assert lines[0] == "'Desk': P110 48:22:54:01:02:03 (KLAP, firmware 1.2.3)"
    assert " ".join(lines[1].split()) == (
        "power 12.5 W voltage 230.1 V current 0.061 A today 0.2 kWh month 3.4 kWh"
        " total 56.7 kWh relay on"
    )


def test_absent_values_read_n_a_and_an_open_relay_off() -> None:
    lines = reading_lines(_result(**{**ABSENT, "relay_on": False}, firmware=None, alias=None))
    assert lines[0] == "P110 48:22:54:01:02:03 (KLAP, firmware n/a)"
    assert "power n/a  voltage n/a  current n/a  today n/a" in lines[1]
    assert lines[1].endswith("relay off")
    assert "relay n/a" in reading_lines(_result(relay_on=None))[1]


def test_no_python_values_in_a_strip() -> None:
    outlets = [{**VALUES, "relay_on": False}, {**ABSENT}]
    lines = reading_lines(_result(outlets=outlets))
    assert len(lines) == 4
    assert lines[2].lstrip().startswith("outlet 1") and lines[2].endswith("relay off")
    assert lines[3].lstrip().startswith("outlet 2") and lines[3].endswith("relay n/a")
    text = "\n".join(lines)
    for python in ("True", "False", "None", " - "):
        assert python not in text
