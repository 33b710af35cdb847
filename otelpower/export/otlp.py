"""The OTLP metric exporter the standard ``OTEL_EXPORTER_OTLP_*`` variables ask for."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry.sdk.metrics.export import MetricExporter

from otelpower.export import otelenv, resend
from otelpower.export.stale import StaleMarkingExporter, flag_markers

if TYPE_CHECKING:
    from opentelemetry.exporter.http.transport._base import BaseHTTPTransport

#: the SDK exporters' loggers: an ERROR and a WARNING per failed export while the collector is
#: down. Their records are kept from the log (reason remembered) unless at DEBUG; otelpower
#: logs one line when exports start failing and one when they work again (stale.py).
SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


class SdkReasons(logging.Filter):
    """Holds back the SDK exporters' per-export lines, remembering the first reason given
    since the last ``take`` (the first says why: "Service Unavailable", not "max retries")."""

    def __init__(self) -> None:
        super().__init__()
        self._first = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and not self._first:
            self._first = " ".join(record.getMessage().split())[:300]
        return logging.getLogger().getEffectiveLevel() <= logging.DEBUG

    def take(self) -> str:
        first, self._first = self._first, ""
        return first


_REASONS = SdkReasons()
for _name in SDK_LOGGERS:
    logging.getLogger(_name).addFilter(_REASONS)


#: what only the SDK's default transport (``requests``) honours
_REQUESTS_ONLY = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_METRICS_CREDENTIAL_PROVIDER",
)


def _plain_http_transport(
    environ: Mapping[str, str], endpoint: str | None
) -> BaseHTTPTransport | None:
    """The SDK's urllib3 transport for a plain ``http://`` collector, or None (the SDK's
    default, ``requests``: its CA bundle, proxies, credential providers).

    ``requests`` costs ~3.4 MB of every process that imports it, for nothing a plaintext
    request to a collector needs; over TLS, or with a proxy or credential provider set, the
    exporter keeps it, so that nothing a user relies on changes."""
    if not (endpoint or "http://localhost").lower().startswith("http://"):
        return None
    if any(environ.get(name) or environ.get(name.lower()) for name in _REQUESTS_ONLY):
        return None
    # the SDK's own, in the exporter's dependency: only its registry names it publicly yet
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

    return Urllib3HTTPTransport(verify=True, cert=None)


def otlp_exporter(
    environ: Mapping[str, str], wanted: bool | None = None
) -> StaleMarkingExporter | None:
    """The OTLP metric exporter the standard env vars ask for, or None.

    ``wanted`` (from OTEL_METRICS_EXPORTER): None exports when an endpoint is set, True always
    (the SDK's default endpoint when none is set), False never. Vanished series get stale
    markers (see otelpower.export.stale) unless ``OTELPOWER_STALE_MARKERS=false``; a batch
    the collector did not take is sent again (otelpower.export.resend).
    """
    endpoint = environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if wanted is False or (wanted is None and not endpoint):
        return None
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    exporter: MetricExporter
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        class GrpcExporter(OTLPMetricExporter):
            def _translate_data(self, data):  # type: ignore[no-untyped-def]
                request = super()._translate_data(data)
                flag_markers(request)
                return request

        exporter = GrpcExporter()
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpOTLPMetricExporter,
        )

        class HttpExporter(HttpOTLPMetricExporter):
            def _export_batch(self, export_request):  # type: ignore[no-untyped-def]
                flag_markers(export_request)
                return super()._export_batch(export_request)

        exporter = HttpExporter(_transport=_plain_http_transport(environ, endpoint))
    else:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (use grpc or http/protobuf)"
        )
    return StaleMarkingExporter(
        resend.ResendingExporter(exporter, resend.max_points(environ)),
        markers=otelenv.stale_markers(environ),
        target=endpoint or f"the SDK's default endpoint ({protocol})",
        reason=_REASONS.take,
    )
