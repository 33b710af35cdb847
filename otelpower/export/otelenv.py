"""The OpenTelemetry environment variables otelpower reads, checked before anything starts.

What they mean follows the OTel SDK configuration spec: ``OTEL_SDK_DISABLED=true`` turns every
exporter off; ``OTEL_METRICS_EXPORTER`` (``otlp``, ``prometheus``, ``none``, comma-separated)
picks them, and when unset otelpower serves /metrics and pushes OTLP only when an endpoint is
set; ``OTEL_SERVICE_NAME`` names the service (``job`` in Prometheus terms).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

EXPORTERS = ("otlp", "prometheus", "none")
PROTOCOLS = ("grpc", "http/protobuf")
_BOOLEANS = {"true": True, "false": False}
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
_PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
_MILLISECONDS = ("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT")
_SECONDS = ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT")


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    return _BOOLEANS.get(environ.get("OTEL_SDK_DISABLED", "false").strip().lower(), False)


def metrics_exporters(environ: Mapping[str, str]) -> set[str] | None:
    """The exporters asked for, or None when OTEL_METRICS_EXPORTER is unset (our default)."""
    if sdk_disabled(environ):
        return set()
    raw = environ.get("OTEL_METRICS_EXPORTER", "").strip()
    if not raw:
        return None
    return {n.strip().lower() for n in raw.split(",") if n.strip()} - {"none"}


def stale_markers(environ: Mapping[str, str]) -> bool:
    """OTELPOWER_STALE_MARKERS (default true): mark vanished series stale over OTLP."""
    return _BOOLEANS.get(environ.get("OTELPOWER_STALE_MARKERS", "true").strip().lower(), True)


def service_name(environ: Mapping[str, str], default: str) -> str:
    return environ.get("OTEL_SERVICE_NAME", "").strip() or default


def problems(environ: Mapping[str, str]) -> list[str]:
    """One line per variable with a value otelpower cannot use (empty when all is well).
    An empty variable is unset, as the OTel spec has it (compose's ``${VAR:-}`` sets one)."""
    environ = {name: value for name, value in environ.items() if value != ""}
    out = []

    def bad(name: str, why: str) -> None:
        out.append(f"{name}={environ[name]!r}: {why}")

    for name in ("OTEL_SDK_DISABLED", "OTELPOWER_STALE_MARKERS"):
        if name in environ and environ[name].strip().lower() not in _BOOLEANS:
            bad(name, "must be true or false")
    if "OTEL_METRICS_EXPORTER" in environ:
        names = [n.strip().lower() for n in environ["OTEL_METRICS_EXPORTER"].split(",")]
        unknown = [n for n in names if n not in EXPORTERS]
        if unknown or not names:
            bad(name="OTEL_METRICS_EXPORTER", why=f"expected a list of {', '.join(EXPORTERS)}")
    for name in _PROTOCOL_VARS:
        if name in environ and environ[name].strip() not in PROTOCOLS:
            bad(name, f"not supported (use {' or '.join(PROTOCOLS)})")
    for name in _ENDPOINTS:
        if name in environ and (why := _endpoint_problem(environ[name])):
            bad(name, why)
    for name in _MILLISECONDS:
        if name in environ and not _positive(environ[name], integer=True):
            bad(name, "must be a whole number of milliseconds > 0")
    for name in _SECONDS:
        if name in environ and not _positive(environ[name], integer=False):
            bad(name, "must be a number of seconds > 0")
    name = "OTELPOWER_OTLP_RESEND_POINTS"
    if name in environ and not (environ[name].strip().isdigit() or not environ[name].strip()):
        bad(name, "must be a whole number of data points (0: no resend buffer)")
    return out


def _positive(text: str, *, integer: bool) -> bool:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        return False
    return value > 0 and value < float("inf")


def _endpoint_problem(text: str) -> str | None:
    if not text.strip():
        return None  # empty: OTLP off
    try:
        parts = urlsplit(text.strip())
        _ = parts.port  # ValueError for a port out of range or not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL, e.g. http://otelcol:4317"
    return None
