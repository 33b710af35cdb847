"""Config loading: normalisation, defaults, and errors that name file, key path and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from otelpower.cli import main
from otelpower.config import ConfigError, normalize_mac
from otelpower.readers import registry
from otelpower.readers.native.settings import credentials
from otelpower.readers.registry import load_config

GOOD = """\
house: home
devices:
  - device_id: "48:22:54:00:00:01"
    room: living
    shelf: tv-rack
    device: tv
    native: {host: 192.168.1.20}
    matter: {node_id: 5}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otelpower.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.mark.parametrize(
    "raw",
    [
        "48:22:54:00:00:01",
        "48-22-54-00-00-01",
        "482254000001",
        "48:22:54:00:00:01".upper(),
        " 48-22-54-00-00-01 ",
    ],
)
def test_mac_forms_normalise(raw: str) -> None:
    assert normalize_mac(raw) == "48:22:54:00:00:01"


@pytest.mark.parametrize("raw", ["48:22:54:00:00", "48:22-54:00:00:01", "zz2254000001", ""])
def test_bad_macs_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="not a MAC"):
        normalize_mac(raw)


def test_good_config_and_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), {})
    (dev,) = config.devices
    assert dev.device_id == "48:22:54:00:00:01"
    target = dev.section("native")
    assert target and target.host == "192.168.1.20" and target.port is None
    assert dev.section("matter") == 5
    assert config.prometheus_port == 9464
    assert config.poll_interval == 15.0
    assert config.service_instance_id("native") == "home-native"
    assert dev.labels("home") == {
        "house": "home",
        "room": "living",
        "shelf": "tv-rack",
        "device": "tv",
        "device_id": "48:22:54:00:00:01",
    }


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    config = load_config(example, {})
    assert len(config.devices) == 6
    assert {d.device_id for d in config.devices} == {
        "48:22:54:00:00:01",
        "48:22:54:00:00:02",
        "48:22:54:00:00:03",
        "48:22:54:00:00:05",
        "48:22:54:00:00:04",
        "34:98:7a:00:00:10",
    }
    native = config.owned_devices(registry.get("native"))
    assert [d.device for d in native] == ["tv", "monitor", "power-strip", "lamp"]
    assert native[-1].section("native").transport == "AES"
    (kettle,) = config.owned_devices(registry.get("shelly"))
    assert kettle.vendor == "shelly" and kettle.device == "kettle"


def test_transport_pin_and_adoption_cap_are_checked() -> None:
    from otelpower.config import ConfigError
    from tests.conftest import make_config

    device = {"device_id": "48:22:54:00:00:01", "room": "r", "shelf": "s"}
    bad = {
        "devices": [
            {**device, "native": {"host": "10.0.0.5", "transport": "ssh"}},
            {**device, "device_id": "48:22:54:00:00:02", "native": {"transport": "klap"}},
        ],
        "discovery": {"max_adopted": -1},
        "credentials": {"allow_aes": "yes"},
    }
    with pytest.raises(ConfigError) as info:
        make_config(bad)
    text = str(info.value)
    assert "devices[0].native.transport" in text and "XOR, KLAP, AES, TPAP" in text
    assert "devices[1].native.transport" in text and "give its host" in text
    assert "discovery.max_adopted" in text and "credentials.allow_aes" in text
    good = make_config({"devices": [{**device, "native": {"host": "h", "transport": "tpap"}}]})
    assert good.devices[0].section("native").transport == "TPAP"


def test_env_expansion_and_credentials(tmp_path: Path) -> None:
    text = (
        GOOD
        + 'credentials:\n  username: ${U}\n  password: ${P}\nprometheus: {port: "${PORT:-9999}"}\n'
    )
    config = load_config(write(tmp_path, text), {"U": "me@example.com", "P": "s3cret!"})
    assert credentials(config).username == "me@example.com"
    assert credentials(config).password == "s3cret!"
    assert "s3cret" not in repr(config)
    assert config.prometheus_host == "0.0.0.0"
    assert config.prometheus_port == 9999


def test_credentials_default_to_kasa_env(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), {"KASA_USERNAME": "a", "KASA_PASSWORD": "b"})
    assert (credentials(config).username, credentials(config).password) == ("a", "b")


def test_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    text = GOOD + f"credentials:\n  password_file: {secret}\n"
    assert credentials(load_config(write(tmp_path, text), {})).password == "from-file"


def test_a_missing_secret_file_means_no_credentials(tmp_path: Path, caplog) -> None:
    """An optional Kubernetes Secret that was not created: the plugs that need none work."""
    text = GOOD + f"credentials:\n  password_file: {tmp_path / 'absent'}\n"
    assert credentials(load_config(write(tmp_path, text), {})).password == ""
    assert "credentials.password_file" in caplog.text and "does not exist" in caplog.text
    (tmp_path / "unreadable").mkdir()  # any other failure is still a problem
    text = GOOD + f"credentials:\n  password_file: {tmp_path / 'unreadable'}\n"
    assert "credentials.password_file (line 10): cannot read secret file" in errors(tmp_path, text)


def test_literal_password_is_refused_without_echo(tmp_path: Path) -> None:
    message = errors(tmp_path, GOOD + "credentials:\n  password: hunter2\n")
    assert "credentials.password (line 10)" in message
    assert "hunter2" not in message


def test_missing_env_var_named(tmp_path: Path) -> None:
    message = errors(tmp_path, GOOD.replace("room: living", "room: ${ROOM}"))
    assert "devices[0].room (line 4)" in message and "ROOM is not set" in message


def test_every_problem_reported_with_line(tmp_path: Path) -> None:
    message = errors(
        tmp_path,
        """\
        house: home
        poll: {interval: -1, concurrency: many}
        colour: blue
        devices:
          - device_id: "48:22:54:00:00:0g"
            room: living
            shelf: a
            device: tv
          - device_id: 482254000002
            room: x
            shelf: b
            device: lamp
            native: {host: 10.0.0.2, port: 70000}
          - device_id: 48-22-54-00-00-02
            room: x
            shelf: y
            device: z
          - device_id: 48-22-54-00-00-03
            shelf: y
            device: z
        """,
    )
    assert "poll.interval (line 2): must be between" in message
    assert "poll.concurrency (line 2): must be an integer" in message
    assert "colour (line 3): unknown key" in message
    assert "devices[0].device_id (line 5): not a MAC" in message
    assert "devices[1].native.port (line 13): must be between 1 and 65535" in message
    assert "devices[3].room (line 18): is required" in message
    assert "devices[2].device_id (line 14): 48:22:54:00:00:02 is already used" in message


def test_protocols_choose_the_readers_of_a_plug(tmp_path: Path) -> None:
    text = GOOD.replace("    native: {host: 192.168.1.20}\n", "    protocols: [matter]\n")
    (dev,) = load_config(write(tmp_path, text), {}).devices
    native, matter = registry.get("native"), registry.get("matter")
    assert dev.reads(matter) and not dev.reads(native)
    config = load_config(write(tmp_path, GOOD), {})
    assert config.devices[0].protocols is None and config.devices[0].reads(native)
    assert config.owned_devices(native) == config.devices
    assert load_config(write(tmp_path, text), {}).owned_devices(native) == ()


def test_vendor_decides_which_maker_reads_a_plug(tmp_path: Path) -> None:
    """A plug of another maker is never read by TP-Link's reader; Matter reads any maker's."""
    native, matter = registry.get("native"), registry.get("matter")
    text = GOOD.replace("    native: {host: 192.168.1.20}\n", "    vendor: other\n")
    (dev,) = load_config(write(tmp_path, text), {}).devices
    assert dev.vendor == "other" and dev.reads(matter) and not dev.reads(native)
    (dev,) = load_config(write(tmp_path, GOOD), {}).devices
    assert dev.vendor == "tplink" and dev.reads(native)
    bad = GOOD.replace("    native: {host: 192.168.1.20}\n", "    vendor: acme\n")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, bad), {})
    assert "devices[0].vendor (line" in str(err.value) and "tplink, shelly, other" in str(err.value)
    clash = GOOD.replace(
        "    native: {host: 192.168.1.20}\n", "    native: {}\n    vendor: other\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, clash), {})
    assert "devices[0].vendor (line" in str(err.value) and "native is another maker" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[zigbee]", "devices[0].protocols[0] (line 9): unknown protocol 'zigbee'; expected one"),
        ("[]", "devices[0].protocols (line 9): must be a non-empty list of protocols"),
        ("matter", "devices[0].protocols (line 9): must be a non-empty list"),
        ("[{a: 1}]", "devices[0].protocols[0] (line 9): unknown protocol {'a': 1}"),
        ("[native]", "devices[0].matter (line 8): is set, but protocols leaves matter out"),
    ],
)
def test_bad_protocols(tmp_path: Path, value: str, expected: str) -> None:
    assert expected in errors(tmp_path, f"{GOOD}    protocols: {value}\n")


def test_duplicate_key(tmp_path: Path) -> None:
    message = errors(tmp_path, "house: a\nhouse: b\ndevices: []\n")
    assert "house (line 2): duplicate key" in message


def test_syntax_error_has_line(tmp_path: Path) -> None:
    message = errors(tmp_path, "house: home\ndevices:\n  - device_id: [unclosed\n")
    assert "YAML syntax error at line" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("house: home\ndevices: {a: 1}\n", "devices (line 2): must be a list"),
        ("house: home\ndevices: []\n", "devices (line 2): is empty: list your plugs, or leave"),
        ("house: home\ndevices:\n", "devices (line 2): is empty"),
        ("house: home\ndevices:\n  - device_id: 000000000001\n", "devices[0].room (line 3)"),
        ("house: [1]\ndevices: []\n", "house (line 1): must be a string"),
    ],
)
def test_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in errors(tmp_path, text)


@pytest.mark.parametrize("text", ["", "house: flat\n", "discovery: {targets: [10.0.0.255]}\n"])
def test_a_file_without_devices_lists_none(tmp_path: Path, text: str) -> None:
    """No inventory: the readers export what they find (named by alias, room "unassigned")."""
    config = load_config(write(tmp_path, text), {})
    assert config.devices == () and not config.devices_listed
    assert config.house == ("flat" if "flat" in text else "home")


def test_no_file_at_all() -> None:
    config = load_config(None, {})
    assert config.devices == () and not config.devices_listed and config.house == "home"
    assert config.source == "(no config file)"


def test_a_device_without_a_name_takes_the_alias(tmp_path: Path) -> None:
    text = "house: h\ndevices:\n  - {device_id: 000000000001, room: r, shelf: s}\n"
    (dev,) = load_config(write(tmp_path, text), {}).devices
    assert dev.device == ""
    assert dev.labels("h", alias=" Desk lamp ")["device"] == "Desk lamp"
    assert dev.labels("h")["device"] == "00:00:00:00:00:01"  # no alias known yet


def test_two_devices_in_one_place(tmp_path: Path) -> None:
    text = (
        "house: h\ndevices:\n"
        "  - {device_id: 000000000001, room: r, shelf: s, device: tv}\n"
        "  - {device_id: 000000000002, room: r, shelf: s, device: tv}\n"
    )
    message = errors(tmp_path, text)
    assert "devices[1].device (line 4): room 'r', shelf 's', device 'tv' is already used" in message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "missing.yaml", {})


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(write(tmp_path, GOOD))]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("house: home\ndevices:\n  - device_id: nope\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "devices[0].device_id (line 3)" in err


def test_run_flag_with_a_bad_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", str(write(tmp_path, GOOD)), "--protocol", "matter", "--matter-server"]
    assert main([*argv, "http://matter:5580/ws"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: --matter-server: must be a ws:// or wss:// URL, got 'http://matter:5580/ws'\n"
    )


def test_check_warns_when_one_process_would_reach_the_series_limit(
    tmp_path, capsys, monkeypatch
) -> None:
    from otelpower.cli import main
    from otelpower.export import cardinality

    path = str(write(tmp_path, GOOD))
    assert main(["check", path]) == 0
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setattr(cardinality, "DEVICES_AT_LIMIT", 0)
    assert main(["check", path]) == 0
    err = capsys.readouterr().err
    assert "reaches its limit of 250000 series" in err and "--shard" in err


def test_endpoint_process_follows_the_fleet_size(tmp_path: Path) -> None:
    from otelpower.config.schema import INLINE_MAX_DEVICES

    def devices(n: int) -> str:
        rows = "".join(
            f"  - {{device_id: '48:22:54:00:{i // 256:02x}:{i % 256:02x}', room: r, shelf: s,"
            f" device: d{i}}}\n"
            for i in range(n)
        )
        return f"devices:\n{rows}"

    small = load_config(write(tmp_path, devices(INLINE_MAX_DEVICES)), {})
    large = load_config(write(tmp_path, devices(INLINE_MAX_DEVICES + 1)), {})
    assert (small.prometheus_process, small.endpoint_process()) == ("auto", False)
    assert large.endpoint_process()
    for choice, separate in (("separate", True), ("inline", False)):
        text = devices(1) + f"prometheus: {{process: {choice}}}\n"
        assert load_config(write(tmp_path, text), {}).endpoint_process() is separate
    message = errors(tmp_path, devices(1) + "prometheus: {process: sometimes}\n")
    assert "prometheus.process (line 3): must be one of auto, separate, inline" in message


def test_protocols_that_read_nothing_of_its_maker_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    native: {host: 192.168.1.20}\n", "    vendor: other\n    protocols: [native]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), {})
    assert "devices[0].protocols (line" in str(err.value) and "nothing would read it" in str(
        err.value
    )
