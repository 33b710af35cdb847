"""Configuration: the YAML source with line numbers, the schema, and sharding."""

from otelpower.config.schema import (
    Config,
    ConfigError,
    DeviceConfig,
    load_config,
    normalize_mac,
    parse_config,
)

__all__ = ["Config", "ConfigError", "DeviceConfig", "load_config", "normalize_mac", "parse_config"]
