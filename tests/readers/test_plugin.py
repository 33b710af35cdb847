"""The plug-in claim: another maker's polling reader, written here, registered here, and
nothing else edited.

``AcmeReader`` reads "Acme" plugs, a tiny HTTP device on loopback (``AcmePlug``): a login
that hands out a token, a status call with the token. It is what a new maker's package
under otelpower/readers/ holds: the spec, how to log in (``open``), one fetch and how a
failure reads (``classify``). The poll loop is the framework's (readers/polling.py): the
test proves it inherits the grid, the stale policy, backoff with probes, the login gate and
stopping, and that it runs with ``--protocol all`` beside the TP-Link native and Matter
readers without either of them touching the other's plugs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from harness.otlp import Receiver
from harness.ports import free_port
from harness.promtext import find, one, scrape
from harness.wait import wait_for
from otelpower import app, cli
from otelpower.config import Config, ConfigError
from otelpower.config.fields import Fields
from otelpower.config.yamlsource import Path_
from otelpower.core import plausible, quantities
from otelpower.core.model import DeviceStatus, SnapshotStore
from otelpower.core.publisher import PollRecorder
from otelpower.readers import failures, registry
from otelpower.readers.base import Reader, ReaderSpec
from otelpower.readers.polling import Fetched, Polled, PollingReader
from otelpower.readers.registry import load_config
from otelpower.sim import PlugOptions, builtin_profiles
from tests.conftest import make_config

# --- the reader: what a maker writes ---------------------------------------------------------


class LoginRejected(Exception):
    pass


class AcmeLink:
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token

    async def fetch(self) -> Fetched:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.get(f"{self.url}/status", headers=headers) as reply:
            reply.raise_for_status()
            status = await reply.json()
        values = {
            "power_watts": status["watts"],
            "energy_kilowatt_hours": status["kwh"],
            "relay_on": float(status["on"]),
        }
        return Fetched({"model": "ACME-1"}, (plausible.reading(values),), status["mac"])

    async def close(self) -> None:
        await self.http.close()

    def endpoint(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)


class AcmeReader(PollingReader[Polled]):
    def __init__(self, config: Config, spec: ReaderSpec, **kw: Any) -> None:
        super().__init__(config, spec, **kw)
        for device in config.owned_devices(spec):
            self.add(Polled(device))
            self.publish_pending(self.devices[-1])

    async def open(self, device: Polled) -> AcmeLink:
        url = f"http://{device.cfg.section('acme')}"
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(self.config.poll_timeout))
        try:
            async with http.post(f"{url}/login", json={"password": "secret"}) as reply:
                if reply.status == 401:
                    raise LoginRejected("password rejected")
                reply.raise_for_status()
                return AcmeLink(http, url, (await reply.json())["token"])
        except BaseException:
            await http.close()
            raise

    def classify(self, exc: BaseException) -> tuple[DeviceStatus, str]:
        if isinstance(exc, LoginRejected):
            return DeviceStatus.AUTH_FAILED, str(exc)
        library = isinstance(exc, aiohttp.ClientConnectionError)
        return failures.common(exc, self.config.poll_timeout, offline=library)


def parse_acme(r: Fields, raw: Any, path: Path_) -> str | None:
    m = r.mapping(raw, path, {"host"})
    return r.text(m, "host", path, required=True)


def create(config: Config, store: SnapshotStore, recorder: PollRecorder) -> Reader:
    return AcmeReader(config, SPEC, store=store, recorder=recorder)


SPEC = ReaderSpec(
    name="acme",
    vendor="acme",
    protocol="native",  # another maker's own protocol on the LAN: acme_native_*
    description="Acme plugs on the LAN (HTTP), for the plug-in test",
    quantities=(quantities.POWER, quantities.ENERGY_TOTAL, quantities.RELAY_ON),
    create=create,
    device_sections={"acme": parse_acme},
    remedies={DeviceStatus.AUTH_FAILED: "set the Acme password"},
    summary=lambda c: f"{sum(1 for d in c.devices if d.section('acme'))} Acme plugs",
)

# --- the device: a tiny Acme plug on loopback -------------------------------------------------


class AcmePlug:
    """Answers a login (401 when ``rejects``) and a status; ``stop`` closes its port."""

    def __init__(self, mac: str, watts: float, *, rejects: bool = False) -> None:
        self.mac, self.watts, self.rejects = mac, watts, rejects
        self.port, self.logins, self.kwh = free_port(), 0, 1.0
        self.hang = asyncio.Event()  # set: every status request waits forever
        self.hanging = 0  # status requests waiting
        self._runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _login(self, _: web.Request) -> web.Response:
        self.logins += 1
        if self.rejects:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"token": "t0k"})

    async def _status(self, request: web.Request) -> web.Response:
        if self.hang.is_set():
            self.hanging += 1
            await asyncio.Event().wait()
        if request.headers.get("Authorization") != "Bearer t0k":
            return web.json_response({}, status=401)
        self.kwh += self.watts / 3.6e6  # a joule a second per watt
        return web.json_response(
            {"mac": self.mac, "watts": self.watts, "kwh": self.kwh, "on": True}
        )

    async def start(self) -> None:
        application = web.Application()
        application.router.add_post("/login", self._login)
        application.router.add_get("/status", self._status)
        self._runner = web.AppRunner(application, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# --- the tests -------------------------------------------------------------------------------

PROFILES = {p.stem: p for p in builtin_profiles()}
LAMP, LOCKED, FAN = "48:22:54:00:00:a1", "48:22:54:00:00:a2", "48:22:54:00:00:a3"
CONTRACT = {"house", "room", "shelf", "device", "device_id", "protocol"}
INTERVAL, TIMEOUT = 1.0, 2.0


@pytest.fixture
def acme() -> Iterator[ReaderSpec]:
    registry.register(SPEC)
    try:
        yield SPEC
    finally:
        registry.unregister(SPEC.name)


@pytest.fixture
async def plugs() -> AsyncIterator[dict[str, AcmePlug]]:
    devices = {
        LAMP: AcmePlug(LAMP, 42.5),
        LOCKED: AcmePlug(LOCKED, 7.0, rejects=True),
        FAN: AcmePlug(FAN, 12.0),
    }
    for plug in devices.values():
        await plug.start()
    try:
        yield devices
    finally:
        for plug in devices.values():
            plug.hang.clear()
            await plug.stop()


def acme_devices(plugs: dict[str, AcmePlug]) -> list[dict[str, Any]]:
    names = {LAMP: "lamp", LOCKED: "locked", FAN: "fan"}
    return [
        {"device_id": m, "room": "lab", "shelf": "s", "device": names[m], "acme": {"host": p.host}}
        for m, p in plugs.items()
    ]


async def test_another_makers_polling_reader_beside_native_and_matter(
    acme: ReaderSpec, plugs: dict[str, AcmePlug], simulator
) -> None:
    """``--protocol all``: TP-Link's native reader polls only TP-Link plugs, Acme's only
    Acme's; Acme's inherits the stale policy, the probe, the login gate and the stop."""
    (tplink,) = await simulator.start([PlugOptions(PROFILES["p110_klap"])])
    data = simulator.config_dict()
    data["devices"] += acme_devices(plugs)
    data["discovery"] = {"enabled": False}
    closed = free_port()  # the Matter reader runs too, its server away
    config = make_config(
        {**data, "matter": {"url": f"ws://127.0.0.1:{closed}/ws"}},
        poll={"interval": INTERVAL, "timeout": TIMEOUT, "backoff_max": 60},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    runtime = app.Runtime(config, "all")
    async with runtime:
        port = runtime.prometheus_port
        lamp, locked, fan = plugs[LAMP], plugs[LOCKED], plugs[FAN]

        def ready() -> bool:
            s = scrape(port)
            return bool(
                find(s, "acme_native_power_watts", device_id=LAMP)
                and find(s, "tplink_native_power_watts", device_id=tplink.mac)
                and find(s, "acme_native_device_status", device_id=LOCKED, status="auth_failed")
            )

        await wait_for(ready, timeout=30, what="both makers' plugs up", in_thread=True)
        s = scrape(port)
        power = find(s, "acme_native_power_watts", device_id=LAMP)
        ((labels, watts),) = ((dict(k), v) for k, v in power.items())
        assert watts == 42.5 and set(labels) - {"__name__"} == CONTRACT
        assert (
            labels["protocol"] == "native" and one(s, "acme_native_relay_on", device_id=LAMP) == 1
        )
        # each maker's reader reads its own plugs only
        assert not [k for k in find(s, "tplink_native_up") if dict(k)["device_id"] in plugs]
        assert not find(s, "acme_native_up", device_id=tplink.mac)
        assert one(s, "otelpower_poll_errors_total", device_id=LOCKED, kind="auth_failed") == 1

        # offline: up 0 and no values within poll.interval + poll.timeout + 2 s
        await lamp.stop()
        started = time.monotonic()

        def down() -> bool:
            s = scrape(port)
            return one(s, "acme_native_up", device_id=LAMP) == 0 and not find(
                s, "acme_native_power_watts", device_id=LAMP
            )

        await wait_for(down, timeout=30, what="lamp down", in_thread=True)
        assert time.monotonic() - started < INTERVAL + TIMEOUT + 2
        # backs off: the next polls are far apart, but a probe finds it back
        reader = runtime.reader("acme")
        await wait_for(lambda: reader.device(LAMP).failures >= 4, timeout=60, what="backoff")
        assert reader.delay(reader.device(LAMP)) >= 8 * INTERVAL
        await lamp.start()
        started = time.monotonic()
        await wait_for(
            lambda: find(scrape(port), "acme_native_power_watts", device_id=LAMP),
            timeout=30,
            what="lamp back",
            in_thread=True,
        )
        assert time.monotonic() - started < INTERVAL + 2.0  # a probe, a login and a poll

        # a rejected login is a standing fault: not tried again while the test runs
        assert locked.logins == 1

        fan.hang.set()  # a poll in flight when the reader is asked to stop
        await wait_for(lambda: fan.hanging > 0, timeout=10, what="a poll in flight")
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2.0
    assert locked.logins == 1


async def test_it_exports_over_otlp_under_its_own_name(
    acme: ReaderSpec,
    plugs: dict[str, AcmePlug],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")
    config = make_config(
        {"house": "lab", "devices": acme_devices(plugs)},
        prometheus={"host": "127.0.0.1", "port": 0},
    )
    async with app.Runtime(config, "acme"):

        def exported() -> dict[str, str] | None:
            for request in receiver.requests:
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            if m.name == "acme_native_power_watts" and m.gauge.data_points:
                                point = m.gauge.data_points[0]
                                attrs = {a.key: a.value.string_value for a in point.attributes}
                                resource = {
                                    a.key: a.value.string_value for a in rm.resource.attributes
                                }
                                return {**attrs, "resource.protocol": resource["protocol"]}
            return None

        attrs = await wait_for(exported, what="acme power in an OTLP export")
    assert set(attrs) == CONTRACT | {"resource.protocol"}
    assert attrs["device_id"] in plugs and attrs["resource.protocol"] == "acme"


def write_config(tmp_path: Path, host: str = "127.0.0.1:8080") -> Path:
    path = tmp_path / "acme.yaml"
    path.write_text(
        "house: lab\n"
        "devices:\n"
        f"  - {{device_id: '{LAMP}', room: h, shelf: s1, device: lamp, acme: {{host: {host}}}}}\n"
        f"  - {{device_id: '{FAN}', room: h, shelf: s2, device: fan}}\n"
    )
    return path


def test_its_config_section_is_validated_with_lines(acme: ReaderSpec, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), {})
    lamp, fan = config.devices
    assert lamp.vendor == "acme" and fan.vendor == "tplink"  # implied by its maker's section
    assert config.owned_devices(acme) == (lamp,)
    assert config.owned_devices(registry.get("native")) == (fan,)
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("acme: {host", "acme: {hots"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "devices[0].acme.hots (line 3): unknown key (allowed: host)" in str(caught.value)


def test_its_protocol_choice_and_check_summary(
    acme: ReaderSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "acme" in capsys.readouterr().out
    assert cli.main(["check", str(write_config(tmp_path))]) == 0
    assert "1 Acme plugs" in capsys.readouterr().out


def test_the_registry_refuses_a_second_identity(acme: ReaderSpec) -> None:
    from dataclasses import replace

    for clash, why in (
        (replace(SPEC, vendor="acme2"), "registered already"),
        (replace(SPEC, name="acme2"), "acme_native_"),
        (replace(SPEC, name="acme3", vendor="x", protocol="matter"), "x_matter_"),
    ):
        with pytest.raises(ValueError, match=why):
            registry.register(clash)
    assert "acme_native_" in registry.prefixes()


def test_the_builtin_readers_are_registered() -> None:
    assert registry.names()[:2] == ("native", "matter")
    assert registry.protocol_regex() == "native|matter"
    assert "tplink_native_" in registry.prefixes() and "other_matter_" in registry.prefixes()


def test_a_name_must_fit_metric_and_kubernetes_names() -> None:
    from dataclasses import replace

    for bad in (replace(SPEC, name="Acme"), replace(SPEC, name="a_b"), replace(SPEC, name="all")):
        with pytest.raises(ValueError):
            registry.register(bad)
    with pytest.raises(ValueError, match="reserved"):
        registry.register(replace(SPEC, name="z", vendor="other"))
