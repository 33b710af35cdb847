"""otelpower: smart-plug power readings as OpenTelemetry metrics."""

try:
    # written by the build (hatch-vcs, pyproject.toml): the git tag's version
    from otelpower._version import __version__
except ImportError:  # a source tree that was never built or installed
    __version__ = "0.0.0+unknown"
