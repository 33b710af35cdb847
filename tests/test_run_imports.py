"""What `otelpower run` imports, seen in its processes' own ``sys.modules``.

Every module imported costs memory for as long as the process runs (code objects, classes:
~15 MB of the main process at 10 plugs). These are the modules each process does without in
the common case (native plugs, none speaking TPAP; OTLP over http/protobuf; /metrics scraped
in the text format, no web config), so that a change that imports one again is noticed.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import yaml

from harness.ports import free_port
from harness.processes import cli_process
from harness.promtext import find, scrape
from harness.wait import wait_for

#: written into a sitecustomize of the processes under test: their modules, as they exit
DUMP = """\
import atexit, os, sys

def _dump():
    path = os.path.join(os.environ["OTELPOWER_TEST_MODULES"], f"{os.getpid()}.txt")
    with open(path, "w") as f:
        f.write("\\n".join([sys.argv[0], *sorted(sys.modules)]))

atexit.register(_dump)
"""

#: not in the main process: each belongs to a case not configured here
NOT_IN_MAIN = (
    "grpc",  # OTLP over gRPC
    "opentelemetry.exporter.otlp.proto.grpc",
    "tapo",  # a plug speaking TPAP
    "matter_server",  # the Matter reader
    "otelpower.readers.matter.reader",
    "prometheus_client.parser",  # an OpenMetrics scrape (converted in the /metrics process)
    "multiprocessing",  # the pipe to the /metrics process is a plain socket
    "requests",  # OTLP/HTTP to a plain http:// collector goes by the SDK's urllib3 transport
    "matplotlib",  # otelpower compare
)
#: not in the /metrics process: it serves bytes it gets over a pipe
NOT_IN_ENDPOINT = (
    "prometheus_client",  # the renderer (imported for an OpenMetrics scrape only)
    "otelpower.export.exposition",
    "opentelemetry",
    "yaml",  # only with a web config
    "bcrypt",
    "otelpower.config",
    "otelpower.export.webconfig",
    "multiprocessing",
    "email",
    "kasa",
    "aiohttp",
)


def _imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)]


@pytest.mark.parametrize("where", ["separate", "inline"])
async def test_run_imports_only_what_native_plugs_and_otlp_http_need(
    tmp_path: Path, simulator, where: str
) -> None:
    """``separate``: the /metrics process imports none of the renderer's modules either;
    ``inline`` (a small fleet's default) runs no second process."""
    from otelpower.sim import PlugOptions, builtin_profiles

    profiles = {p.stem: p for p in builtin_profiles()}
    plugs = await simulator.start([PlugOptions(profiles[n]) for n in ("p110_klap", "kp115_xor")])
    port = free_port()
    config = tmp_path / "plugs.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **simulator.config_dict(),
                "discovery": {"targets": []},
                "prometheus": {"host": "127.0.0.1", "port": port, "process": where},
                "poll": {"interval": 0.5, "timeout": 3},
            }
        )
    )
    site, dumps = tmp_path / "site", tmp_path / "modules"
    site.mkdir()
    dumps.mkdir()
    (site / "sitecustomize.py").write_text(DUMP)
    env = {
        "PYTHONPATH": str(site),
        "OTELPOWER_TEST_MODULES": str(dumps),
        # nothing listens there: exports fail, which is all the exporter needs to be imported
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # a proxy set on the machine would keep the requests transport (otelpower.export.otlp)
        **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"), ""),
        **dict.fromkeys(("http_proxy", "https_proxy", "all_proxy"), ""),
    }
    async with cli_process("run", str(config), env=env) as run:

        def read_all() -> bool:
            try:
                series = scrape(port)
            except OSError:
                return False
            return all(find(series, "tplink_native_power_watts", device_id=p.mac) for p in plugs)

        await wait_for(read_all, timeout=60, interval=0.2, what="both plugs read", in_thread=True)
        await asyncio.sleep(1.5)  # a few more polls and OTLP exports
        run.send_signal(signal.SIGTERM)
        await asyncio.wait_for(run.wait(), 20)
        assert run.returncode == 0, (await run.stderr.read()).decode()[-2000:]
    processes = {}
    for dump in dumps.glob("*.txt"):
        argv0, *modules = dump.read_text().splitlines()
        processes[Path(argv0).name] = set(modules)
    expected = {"cli.py", "pullserver.py"} if where == "separate" else {"cli.py"}
    assert set(processes) == expected, processes.keys()
    main = processes["cli.py"]
    assert "kasa" in main and "opentelemetry.exporter.otlp.proto.http" in main  # it did run
    assert _imported(main, NOT_IN_MAIN) == []
    if where == "separate":
        endpoint = processes["pullserver.py"]
        assert "otelpower.export.httpserver" in endpoint
        assert _imported(endpoint, NOT_IN_ENDPOINT) == []
