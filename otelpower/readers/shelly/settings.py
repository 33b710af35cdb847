"""The Shelly reader's config: ``devices[].shelly: {host}`` and the account's password.

Gen2+ devices have one user, ``admin``, whose password is optional (SHA-256 digest when set):
it comes from ``SHELLY_PASSWORD``, or the top-level ``shelly: {password_file}`` (a mounted
secret); a literal password in the file is refused, as for TP-Link.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from otelpower.config import Config, DeviceConfig
from otelpower.config.fields import Fields
from otelpower.config.yamlsource import Path_

USERNAME = "admin"  # the only user of a Gen2+ device
PASSWORD_ENV = "SHELLY_PASSWORD"
DEFAULT_PORT = 80
MAX_PASSWORD_FILE = 4096


@dataclass(frozen=True)
class ShellyTarget:
    host: str
    port: int = DEFAULT_PORT

    def claim(self) -> tuple[tuple[str, ...], str]:
        """One device per address (checked across devices by the config)."""
        return ("host",), f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ShellyAuth:
    password: str = field(default="", repr=False)


def split_host(text: str) -> tuple[str, int]:
    """``host`` or ``host:port`` (an IPv6 address in brackets); ValueError when malformed."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise ValueError(f"not a host or host:port: {text!r} (e.g. 192.168.1.40 or shelly.lan:80)")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port must be 1-65535 in {text!r}")
        port = int(port_text)
    return host, port


def parse_device(r: Fields, raw: Any, path: Path_) -> ShellyTarget | None:
    m = r.mapping(raw, path, {"host"})
    text = r.text(m, "host", path, required=True)
    if text is None:
        return None
    try:
        host, port = split_host(text)
    except ValueError as exc:
        r.doc.problem((*path, "host"), str(exc))
        return None
    return ShellyTarget(host, port)


def parse_auth(r: Fields, raw: Any, path: Path_) -> ShellyAuth:
    m = r.mapping(raw, path, {"password", "password_file"})
    if "password" in m:
        r.doc.problem(
            (*path, "password"),
            f"a password is never written in the file: set {PASSWORD_ENV}, or password_file",
        )
    # a missing file (an optional Secret not created): devices without a password still work
    what = "Shelly password (devices without one still work)"
    text = r.secret_file(m, "password_file", path, what, MAX_PASSWORD_FILE)
    return ShellyAuth(r.environ.get(PASSWORD_ENV, "") if text is None else text)


def target(device: DeviceConfig) -> ShellyTarget | None:
    return device.section("shelly")


def auth(config: Config) -> ShellyAuth:
    return config.section("shelly") or ShellyAuth()


def with_password(config: Config, password: str) -> Config:
    return config.with_section("shelly", replace(auth(config), password=password))
