"""Configuration: YAML documents (GatewayConfig and the service kinds) to one typed, checked Config.

`load(paths)` reads files and folders and returns a checked `Config` or raises `ConfigError` with every
problem found; `routing_table(config)` renders what `gateway validate` prints.
"""

from __future__ import annotations

from gateway.config.errors import ConfigError
from gateway.config.listing import routing_table
from gateway.config.loader import SUPPORTED_KINDS, load
from gateway.config.model import (
    ActivatorSettings,
    AutoscalerSettings,
    BackendKind,
    Config,
    GatewaySettings,
    KubernetesSettings,
    Metric,
    ProxySettings,
    RevisionSpec,
    ScalingSpec,
    ServiceSpec,
    Source,
)
from gateway.config.values import parse_duration

__all__ = [
    "SUPPORTED_KINDS",
    "ActivatorSettings",
    "AutoscalerSettings",
    "BackendKind",
    "Config",
    "ConfigError",
    "GatewaySettings",
    "KubernetesSettings",
    "Metric",
    "ProxySettings",
    "RevisionSpec",
    "ScalingSpec",
    "ServiceSpec",
    "Source",
    "load",
    "parse_duration",
    "routing_table",
]
