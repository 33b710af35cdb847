"""Hostile or mistaken input the config and the plugs can bring: refused with a named line,
never a hang, a traceback, a secret in a message or an unbounded label."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from otelpower.config import ConfigError
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import MAX_LABEL, Publisher
from otelpower.readers.registry import load_config

DEVICE = "devices:\n  - {device_id: 48:22:54:00:00:01, room: r, shelf: s, device: d}\n"


def _errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return str(info.value)


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
    )
    assert "YAML aliases (*a) are not supported" in _errors(tmp_path, bomb)


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo, {})
    secret = tmp_path / "password"
    os.mkfifo(secret)
    text = DEVICE + f"credentials: {{password_file: {secret}}}\n"
    assert "cannot read secret file: not a regular file" in _errors(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEVICE.replace("device: d", 'device: "\\ud800"'), "is not valid Unicode text"),
        (DEVICE.replace("room: r", "room: '   '"), "not only spaces"),
        (DEVICE.replace("48:22:54:00:00:01", "00:00:00:00:00:00"), "all zeros or broadcast"),
        (DEVICE.replace("48:22:54:00:00:01", "FF-FF-FF-FF-FF-FF"), "all zeros or broadcast"),
        (
            DEVICE + "credentials: {password: '${NOPE:-hunter2}'}\n",
            "the default after ':-' is a literal password",
        ),
    ],
)
def test_refused_with_a_named_line(tmp_path: Path, text: str, expected: str) -> None:
    message = _errors(tmp_path, text)
    assert expected in message and "hunter2" not in message


def test_an_empty_default_password_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(DEVICE + "credentials: {password: '${KASA_PASSWORD:-}'}\n")
    assert load_config(path, {})


def test_a_binary_secret_file_shows_nothing_of_it(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_bytes(b"\xffS3CRET\xfe")
    message = _errors(tmp_path, DEVICE + f"credentials: {{password_file: {secret}}}\n")
    assert "the secret file is not UTF-8 text" in message
    assert "S3CRET" not in message and "\\xff" not in message and "0xff" not in message


def test_label_values_from_a_plug_are_bounded() -> None:
    publisher = Publisher("native", SnapshotStore(), {})
    snap = publisher.publish(
        "48:22:54:00:00:01",
        {"device": "x" * 100_000, "device_id": "48:22:54:00:00:01"},
        DeviceStatus.OK,
        who="x",
        info={"model": "M" * 100_000, "firmware": "1.0"},
    )
    assert len(snap.info["model"]) == MAX_LABEL and snap.info["firmware"] == "1.0"
    assert len(snap.labels["device"]) == MAX_LABEL


def test_label_values_from_a_plug_are_encodable() -> None:
    """A lone surrogate in a plug's JSON (``"\\ud83d"``) would fail every rendering."""
    publisher = Publisher("native", SnapshotStore(), {})
    snap = publisher.publish(
        "48:22:54:00:00:01",
        {"device": "TV \ud83d", "device_id": "48:22:54:00:00:01"},
        DeviceStatus.OK,
        who="x",
        info={"alias": "Lamp \udcff", "model": "P110"},
    )
    assert snap.labels["device"] == "TV ?" and snap.info == {"alias": "Lamp ?", "model": "P110"}


async def test_no_handshake_material_in_the_log_at_debug(
    simulator, caplog: pytest.LogCaptureFixture
) -> None:
    from otelpower.cli import set_library_log_levels
    from otelpower.readers.native.reader import NativeReader
    from otelpower.sim import PlugOptions, builtin_profiles
    from tests.conftest import make_config

    profile = next(p for p in builtin_profiles() if p.stem == "p110_klap")
    (plug,) = await simulator.start([PlugOptions(profile)])
    names = ("kasa", "tapo", "kasa.transports")
    saved = {n: logging.getLogger(n).level for n in names}
    set_library_log_levels("DEBUG")
    try:
        with caplog.at_level(logging.DEBUG):
            reader = NativeReader(make_config(simulator.config_dict()))
            await reader.poll_all()
            await reader.close()
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    assert reader.store.get(plug.mac).up
    kasa = [r.getMessage() for r in caplog.records if r.name.startswith("kasa")]
    assert kasa, "python-kasa's DEBUG lines are shown at DEBUG"
    leaks = [m for m in kasa if "hash" in m.lower() or "seed" in m.lower()]
    assert not leaks, leaks


def test_two_devices_at_one_host_are_refused(tmp_path: Path) -> None:
    two = (
        "devices:\n"
        "  - {device_id: 48:22:54:00:00:01, room: r, shelf: s, device: a,"
        " native: {host: plug-tv.lan}}\n"
        "  - {device_id: 48:22:54:00:00:02, room: r, shelf: s, device: b,\n"
        "     native: {host: PLUG-TV.lan.}}\n"
    )
    message = _errors(tmp_path, two)
    assert "line 4" in message and "devices[1].native.host" in message, message
    assert "host plug-tv.lan is already used by devices[0]" in message
    # the same host on other ports is two plugs (a power strip's emulator, a port forward)
    ports = two.replace("plug-tv.lan}", "plug-tv.lan, port: 9999}").replace(
        "PLUG-TV.lan.}", "PLUG-TV.lan., port: 10000}"
    )
    path = tmp_path / "ports.yaml"
    path.write_text(ports)
    assert len(load_config(path, {}).devices) == 2


def test_a_config_past_the_size_limit_is_refused_at_once(tmp_path) -> None:
    import time as time_

    from otelpower.config.yamlsource import MAX_BYTES

    big = tmp_path / "huge.yaml"
    entry = '  - {device_id: "48:22:54:00:00:01", room: r, shelf: s}\n'
    with big.open("w") as f:
        f.write("devices:\n")
        f.write(entry * (MAX_BYTES // len(entry) + 10))
    started = time_.monotonic()
    try:
        load_config(big, {})
    except ConfigError as exc:
        assert "larger than 8 MiB" in str(exc) and "huge.yaml" in str(exc)
    else:
        raise AssertionError("a file past the limit was read")
    assert time_.monotonic() - started < 5
