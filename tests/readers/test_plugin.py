"""The plug-in claim: a reader written here, registered here, and nothing else edited.

The reader below serves values from its config (``devices[].acme.watts``): it is what a new
vendor's package under otelpower/readers/ would hold, minus the network I/O. Registered with
one call, it gets /metrics and OTLP under the contract's names and labels, its config section
validated with line numbers, its ``--protocol`` choice and its ``check`` summary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.otlp import Receiver
from harness.promtext import find, one, scrape
from harness.wait import wait_for
from otelpower import app, cli
from otelpower.config import Config, ConfigError
from otelpower.config.fields import Fields
from otelpower.config.yamlsource import Path_
from otelpower.core import plausible, quantities
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers import registry
from otelpower.readers.base import Reader, ReaderSpec
from otelpower.readers.registry import load_config

# --- the reader: what a vendor writes -------------------------------------------------------


class AcmeReader(Reader):
    """Every poll interval, each device's configured watts (no watts: the device is offline)."""

    async def run(self) -> None:
        while True:
            for dev in self.config.owned_devices():
                watts = dev.section("acme")
                status = DeviceStatus.OK if watts is not None else DeviceStatus.OFFLINE
                self.publisher.publish(
                    dev.device_id,
                    dev.labels(self.config.house),
                    status,
                    who=dev.device,
                    info={"model": "ACME-1"},
                    readings=(plausible.reading({"power_watts": watts}),) if watts else (),
                    detail="" if watts else "no watts configured",
                )
                self.publisher.polled(dev.device_id, dev.device, 0.001, status)
            await asyncio.sleep(self.config.poll_interval)


def parse_acme(r: Fields, raw: Any, path: Path_) -> float | None:
    m = r.mapping(raw, path, {"watts"})
    return r.number(m, "watts", path, 0.0, 0, 3_000) or None


def create(config: Config, store: SnapshotStore, recorder: PollRecorder) -> Reader:
    return AcmeReader(config, SPEC, store=store, recorder=recorder)


SPEC = ReaderSpec(
    name="acme",
    vendor="acme",
    protocol="acme",
    description="values from the config, for the plug-in test",
    quantities=(quantities.POWER,),
    create=create,
    device_sections={"acme": parse_acme},
    remedies={DeviceStatus.OFFLINE: "give it watts"},
    summary=lambda c: f"{sum(1 for d in c.devices if d.section('acme'))} with acme watts",
)

# --- the test --------------------------------------------------------------------------------

PLUG, IDLE = "48:22:54:00:00:a1", "48:22:54:00:00:a2"
CONTRACT = {"house", "room", "shelf", "device", "device_id", "protocol"}


@pytest.fixture
def acme() -> Iterator[ReaderSpec]:
    registry.register(SPEC)
    try:
        yield SPEC
    finally:
        registry.unregister(SPEC.name)


def write_config(tmp_path: Path, watts: str = "42.5") -> Path:
    path = tmp_path / "acme.yaml"
    path.write_text(
        "house: lab\n"
        "poll: {interval: 0.2}\n"
        "prometheus: {host: 127.0.0.1, port: 0}\n"
        "devices:\n"
        f"  - {{device_id: '{PLUG}', room: h, shelf: s1, device: lamp, acme: {{watts: {watts}}}}}\n"
        f"  - {{device_id: '{IDLE}', room: h, shelf: s2, device: fan}}\n"
    )
    return path


async def test_a_registered_reader_gets_metrics_and_otlp(
    acme: ReaderSpec, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")
    config = load_config(write_config(tmp_path), {})
    async with app.Runtime(config, "acme") as runtime:
        port = runtime.prometheus_port

        def power() -> dict:
            return find(scrape(port), "acme_acme_power_watts")

        series = await wait_for(power, what="acme power on /metrics", in_thread=True)
        ((labels, watts),) = ((dict(k), v) for k, v in series.items())
        assert watts == 42.5 and set(labels) - {"__name__"} == CONTRACT
        assert labels["device_id"] == PLUG and labels["protocol"] == "acme"
        s = scrape(port)
        assert one(s, "acme_acme_up", device_id=PLUG) == 1
        assert one(s, "acme_acme_up", device_id=IDLE) == 0  # stale policy: no value for it
        assert not find(s, "acme_acme_power_watts", device_id=IDLE)
        assert one(s, "acme_acme_device_info", device_id=PLUG, model="ACME-1") == 1
        assert one(s, "otelpower_poll_errors_total", device_id=IDLE, kind="offline") >= 1

        def exported() -> dict[str, str] | None:
            for request in receiver.requests:
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            if m.name == "acme_acme_power_watts" and m.gauge.data_points:
                                point = m.gauge.data_points[0]
                                attrs = {a.key: a.value.string_value for a in point.attributes}
                                resource = {
                                    a.key: a.value.string_value for a in rm.resource.attributes
                                }
                                return {**attrs, "resource.protocol": resource["protocol"]}
            return None

        attrs = await wait_for(exported, what="acme power in an OTLP export")
    assert set(attrs) == CONTRACT | {"resource.protocol"}
    assert attrs["device_id"] == PLUG and attrs["resource.protocol"] == "acme"


def test_its_config_section_is_validated_with_lines(acme: ReaderSpec, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, watts="lots"), {})
    assert "devices[0].acme.watts (line 5): must be a number" in str(caught.value)
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("acme: {watts", "acme: {volts"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "devices[0].acme.volts (line 5): unknown key (allowed: watts)" in str(caught.value)


def test_its_protocol_choice_and_check_summary(
    acme: ReaderSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "acme" in capsys.readouterr().out
    assert cli.main(["check", str(write_config(tmp_path))]) == 0
    assert "1 with acme watts" in capsys.readouterr().out


def test_the_builtin_readers_are_registered() -> None:
    assert registry.names()[:2] == ("native", "matter")
    assert registry.protocol_regex() == "native|matter"
