"""otelpower: smart-plug power readings as OpenTelemetry metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    # the installed distribution's version: the git tag's, set at build time (pyproject.toml)
    __version__ = version("otelpower")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0+unknown"
