"""The native reader's config sections: ``devices[].native``, ``discovery``, ``credentials``."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any

from otelpower.config.fields import Fields
from otelpower.config.schema import Config, DeviceConfig
from otelpower.config.yamlsource import Path_

DEFAULT_TARGETS = ("255.255.255.255",)
#: devices[].native.transport: the login a plug is pinned to (a link's ``kind``)
PINS = ("XOR", "KLAP", "AES", "TPAP")
#: discovery.max_adopted: plugs the file does not list that are read at most
MAX_ADOPTED = 64

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NativeTarget:
    """``devices[].native``: where the plug is, when discovery should not be relied on."""

    host: str | None = None
    port: int | None = None
    transport: str | None = None  # pinned: only this login is tried, whatever a reply says

    def claim(self) -> tuple[tuple[str, ...], str] | None:
        """One plug per address: two devices with the same host (and port) are refused."""
        if self.host is None:
            return None
        where = self.host.lower().rstrip(".")
        return ("host",), f"host {where}" + (f" port {self.port}" if self.port else "")


@dataclass(frozen=True)
class Discovery:
    enabled: bool = True
    interval: float = 300.0
    targets: tuple[str, ...] = DEFAULT_TARGETS
    #: export plugs the file does not list; None: only when the file lists none
    adopt: bool | None = None
    max_adopted: int = MAX_ADOPTED


@dataclass(frozen=True)
class CredentialsConfig:
    """Plug account credentials. ``repr`` never shows the password."""

    username: str = ""
    password: str = field(default="", repr=False)
    #: log in to plugs that speak AES, whose login sends the password to whatever answers
    allow_aes: bool = False

    @property
    def present(self) -> bool:
        return bool(self.username or self.password)


def target(config: DeviceConfig) -> NativeTarget | None:
    return config.section("native")


def discovery(config: Config) -> Discovery:
    return config.section("discovery") or Discovery()


def adopts(config: Config) -> bool:
    """Whether plugs that discovery finds and the file does not list are exported."""
    found = discovery(config)
    adopt = not config.devices_listed if found.adopt is None else found.adopt
    return found.enabled and adopt


def with_targets(config: Config, targets: list[str]) -> Config:
    """``run --target ADDR``: probe these addresses instead of the file's targets."""
    for t in targets:
        if problem := host_problem(t):
            raise ValueError(problem)
    return config.with_section("discovery", replace(discovery(config), targets=tuple(targets)))


def credentials(config: Config) -> CredentialsConfig:
    return config.section("credentials") or CredentialsConfig()


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


def host_problem(value: str) -> str | None:
    """Why ``value`` is neither an IP address nor a host name, or None."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(value)
        return None
    name = value.rstrip(".")
    if name and len(name) <= 253 and all(_LABEL.match(label) for label in name.split(".")):
        return None
    return f"{value!r} is neither an IP address nor a host name"


def _host(r: Fields, m: dict[str, Any], key: str, path: Path_) -> str | None:
    value = r.text(m, key, path)
    if value is not None and (problem := host_problem(value)):
        r.doc.problem((*path, key), problem)
        return None
    return value


def parse_target(r: Fields, raw: Any, path: Path_) -> NativeTarget:
    m = r.mapping(raw, path, {"host", "port", "transport"})
    pin = m.get("transport")
    if isinstance(pin, str) and pin.upper() in PINS:  # any case: klap, KLAP
        pin = pin.upper()
    elif pin is not None:  # Fields.choice, but showing the value as written
        r.doc.problem((*path, "transport"), f"must be one of {', '.join(PINS)}, got {pin!r:.40}")
        pin = None
    if pin is not None and m.get("host") is None:
        r.doc.problem((*path, "transport"), "pins the plug's login: give its host too")
    return NativeTarget(
        host=_host(r, m, "host", path),
        port=r.integer(m, "port", path, None, 1, 65535),
        transport=pin,
    )


def parse_discovery(r: Fields, raw: Any, path: Path_) -> Discovery:
    m = r.mapping(raw, path, {"enabled", "interval", "targets", "adopt", "max_adopted"})
    targets = DEFAULT_TARGETS
    if "targets" in m:
        raw_targets = m["targets"]
        if not isinstance(raw_targets, list) or not all(isinstance(t, str) for t in raw_targets):
            r.doc.problem((*path, "targets"), "must be a list of addresses")
        else:
            for i, target in enumerate(raw_targets):
                if problem := host_problem(target):
                    r.doc.problem((*path, "targets", i), problem)
            targets = tuple(raw_targets)
    return Discovery(
        enabled=r.flag(m, "enabled", path, True),
        interval=r.number(m, "interval", path, 300.0, 1, 86400),
        targets=targets,
        adopt=r.flag(m, "adopt", path, False) if "adopt" in m else None,
        max_adopted=r.integer(m, "max_adopted", path, MAX_ADOPTED, 0, 10000) or 0,
    )


def parse_credentials(r: Fields, raw: Any, path: Path_) -> CredentialsConfig:
    """Credentials from ${VAR} references or mounted secret files; never literal passwords."""
    keys = {"username", "password", "username_file", "password_file", "allow_aes"}
    m = r.mapping(raw, path, keys)
    if "password" in m and (*path, "password") not in r.doc.from_env:
        r.doc.problem(
            (*path, "password"),
            "a literal password is not allowed in the file; use ${KASA_PASSWORD} or password_file",
        )
    elif (*path, "password") in r.doc.defaulted:
        r.doc.problem(
            (*path, "password"),
            "the default after ':-' is a literal password in the file; use ${KASA_PASSWORD:-}",
        )
    values: dict[str, str] = {}
    for name in ("username", "password"):
        file_key = f"{name}_file"
        env = r.environ.get(f"KASA_{name.upper()}", "")
        if m.get(file_key) is not None:
            # a missing file (an optional Secret not created): plugs that need none still work
            what = f"{name} (plugs that need none still work)"
            text = r.secret_file(m, file_key, path, what)
            values[name] = env if text is None else text
        elif name in m and m[name] is not None:
            values[name] = str(m[name])
        else:
            values[name] = env
    # a *_file of the wrong type is already a problem, reported by raise_if_problems
    return CredentialsConfig(
        values.get("username", ""),
        values.get("password", ""),
        allow_aes=r.flag(m, "allow_aes", path, False),
    )
