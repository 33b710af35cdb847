"""The real pipeline fixtures of tests/pipeline (VictoriaMetrics + collector), re-exported."""

from tests.pipeline.conftest import (  # noqa: F401  (fixtures)
    collector,
    collector_binary,
    otlp_env,
    victoria_metrics,
    vm_binary,
)
