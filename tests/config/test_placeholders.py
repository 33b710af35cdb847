"""`otelpower check` warns about each CHANGE-ME that `discover`'s snippet left (file, key,
line) and still exits 0: the file is valid and runs, only its labels are unfinished."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelpower import cli
from otelpower.readers.native.oneshot import yaml_snippet

ROWS = [
    {"mac": "48:22:54:00:00:01", "ip": "192.0.2.1", "model": "P110(EU)", "alias": "Desk"},
    {"mac": "48:22:54:00:00:02", "ip": "192.0.2.2", "model": "HS300(US)", "alias": None},
]


def test_each_placeholder_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "home.yaml"
    snippet = yaml_snippet(ROWS)
    config.write_text("devices:\n" + snippet.replace("CHANGE-ME", "office", 1))
    assert cli.main(["check", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "OK" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {config}: devices[{i}].{key} (line {line}): still CHANGE-ME, the"
        " placeholder from `otelpower discover`: put the real value there"
        for i, key, line in [(0, "shelf", 4), (1, "room", 8), (1, "shelf", 9)]
    ], err
    assert "Traceback" not in err


def test_a_finished_config_has_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "home.yaml"
    config.write_text("devices:\n" + yaml_snippet(ROWS).replace("CHANGE-ME", "office"))
    assert cli.main(["check", str(config)]) == 0
    assert "warning" not in capsys.readouterr().err
