"""Every flag, argument and environment variable the program reads: a bad value is one line
naming it and exit 2, never a traceback (like the config fuzz test, over the command line).

The commands' long-running parts (the event loop of ``run`` and ``sim``, the network calls of
``read`` and ``discover``) are replaced: what is tested is everything before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelpower import cli, eventloop
from otelpower.export import otelenv
from otelpower.export.otlp import otlp_exporter
from otelpower.export.pipeline import make_resource

GOOD_CONFIG = "house: h\ndevices:\n  - {device_id: 000000000001, room: r, shelf: s}\n"
AWKWARD = [
    "",
    " ",
    "0",
    "-1",
    "1e999",
    "nan",
    "inf",
    "99999",
    "abc",
    "127.0.0.1",
    "127.0.0.1:abc",
    "127.0.0.1:99999",
    "[::1]:80",
    "[::1",
    "::1",
    ":80",
    "-1h",
    "now",
    "1/2",
    "3/2",
    "x\x00y",
    "é",
    "verbose",
    "debug",
]
VALUES = st.one_of(st.sampled_from(AWKWARD), st.text(max_size=10))
# subcommand -> its flags that take a value, flags without one, positional arguments
COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "run": (("--protocol", "--prometheus-port", "--shard", "--target", "--matter-server"), (), 1),
    "check": ((), (), 1),
    "read": (("--timeout",), ("--json",), 1),
    "discover": (("--target", "--wait"), ("--json",), 0),
    "sim": (
        ("--count", "--profile", "--tpap-tls", "--matter-server", "--state", "--shelly"),
        ("--static", "--tpap", "--fresh"),
        0,
    ),
    "compare": (("--start", "--end", "--step", "--device", "--timeout"), (), 0),
}
OTEL_VARS = [
    "OTEL_SDK_DISABLED",
    "OTEL_METRICS_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTELPOWER_STALE_MARKERS",
    "OTELPOWER_LOG_LEVEL",
    "OTELPOWER_SHARD",
]
ENV_VALUES = st.one_of(
    st.sampled_from(["true", "false", "otlp", "prometheus,otlp", "none", "grpc", "http/json"]),
    st.sampled_from(["http://127.0.0.1:1", "localhost:4317", "http://[::1", "500", "info"]),
    st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        max_size=10,
    ),
    st.just("\udcff"),  # an undecodable byte, as os.environ holds it (surrogateescape)
)


@pytest.fixture(scope="module")
def config_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(GOOD_CONFIG)
        yield str(path)


def _not_run(coro: Any, *args: Any, **kwargs: Any) -> Any:
    """Stands in for the event loop: the coroutine is dropped, plugs answer nothing."""
    name = getattr(coro, "__name__", "")
    coro.close()
    if name == "discover_plugs":
        return []
    if name == "read_plug":
        raise ConnectionRefusedError("refused")
    return None


def _main(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    err = io.StringIO()
    patches = [
        mock.patch.object(eventloop, "run", _not_run),
        mock.patch.object(asyncio, "run", _not_run),
        mock.patch.dict(os.environ, env or {}),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    name = draw(st.sampled_from(sorted(COMMANDS)))
    valued, bare, positional = COMMANDS[name]
    argv = [name]
    if name == "compare":
        argv += ["--url", "http://127.0.0.1:1"]  # loopback only; refused at once
    for _ in range(positional):
        argv.append(draw(st.one_of(st.just("CONFIG"), VALUES)))
    flags = valued + bare
    for flag in draw(st.lists(st.sampled_from(flags), max_size=4)) if flags else []:
        argv += [flag] if flag in bare else [flag, draw(VALUES)]
    if draw(st.booleans()):
        argv = ["--log-level", draw(VALUES), *argv]
    return argv


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=command_lines())
def test_no_command_line_gives_a_traceback(argv: list[str], config_file: str) -> None:
    argv = [config_file if a == "CONFIG" else a for a in argv]
    code, err = _main(argv)
    assert "Traceback" not in err, (argv, err)
    assert code in (0, 1, 2), (argv, code, err)
    if code == 2:
        assert err.strip(), argv  # a usage error says what was wrong


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(env=st.dictionaries(st.sampled_from(OTEL_VARS), ENV_VALUES, max_size=4))
def test_no_environment_gives_a_traceback(env: dict[str, str], config_file: str) -> None:
    code, err = _main(["check", config_file], env)
    assert "Traceback" not in err, (env, err)
    if code == 2:
        named = [line for line in err.splitlines() if line.startswith("error: ")]
        assert named, (env, err)
        assert all(any(f"{var}=" in line for var in env) for line in named), (env, err)
    else:
        assert code == 0, (env, err)
        # what run builds from these variables builds (exporters connect lazily)
        with mock.patch.dict(os.environ, env):
            exporter = otlp_exporter(os.environ)
            if exporter is not None:
                exporter.shutdown()
            make_resource(house="h", protocol="native", instance_id="i")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["read", "127.0.0.1:99999"], "the port must be 1 to 65535"),
        (["read", "127.0.0.1:abc"], "'127.0.0.1:abc'"),
        (["--log-level", "verbose", "check", "CONFIG"], "argument --log-level: 'verbose'"),
        (["sim", "--count", "0"], "argument --count: '0' is not a whole number >= 1"),
        (["run", "--prometheus-port", "99999"], "'99999' is not a port"),
        (["discover", "--wait", "-1"], "argument --wait"),
    ],
)
def test_bad_arguments_are_named(argv: list[str], message: str, config_file: str) -> None:
    code, err = _main([config_file if a == "CONFIG" else a for a in argv])
    assert code == 2 and message in err and "Traceback" not in err, err


def test_empty_variables_are_unset(config_file: str) -> None:
    """As the OTel spec says, and as docker-compose's ``${VAR:-}`` passes an unset one."""
    env = dict.fromkeys(OTEL_VARS, "")
    code, err = _main(["check", config_file], env)
    assert code == 0, err
    assert otlp_exporter(env) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "abc"}, "OTEL_METRIC_EXPORT_INTERVAL='abc'"),
        ({"OTELPOWER_LOG_LEVEL": "verbose"}, "OTELPOWER_LOG_LEVEL='verbose'"),
        ({"OTEL_METRICS_EXPORTER": "jaeger"}, "OTEL_METRICS_EXPORTER='jaeger'"),
        ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED='yes': must be true or false"),
    ],
)
def test_bad_environment_is_named(env: dict[str, str], message: str, config_file: str) -> None:
    code, err = _main(["check", config_file], env)
    assert code == 2 and message in err, err


def test_relative_times_parse_with_a_space() -> None:
    """README: ``compare --start -1h`` (argparse alone takes -1h for an option)."""
    joined = ["compare", "--start=-1h", "--end=-5m", "--step", "15s"]
    assert (
        cli.cliargs.join_relative_times(
            ["compare", "--start", "-1h", "--end", "-5m", "--step", "15s"], {"--start", "--end"}
        )
        == joined
    )


def test_otel_conventions() -> None:
    env = {"OTEL_SERVICE_NAME": "power-lab", "OTEL_RESOURCE_ATTRIBUTES": "service.name=x"}
    resource = make_resource(house="h", protocol="native", instance_id="i", environ=env)
    assert resource.attributes["service.name"] == "power-lab"
    assert otelenv.metrics_exporters({}) is None  # our default: /metrics, OTLP with an endpoint
    assert otelenv.metrics_exporters({"OTEL_METRICS_EXPORTER": "none"}) == set()
    assert otelenv.metrics_exporters({"OTEL_METRICS_EXPORTER": "otlp, prometheus"}) == {
        "otlp",
        "prometheus",
    }
    assert otelenv.metrics_exporters({"OTEL_SDK_DISABLED": "TRUE"}) == set()
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    assert otlp_exporter(endpoint, wanted=False) is None
    assert otlp_exporter({}) is None
    forced = otlp_exporter({}, wanted=True)  # OTEL_METRICS_EXPORTER=otlp without an endpoint
    assert forced is not None
    forced.shutdown()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_has_an_example_and_the_exit_codes(command: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = out.getvalue()
    assert "example" in text and "exit codes:" in text, text
    if command in ("run", "discover", "read", "sim"):
        assert "KASA_USERNAME" in text


@pytest.mark.parametrize(
    ("exporters", "pull", "push"),
    [
        (None, True, True),
        ("otlp", False, True),
        ("prometheus", True, False),
        ("none", False, False),
    ],
)
def test_otel_metrics_exporter_picks_the_endpoints(
    exporters: str | None, pull: bool, push: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otelpower.export.pipeline import start_telemetry

    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    env |= {"OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    if exporters is not None:
        env["OTEL_METRICS_EXPORTER"] = exporters
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the SDK's exporter reads the process environment
    telemetry = start_telemetry(
        make_resource(house="h", protocol="native", instance_id="i"),
        prometheus_host="127.0.0.1",
        prometheus_port=0,
        export_interval_s=60,
        environ=env,
    )
    try:
        assert (telemetry.prometheus_port is not None) == pull
        assert telemetry.otlp_enabled == push
    finally:
        telemetry.shutdown()
