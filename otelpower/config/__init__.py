"""Configuration: the YAML source with line numbers, the schema, and sharding."""

from otelpower.config.schema import (
    UNASSIGNED,
    Config,
    ConfigError,
    DeviceConfig,
    load_config,
    normalize_mac,
    parse_config,
)

__all__ = [
    "UNASSIGNED",
    "Config",
    "ConfigError",
    "DeviceConfig",
    "load_config",
    "normalize_mac",
    "parse_config",
]
