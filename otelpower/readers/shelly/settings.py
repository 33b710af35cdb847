"""The Shelly reader's config: ``devices[].shelly: {host}`` and the account's password.

Gen2+ devices have one user, ``admin``, whose password is optional (SHA-256 digest when set):
it comes from ``SHELLY_PASSWORD``, or the top-level ``shelly: {password_file}`` (a mounted
secret); a literal password in the file is refused, as for TP-Link.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from otelpower.config import Config, DeviceConfig
from otelpower.config.fields import Fields
from otelpower.config.yamlsource import Path_

log = logging.getLogger(__name__)

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
    password = r.environ.get(PASSWORD_ENV, "")
    file = r.text(m, "password_file", path)
    if file:
        secret = Path(file)
        try:
            if secret.exists() and not secret.is_file():
                raise IsADirectoryError(0, "not a regular file")
            with secret.open("rb") as f:
                data = f.read(MAX_PASSWORD_FILE + 1)
            if len(data) > MAX_PASSWORD_FILE:
                r.doc.problem((*path, "password_file"), f"{file} is over {MAX_PASSWORD_FILE} bytes")
            else:
                password = data.decode("utf-8").strip()
        except UnicodeDecodeError:  # never show a byte of it
            r.doc.problem((*path, "password_file"), "the secret file is not UTF-8 text")
        except FileNotFoundError:
            # an optional Secret that was not created: devices without a password still work,
            # and no other reader's start depends on it
            log.warning(
                "%s: shelly.password_file %s does not exist: no Shelly password"
                " (devices without one still work)",
                r.doc.source,
                file,
            )
        except OSError as exc:
            r.doc.problem((*path, "password_file"), f"cannot read secret file: {exc.strerror}")
    return ShellyAuth(password)


def target(device: DeviceConfig) -> ShellyTarget | None:
    return device.section("shelly")


def auth(config: Config) -> ShellyAuth:
    return config.section("shelly") or ShellyAuth()


def with_password(config: Config, password: str) -> Config:
    return config.with_section("shelly", replace(auth(config), password=password))
