"""LIVE: ``otelpower compare`` against a real VictoriaMetrics filled by the real pipeline.

One emulated KP115 is read natively and, through a virtual matter.js plug mirroring it (same
MAC, same load curve), over a real python-matter-server, by otelpower ``--protocol all``;
OTLP goes to the real collector, which remote-writes to VictoriaMetrics. Midway the plug is
taken offline on both paths for a few seconds. The report must name the device, show a small
median difference, availability below 100% on both paths and recoveries; the PNGs must exist.
Needs the collector, VictoriaMetrics and the Matter test bed (`make collector
victoria-metrics setup`), else it skips (fails in CI).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from harness.backends import VictoriaMetrics
from harness.wait import wait_for
from otelpower import app, cli
from otelpower.sim import PlugOptions, builtin_profiles
from otelpower.sim.faults import Fault
from tests.conftest import make_config

pytestmark = pytest.mark.timeout(180)

PROFILES = {p.stem: p for p in builtin_profiles()}
STEADY_S = 8.0
OFFLINE_S = 5.0


def matter_bed_missing() -> list[str]:
    from tests.matter.conftest import _missing

    return _missing()


def summary_row(report: str, device_id: str) -> list[str]:
    for line in report.splitlines():
        if f"`{device_id}`" in line and line.startswith("|"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no summary row for {device_id} in:\n{report}")


async def test_compare_report_from_the_real_pipeline(
    simulator, otlp_env: float, victoria_metrics: VictoriaMetrics, tmp_path: Path, capsys
) -> None:
    missing = matter_bed_missing()
    if missing and not os.environ.get("CI"):
        pytest.skip(f"Matter test bed not installed ({', '.join(missing)}): make setup")
    from otelpower.sim.matter_mirror import matter_mirror

    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"])])
    mac = plug.mac
    data = simulator.config_dict()
    vm = victoria_metrics
    both_up = (
        f'tplink_native_up{{device_id="{mac}"}} == 1'
        f' and on(device_id) tplink_matter_up{{device_id="{mac}"}} == 1'
    )
    async with matter_mirror(plug, tmp_path) as mirror:
        config = make_config(
            {**data, "matter": {"url": mirror.url}},
            poll={"interval": 1, "timeout": 2, "backoff_max": 1},
            prometheus={"host": "127.0.0.1", "port": 0},
        )
        device = config.device(mac)
        assert device is not None
        start = time.time()
        async with app.Runtime(config, "all"):
            await wait_for(lambda: vm.query(both_up), 30, 0.3, "both paths up", in_thread=True)
            await asyncio.sleep(STEADY_S)
            # The plug goes away on both paths, then comes back.
            plug.fault = Fault.OFFLINE
            await mirror.plug.stop()
            await asyncio.sleep(OFFLINE_S)
            plug.fault = Fault.NONE
            await mirror.plug.start()
            await wait_for(lambda: vm.query(both_up), 60, 0.3, "both up again", in_thread=True)
            await asyncio.sleep(STEADY_S)
            end = time.time() - 1.0  # VictoriaMetrics' latency offset
    await asyncio.sleep(otlp_env + 1)
    vm.flush()

    out = tmp_path / "report"
    argv = ["compare", "--url", vm.url, "--start", f"{start:.3f}", "--end", f"{end:.3f}"]
    argv += ["--step", "1s", "--out", str(out)]
    code = await asyncio.to_thread(cli.main, argv)
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    assert mac in stdout and "report:" in stdout

    report = (out / "report.md").read_text()
    assert device.device in report and mac in report
    row = summary_row(report, mac)
    _, _, median_w, median_pct, avail_native, avail_matter, prefer = row
    # Same load curve on both paths: only sampling moments differ (3% wobble every 7.3 s).
    assert float(median_pct) < 5.0, row
    assert float(median_w) < 0.05 * 60, row
    for avail in (avail_native, avail_matter):
        assert 0 < float(avail.rstrip("%")) < 100.0, row
    assert prefer in ("native", "matter")
    assert "recoveries (1→0→1)" in report
    # energy on both paths: the virtual Matter plug counts the same meter as the native one
    energy = [line for line in report.splitlines() if line.startswith(f"| {device.device} |")]
    cells = [c.strip() for c in energy[-1].strip("|").split("|")]
    native_kwh, matter_kwh = float(cells[2]), float(cells[3])  # about 1 Wh in this range
    assert abs(native_kwh - matter_kwh) <= 0.002, cells  # within the counters' 1 Wh steps
    assert "## Recommendation" in report
    assert "Overall: prefer" in report
    for name in (f"{device.device}-power.png", f"{device.device}-diff.png", "availability.png"):
        png = out / name
        assert png.is_file() and png.stat().st_size > 1000, png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Keep the last report for a look (not part of the assertions).
    keep = Path(os.environ.get("COMPARE_KEEP_REPORT", ""))
    if keep.name:
        import shutil

        shutil.copytree(out, keep, dirs_exist_ok=True)
