"""The /metrics endpoint with TLS and basic auth from a web config file (exporter-toolkit
format), as `otelpower run --web-config` serves it: curl as the client, and Debian's
Prometheus scraping it over TLS with basic auth."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from harness.backends import Prometheus
from harness.tlscerts import Certs, make_certs
from harness.wait import wait_for
from otelpower import app
from otelpower.config import Config
from otelpower.sim import PlugOptions, builtin_profiles
from tests.conftest import make_config

PROFILES = {p.stem: p for p in builtin_profiles()}
USER, PASSWORD = "prometheus", "s3cret-for-tests"


def _web_config(tmp: Path, certs: Certs, *, client_certs: bool = False) -> Path:
    tls = {"cert_file": certs.server_cert.name, "key_file": certs.server_key.name}
    if client_certs:
        tls |= {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "ca.crt"}
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = tmp / ("web-mtls.yml" if client_certs else "web.yml")
    path.write_text(yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": {USER: hashed}}))
    return path


def _curl(url: str, *args: str) -> tuple[int, str]:
    """(HTTP status, body); status 0 when curl could not get an answer at all."""
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        text=True,
        check=False,
    )
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


async def _one_plug(simulator, web_config: Path) -> tuple[Any, Config]:
    """An emulated plug and a config serving /metrics on a free port with ``web_config``."""
    (plug,) = await simulator.start([PlugOptions(PROFILES["kp115_xor"])])
    local = {"host": "127.0.0.1", "port": 0, "web_config": str(web_config)}
    return plug, make_config(simulator.config_dict(), prometheus=local)


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path)


async def test_tls_and_basic_auth(simulator, tmp_path: Path, certs: Certs) -> None:
    plug, config = await _one_plug(simulator, _web_config(tmp_path, certs))
    async with app.Runtime(config, "native") as runtime:
        base = f"https://127.0.0.1:{runtime.prometheus_port}"
        ca = ("--cacert", str(certs.ca))
        good = (*ca, "-u", f"{USER}:{PASSWORD}")

        def scraped() -> bool:
            code, body = _curl(f"{base}/metrics", *good)
            return code == 200 and plug.mac in body

        await wait_for(scraped, timeout=30, in_thread=True)
        assert (await asyncio.to_thread(_curl, f"{base}/metrics", *ca, "-u", f"{USER}:wrong"))[
            0
        ] == 401
        assert (await asyncio.to_thread(_curl, f"{base}/metrics", *ca))[0] == 401
        assert (await asyncio.to_thread(_curl, f"{base}/", *ca))[0] == 401
        # probes need no user (Kubernetes: scheme HTTPS, no credentials)
        assert (await asyncio.to_thread(_curl, f"{base}/healthz", *ca))[0] == 200
        assert (await asyncio.to_thread(_curl, f"{base}/readyz", *ca))[0] == 200
        # plain HTTP against the TLS port, and TLS without trusting the CA: no answer
        plain = base.replace("https://", "http://")
        assert (await asyncio.to_thread(_curl, f"{plain}/metrics", "-u", f"{USER}:{PASSWORD}"))[
            0
        ] in (0, 400)
        assert (await asyncio.to_thread(_curl, f"{base}/metrics", "-u", f"{USER}:{PASSWORD}"))[
            0
        ] == 0
        assert await asyncio.to_thread(scraped)  # the endpoint survived all of that


async def test_client_certificates(simulator, tmp_path: Path, certs: Certs) -> None:
    _, config = await _one_plug(simulator, _web_config(tmp_path, certs, client_certs=True))
    async with app.Runtime(config, "native") as runtime:
        url = f"https://127.0.0.1:{runtime.prometheus_port}/metrics"
        good = ("--cacert", str(certs.ca), "-u", f"{USER}:{PASSWORD}")
        client = ("--cert", str(certs.client_cert), "--key", str(certs.client_key))
        assert (await asyncio.to_thread(_curl, url, *good))[0] == 0  # no client certificate
        assert (await asyncio.to_thread(_curl, url, *good, *client))[0] == 200


async def test_prometheus_scrapes_over_tls_with_basic_auth(
    simulator, tmp_path: Path, certs: Certs, prometheus_binary: Path
) -> None:
    plug, config = await _one_plug(simulator, _web_config(tmp_path, certs))
    async with app.Runtime(config, "native") as runtime:
        scrape = f"""\
  - job_name: otelpower
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: {certs.ca}}}
    basic_auth: {{username: {USER}, password: {PASSWORD}}}
    static_configs: [{{targets: ["127.0.0.1:{runtime.prometheus_port}"]}}]
  - job_name: wrong-password
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: {certs.ca}}}
    basic_auth: {{username: {USER}, password: nope}}
    static_configs: [{{targets: ["127.0.0.1:{runtime.prometheus_port}"]}}]
"""
        prom = Prometheus(tmp_path, scrape, binary=prometheus_binary)
        prom.start()
        try:
            power = f'tplink_native_power_watts{{device_id="{plug.mac}"}}'
            await wait_for(lambda: prom.query(power), timeout=60, in_thread=True)

            def up() -> dict[str, str]:
                return {r["metric"]["job"]: r["value"][1] for r in prom.query("up")}

            await wait_for(lambda: len(up()) == 2, timeout=30, in_thread=True)  # both scraped
            assert await asyncio.to_thread(up) == {"otelpower": "1", "wrong-password": "0"}
        finally:
            prom.stop()
