"""docs/metrics.md's metric tables are what tools/metric_tables.py generates from the registry
and the quantity catalogue, name every metric as /metrics does, and follow a new reader's spec."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from harness.promtext import scrape_fresh
from otelpower.core import quantities
from otelpower.core.model import DeviceSnapshot, DeviceStatus, Reading, SnapshotStore
from otelpower.export.instruments import register_device_metrics
from otelpower.export.pipeline import make_resource, start_telemetry
from otelpower.readers import registry
from otelpower.readers.base import ReaderSpec

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    """tools/metric_tables.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "otelpower_metric_tables", ROOT / "tools" / "metric_tables.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tables = _load()


def _unstarted(*_: object) -> None:
    raise AssertionError("the docs never start a reader")


DUMMY = ReaderSpec(
    name="acmedocs",
    vendor="acme",
    protocol="acmedocs",
    description="a reader that exists only in this test",
    quantities=(quantities.POWER, quantities.ENERGY_TOTAL, quantities.FREQUENCY),
    create=_unstarted,  # type: ignore[arg-type]
)


@pytest.fixture
def dummy() -> Iterator[ReaderSpec]:
    registry.register(DUMMY)
    try:
        yield DUMMY
    finally:
        registry.unregister(DUMMY.name)


def test_readme_tables_are_up_to_date() -> None:
    ok, message = tables.check(ROOT / "docs" / "metrics.md")
    assert ok, message


def test_every_note_names_a_metric() -> None:
    assert tables.stale_notes(registry.specs()) == []


def test_a_stale_note_fails_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(tables.NOTES, ("native", "voltage_volt"), "a typo of a suffix")
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "docs" / "metrics.md").read_text())
    assert tables.main(["--check", "--readme", str(readme)]) == 1
    with pytest.raises(ValueError, match=r"NOTES\['native', 'voltage_volt'\]"):
        tables.render(readme.read_text())


def test_check_shows_a_diff_and_the_command(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    text = (ROOT / "docs" / "metrics.md").read_text()
    readme.write_text(text.replace("| `tplink_native_rssi_dbm` |", "| `tplink_native_rssi` |"))
    assert tables.main(["--check", "--readme", str(readme)]) == 1
    err = capsys.readouterr().err
    assert "-| `tplink_native_rssi` |" in err
    assert "+| `tplink_native_rssi_dbm` |" in err
    assert "run: make docs" in err
    assert tables.main(["--write", "--readme", str(readme)]) == 0
    assert readme.read_text() == text
    assert tables.main(["--check", "--readme", str(readme)]) == 0


def test_the_table_names_every_series_as_prometheus_shows_it() -> None:
    """Each reader's table rows are exactly its series on a real /metrics."""
    for spec in registry.specs():
        store = SnapshotStore()
        telemetry = start_telemetry(
            make_resource(house="h", protocol=spec.protocol, instance_id="h"),
            prometheus_host="127.0.0.1",
            prometheus_port=0,
            export_interval_s=60,
            environ={},
        )
        try:
            meter = telemetry.provider.get_meter("otelpower")
            register_device_metrics(
                meter,
                store,
                vendor=spec.vendor,
                protocol=spec.protocol,
                quantities=spec.quantities,
            )
            every = Reading({q.key: 0.5 if q.low >= 0 else -0.5 for q in spec.quantities})
            labels = {"house": "h", "room": "r", "shelf": "s", "device": "d", "device_id": "x"}
            store.put(DeviceSnapshot("x", labels, DeviceStatus.OK, {"model": "m"}, (every,)))
            shown = {name for name, _ in scrape_fresh(telemetry) if name.startswith(spec.prefix)}
        finally:
            telemetry.shutdown()
        assert shown == {row.name for row in tables.rows(spec)}, spec.name
        documented = tables.table(spec)
        for name in shown:
            assert f"| `{name}` |" in documented


def test_a_new_reader_gets_its_table_from_its_spec(dummy: ReaderSpec) -> None:
    text = tables.table(dummy)
    assert "| `acme_acmedocs_power_watts` | W | Active power |" in text
    assert "| `acme_acmedocs_energy_kilowatt_hours_total` | kWh | Energy counter (kWh) |" in text
    assert "| `acme_acmedocs_frequency_hertz` | Hz |" in text
    for suffix in ("up", "device_info", "device_status"):
        assert f"| `acme_acmedocs_{suffix}` |" in text
    assert "label `status`: `pending`" in text  # the notes every reader shares
    assert "tplink" not in text and "voltage" not in text

    # README must have a place for it, and gets its table there
    readme = (ROOT / "docs" / "metrics.md").read_text()
    with pytest.raises(ValueError, match="no table for reader acmedocs"):
        tables.render(readme)
    placed = readme + "\n<!-- metrics:acmedocs:begin -->\n<!-- metrics:acmedocs:end -->\n"
    assert text in tables.render(placed)


def test_a_reader_of_any_maker_names_every_maker_prefix(dummy: ReaderSpec) -> None:
    """The Matter table says its prefix is the device's maker, the new one included."""
    (matter,) = [s for s in registry.specs() if s.any_vendor]
    intro = " ".join(tables.table(matter).split("\n\n")[0].split())
    assert f"`{matter.prefix}*`" in intro
    assert f"`acme_{matter.protocol}_*`" in intro
    assert f"`other_{matter.protocol}_*`" in intro
    assert "`vendor:`" in intro
