"""The Matter reader's config sections: ``matter.url`` and ``devices[].matter.node_id``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otelpower.config.fields import Fields
from otelpower.config.schema import Config, DeviceConfig
from otelpower.config.yamlsource import Path_


@dataclass(frozen=True)
class MatterServer:
    url: str | None = None


def server_url(config: Config) -> str | None:
    settings: MatterServer | None = config.section("matter")
    return settings.url if settings else None


def url_problem(url: str) -> str | None:
    if url.startswith(("ws://", "wss://")):
        return None
    return f"must be a ws:// or wss:// URL, got {url!r}"


def with_server_url(config: Config, url: str) -> Config:
    """``run --matter-server URL``; ValueError for a URL that is not a WebSocket one."""
    if problem := url_problem(url):
        raise ValueError(problem)
    return config.with_section("matter", MatterServer(url))


def node_id(config: DeviceConfig) -> int | None:
    return config.section("matter")


def parse_server(r: Fields, raw: Any, path: Path_) -> MatterServer:
    m = r.mapping(raw, path, {"url"})
    url = r.text(m, "url", path)
    if url is not None and (problem := url_problem(url)):
        r.doc.problem((*path, "url"), problem)
        return MatterServer()
    return MatterServer(url)


def parse_node(r: Fields, raw: Any, path: Path_) -> int | None:
    m = r.mapping(raw, path, {"node_id"})
    return r.integer(m, "node_id", path, None, 1, 2**64 - 1)
