"""Command line: run, check, the readers' own subcommands, sim and compare.

The surface is stable; scripts build on it. Reader-specific flags and subcommands come from
each ReaderSpec (otelpower.readers.registry), so this module names no reader.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from otelpower import __version__, cliargs, eventloop
from otelpower.config import Config, ConfigError
from otelpower.config.sharding import parse_shard
from otelpower.config.yamlsource import PLACEHOLDER, load_yaml, placeholders
from otelpower.export import cardinality, malloc, otelenv, webconfig
from otelpower.export.pullserver import PullServerError
from otelpower.readers import registry
from otelpower.readers.base import Command, ReaderSpec

log = logging.getLogger("otelpower")

EXIT_CONFIG = 2
EXIT_FAILED = 1

EPILOG = """\
environment: KASA_USERNAME, KASA_PASSWORD (plug account), OTELPOWER_LOG_LEVEL,
  OTELPOWER_SHARD, OTELPOWER_STALE_MARKERS, OTELPOWER_OTLP_RESEND_POINTS,
  OTELPOWER_EVENT_LOOP, and the OTel SDK's OTEL_EXPORTER_OTLP_ENDPOINT/_PROTOCOL/_TIMEOUT,
  OTEL_METRIC_EXPORT_INTERVAL, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
  OTEL_METRICS_EXPORTER, OTEL_SDK_DISABLED
exit codes: 0 ok, 1 ran and failed, 2 bad argument/config/variable, 130 interrupted
"""
EXIT_CODES = EPILOG.splitlines()[-1] + "\n"
RUN_EPILOG = """\
examples:
  otelpower run                            every plug discovery finds, named by its alias
  otelpower run --target 192.168.20.255    the same, on another subnet
  otelpower run my-home.yaml               the plugs in the file, in their rooms
  OTEL_EXPORTER_OTLP_ENDPOINT=http://otelcol:4317 otelpower run my-home.yaml   + OTLP push
"""


def _tools() -> tuple[Command, ...]:
    from otelpower.compare.command import COMMAND as compare
    from otelpower.sim.command import COMMAND as sim

    return sim, compare


def _parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[Command, ReaderSpec | None]]]:
    p = argparse.ArgumentParser(
        prog="otelpower",
        description="Smart-plug power readings as OpenTelemetry metrics.",
        epilog="readers (run --protocol): "
        + "; ".join(f"{s.name}: {s.description}" for s in registry.specs())
        + "\n"
        + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"otelpower {__version__}")
    p.add_argument(
        "--log-level",
        type=cliargs.log_level,
        default=os.environ.get("OTELPOWER_LOG_LEVEL") or "INFO",  # empty: unset
        metavar="LEVEL",
        help=f"{', '.join(cliargs.LOG_LEVELS)} (default INFO; env OTELPOWER_LOG_LEVEL)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    choices = registry.choices()
    run = sub.add_parser(
        "run",
        help="poll the plugs and serve/push metrics",
        description="Poll the plugs; serve /metrics, and push OTLP when an endpoint is set.",
        epilog=RUN_EPILOG + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "config",
        type=Path,
        metavar="CONFIG",
        nargs="?",
        help="the YAML config file (config.example.yaml); without one, every plug that"
        " discovery finds is exported, named by its own name (alias)",
    )
    # the default is the first registered reader (the registry's order is the product's)
    run.add_argument(
        "--protocol",
        choices=choices,
        default=choices[0],
        help=f"which reader(s) to run (default {choices[0]})",
    )
    run.add_argument(
        "--prometheus-port",
        type=cliargs.port,
        metavar="PORT",
        help="serve /metrics on this port (default: the config's prometheus.port, 9464)",
    )
    for spec in registry.specs():
        for option in spec.run_options:
            run.add_argument(
                *option.flags,
                dest=_dest(option.flags),
                metavar=option.metavar,
                help=option.help,
                action="append" if option.repeatable else "store",
            )
    run.add_argument(
        "--web-config",
        type=Path,
        metavar="FILE",
        help="TLS and basic auth for /metrics: a web config file in the Prometheus"
        " exporter-toolkit format (as node_exporter's --web.config.file)",
    )
    run.add_argument(
        "--shard",
        metavar="i/N",
        default=os.environ.get("OTELPOWER_SHARD") or None,
        help="read only the device_ids that hash to i of N replicas (env OTELPOWER_SHARD)",
    )

    check = sub.add_parser(
        "check",
        help="validate a config file without running",
        epilog="example: otelpower check my-home.yaml\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("config", type=Path, metavar="CONFIG", help="the YAML config file")

    commands: dict[str, tuple[Command, ReaderSpec | None]] = {}
    offered = [(c, s) for s in registry.specs() for c in s.commands]
    for command, spec in (*offered, *((c, None) for c in _tools())):
        command.add_arguments(
            sub.add_parser(
                command.name,
                help=command.help,
                description=command.help[:1].upper() + command.help[1:] + ".",
                epilog=command.epilog + EXIT_CODES,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
        commands[command.name] = (command, spec)
    return p, commands


def _dest(flags: tuple[str, ...]) -> str:
    return "option_" + flags[0].lstrip("-").replace("-", "_")


def _log_level_problem(environ: Mapping[str, str]) -> str | None:
    level = environ.get("OTELPOWER_LOG_LEVEL")
    try:
        if level:
            cliargs.log_level(level)
    except argparse.ArgumentTypeError:
        return f"OTELPOWER_LOG_LEVEL={level!r}: expected one of {', '.join(cliargs.LOG_LEVELS)}"
    return None


def _check_web_config(config: Config) -> None:
    """The endpoint's web config, read now so that a bad one is reported before anything
    starts (ConfigError: one line per problem, exit 2)."""
    if config.prometheus_web_config:
        webconfig.load(config.prometheus_web_config)


def set_library_log_levels(level: str) -> None:
    """The readers' client libraries: quiet unless DEBUG; their secret-logging parts never
    below INFO."""
    for spec in registry.specs():
        for name in spec.quiet_loggers:
            logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.ERROR)
        for name in spec.secret_loggers:
            logging.getLogger(name).setLevel(logging.ERROR if level != "DEBUG" else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser, commands = _parser()
    argv = cliargs.join_relative_times(sys.argv[1:] if argv is None else argv, {"--start", "--end"})
    if problem := _log_level_problem(os.environ):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    args = parser.parse_args(argv)
    if args.command in ("run", "check") and (problems := otelenv.problems(os.environ)):
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    set_library_log_levels(args.log_level)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "check":
            return _cmd_check(args)
        command, spec = commands[args.command]
        problem = registry.missing(command) or (registry.missing(spec) if spec else None)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        return command.run(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _cmd_run(args: argparse.Namespace) -> int:
    from otelpower import app

    malloc.return_large_blocks()
    config = registry.load_config(args.config)
    for spec in registry.specs():
        for option in spec.run_options:
            value = getattr(args, _dest(option.flags))
            if value is not None:
                try:
                    config = option.apply(config, value)
                except ValueError as exc:
                    print(f"error: {option.flags[0]}: {exc}", file=sys.stderr)
                    return EXIT_CONFIG
    if args.web_config is not None:
        config = replace(config, prometheus_web_config=str(args.web_config))
    _check_web_config(config)
    if args.shard:
        try:
            config = config.sharded(parse_shard(args.shard))
        except ValueError as exc:
            print(f"error: --shard: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    chosen, left_out = registry.runnable(args.protocol, config)
    if args.protocol == registry.ALL and not chosen:
        why = "; ".join(f"{name} {problem}" for name, problem in left_out.items())
        print(
            f"error: {config.source}: --protocol all: no reader can start ({why})", file=sys.stderr
        )
        return EXIT_CONFIG
    for name, problem in left_out.items():  # --protocol all: the others run
        print(f"note: --protocol all: the {name} reader is not started: {problem}", file=sys.stderr)
    for spec in chosen:
        if problem := registry.missing(spec):
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        if problem := spec.precondition(config):
            print(f"error: {config.source}: --protocol {args.protocol} {problem}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        eventloop.run(app.run(config, args.protocol, args.prometheus_port))
    except PullServerError as exc:
        print(f"error: {config.source}: prometheus: {exc}", file=sys.stderr)
        return 1
    return 0


def _warn_placeholders(path: Path) -> None:
    """A warning per value ``discover``'s snippet left to fill in (file, key, line): the file
    is valid and runs, but its series would carry the placeholder as a label."""
    doc = load_yaml(path)
    for where in placeholders(doc):
        print(
            f"warning: {doc.source}: {where}: still {PLACEHOLDER}, the placeholder from"
            " `otelpower discover`: put the real value there",
            file=sys.stderr,
        )


def _cmd_check(args: argparse.Namespace) -> int:
    config = registry.load_config(args.config)
    _check_web_config(config)
    parts = [s for spec in registry.specs() if (s := spec.summary(config))]
    print(
        f"{config.source}: OK: house {config.house!r}, {len(config.devices)} device(s)"
        + (f" ({', '.join(parts)})" if parts else "")
        + f"; poll every {config.poll_interval:g}s,"
        f" Prometheus on {config.prometheus_host}:{config.prometheus_port}"
    )
    _warn_placeholders(args.config)
    per_process = len(config.devices) // (config.shard.count if config.shard else 1)
    if per_process > cardinality.DEVICES_AT_LIMIT:
        print(
            f"warning: {per_process} devices per process: past about"
            f" {cardinality.DEVICES_AT_LIMIT} that each go through every status, a metric"
            f" reaches its limit of {cardinality.LIMIT} series and new ones are lost;"
            " split them with --shard i/N",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
