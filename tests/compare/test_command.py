"""``otelpower compare`` exit codes and report, against a small stand-in Prometheus API."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from otelpower import cli

MAC = "48:22:54:00:00:01"
ONLY_NATIVE = "48:22:54:00:00:02"
T0 = 1_700_000_000.0
LABELS = {"house": "home", "room": "living", "shelf": "rack", "device": "tv"}


def series_answer() -> list[dict[str, str]]:
    out = []
    for proto, names in (
        ("native", ["power_watts", "up", "rssi_dbm"]),
        ("matter", ["power_watts", "up"]),
    ):
        for n in names:
            out.append({"__name__": f"tplink_{proto}_{n}", "device_id": MAC, **LABELS})
    out.append(
        {"__name__": "tplink_native_up", "device_id": ONLY_NATIVE, **LABELS, "device": "lamp"}
    )
    return out


def range_answer(query: str) -> list[dict]:
    ts = [T0 + i for i in range(20)]
    if "native_power" in query:
        return [{"metric": {"device_id": MAC}, "values": [[t, "100.0"] for t in ts]}]
    if "matter_power" in query:
        return [{"metric": {"device_id": MAC}, "values": [[t, "99.0"] for t in ts[5:]]}]
    if "native_up" in query:
        return [
            {"metric": {"device_id": MAC}, "values": [[t, "1"] for t in ts]},
            {"metric": {"device_id": ONLY_NATIVE}, "values": [[t, "1"] for t in ts]},
        ]
    if "matter_up" in query:
        ups = ["1"] * 5 + ["0"] * 3 + ["1"] * 12
        return [
            {"metric": {"device_id": MAC}, "values": [[t, v] for t, v in zip(ts, ups, strict=True)]}
        ]
    return []


def instant_answer(query: str) -> list[dict]:
    for protocol, kwh in (("native", "0.500"), ("matter", "0.490")):
        if f"tplink_{protocol}_energy_kilowatt_hours_total" in query:
            return [{"metric": {"device_id": MAC}, "value": [T0 + 19, kwh]}]
    if "histogram_quantile" in query:
        return [
            {"metric": {"protocol": p, "device_id": MAC}, "value": [T0 + 19, "0.05"]}
            for p in ("native", "matter")
        ]
    return []


class Backend(BaseHTTPRequestHandler):
    empty = False

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        params = urllib.parse.parse_qs(url.query)
        if url.path.endswith("/series"):
            data: object = [] if self.empty else series_answer()
        elif url.path.endswith("/query_range"):
            data = {"resultType": "matrix", "result": range_answer(params["query"][0])}
        elif url.path.endswith("/query"):
            data = {"resultType": "vector", "result": instant_answer(params["query"][0])}
        else:
            self.send_error(404)
            return
        body = json.dumps({"status": "success", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def backend() -> Iterator[str]:
    yield from serve(Backend)


@pytest.fixture
def empty_backend() -> Iterator[str]:
    yield from serve(type("Empty", (Backend,), {"empty": True}))


def compare(url: str, out: Path, *extra: str) -> int:
    argv = ["compare", "--url", url, "--start", str(T0), "--end", str(T0 + 19)]
    return cli.main([*argv, "--step", "1s", "--out", str(out), *extra])


def test_report_from_a_backend(backend: str, tmp_path: Path, capsys) -> None:
    assert compare(backend, tmp_path) == 0
    out = capsys.readouterr().out
    assert "tv 48:22:54:00:00:01: median |diff| 1.00 W" in out
    assert "lamp 48:22:54:00:00:02: native only" in out
    report = (tmp_path / "report.md").read_text()
    assert "| tv | `48:22:54:00:00:01` | 1.00 | 1.0 | 100.0% | 85.0% | native |" in report
    assert "**lamp** (`48:22:54:00:00:02`): native only" in report
    assert "| `rssi_dbm` | ✓ | - |" in report
    assert "| matter | 85.0% | 20 | 1 | 1 | 3.0 s | no |" in report
    assert "Overall: prefer **native**" in report
    assert "| tv | `48:22:54:00:00:01` | 0.5000 | 0.4900 | 0.0100 | 2.0 |" in report
    for name in ("tv-power.png", "tv-diff.png", "availability.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_no_data_exits_1(empty_backend: str, tmp_path: Path, capsys) -> None:
    assert compare(empty_backend, tmp_path, "--device", "482254000001") == 1
    err = capsys.readouterr().err
    assert "no tplink_native_*/tplink_matter_* series" in err and "48:22:54:00:00:01" in err
    assert not (tmp_path / "report.md").exists()


def test_unreachable_backend_names_the_url(tmp_path: Path, capsys) -> None:
    assert compare("http://127.0.0.1:9", tmp_path) == 1
    err = capsys.readouterr().err
    assert "error: http://127.0.0.1:9/api/v1/series: cannot reach the backend" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "extra",
    [
        ["--start", "yesterday"],
        ["--step", "0s"],
        ["--start", str(T0 + 100)],  # after the end
        ["--step", "1ms"],  # too many points
    ],
)
def test_bad_arguments_exit_2(extra: list[str], tmp_path: Path, capsys) -> None:
    argv = ["compare", "--url", "http://127.0.0.1:9", "--end", str(T0 + 19), "--out", str(tmp_path)]
    if "--start" not in extra:
        argv += ["--start", str(T0)]
    assert cli.main(argv + extra) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_bad_url_exits_2(tmp_path: Path, capsys) -> None:
    assert cli.main(["compare", "--url", "localhost:8428", "--out", str(tmp_path)]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_without_matplotlib_exits_2(monkeypatch, tmp_path: Path, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    assert compare("http://127.0.0.1:9", tmp_path) == 2
    assert "pip install 'otelpower[report]'" in capsys.readouterr().err
