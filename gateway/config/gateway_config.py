"""GatewayConfig (serving-gateway/v1): our own document, so unknown keys are errors, not warnings."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import replace
from typing import cast
from urllib.parse import urlsplit

from gateway.config.cluster import KUBERNETES, owner_from
from gateway.config.errors import DocContext
from gateway.config.model import (
    ActivatorSettings,
    AutoscalerSettings,
    BackendKind,
    GatewaySettings,
    KubernetesSettings,
    ProxySettings,
    StorageSettings,
)
from gateway.config.sections import SectionKey, read_keys, read_section, section_key
from gateway.config.values import (
    boolean,
    byte_size,
    check_keys,
    choice,
    describe,
    domain,
    duration,
    integer,
    join,
    listen_address,
    mapping,
    number,
    sequence,
    string,
)

API_VERSION = "serving-gateway/v1"
KIND = "GatewayConfig"
BACKENDS: tuple[BackendKind, ...] = ("local", "kubernetes", "static")


def _positive_duration(ctx: DocContext, path: str, value: object) -> float | None:
    return duration(ctx, path, value, ok=lambda v: v > 0, expect="> 0")


def _rate(ctx: DocContext, path: str, value: object) -> float | None:
    return number(ctx, path, value, ok=lambda v: v > 1, expect="> 1")


def _at_least_hundredth(ctx: DocContext, path: str, value: object) -> float | None:
    return number(ctx, path, value, ok=lambda v: v >= 0.01, expect=">= 0.01")


def _utilization(ctx: DocContext, path: str, value: object) -> float | None:
    found = number(ctx, path, value, ok=lambda v: 0 < v <= 100, expect="in (0, 100]")
    if found is not None and found <= 1:
        return found * 100  # Knative reads a value <= 1 as a fraction
    return found


_AUTOSCALER: dict[str, SectionKey[AutoscalerSettings]] = {
    "stableWindow": section_key(
        lambda c, p, v: duration(c, p, v, ok=lambda s: 6 <= s <= 3600, expect="6s..1h", whole_seconds=True),
        lambda s, v: replace(s, stable_window=v),
    ),
    "panicWindowPercentage": section_key(
        lambda c, p, v: number(c, p, v, ok=lambda n: 1 <= n <= 100, expect="1..100"),
        lambda s, v: replace(s, panic_window_percentage=v),
    ),
    "panicThresholdPercentage": section_key(
        lambda c, p, v: number(c, p, v, ok=lambda n: n > 0, expect="> 0"),
        lambda s, v: replace(s, panic_threshold_percentage=v),
    ),
    "maxScaleUpRate": section_key(_rate, lambda s, v: replace(s, max_scale_up_rate=v)),
    "maxScaleDownRate": section_key(_rate, lambda s, v: replace(s, max_scale_down_rate=v)),
    "scaleToZeroGracePeriod": section_key(_positive_duration, lambda s, v: replace(s, scale_to_zero_grace_period=v)),
    "scaleToZeroPodRetentionPeriod": section_key(
        lambda c, p, v: duration(c, p, v, ok=lambda s: 0 <= s <= 3600, expect="0s..1h"),
        lambda s, v: replace(s, scale_to_zero_pod_retention_period=v),
    ),
    "scaleDownDelay": section_key(
        lambda c, p, v: duration(c, p, v, ok=lambda s: s >= 0, expect=">= 0s", whole_seconds=True),
        lambda s, v: replace(s, scale_down_delay=v),
    ),
    "targetBurstCapacity": section_key(
        lambda c, p, v: number(c, p, v, ok=lambda n: n >= 0 or n == -1, expect=">= 0 or -1"),
        lambda s, v: replace(s, target_burst_capacity=v),
    ),
    "containerConcurrencyTargetDefault": section_key(
        _at_least_hundredth, lambda s, v: replace(s, container_concurrency_target_default=v)
    ),
    "targetUtilization": section_key(_utilization, lambda s, v: replace(s, target_utilization=v)),
    # Knative's own name for it (container-concurrency-target-percentage)
    "containerConcurrencyTargetPercentage": section_key(_utilization, lambda s, v: replace(s, target_utilization=v)),
    "requestsPerSecondTargetDefault": section_key(
        _at_least_hundredth, lambda s, v: replace(s, requests_per_second_target_default=v)
    ),
    "enableScaleToZero": section_key(boolean, lambda s, v: replace(s, enable_scale_to_zero=v)),
    "initialScale": section_key(lambda c, p, v: integer(c, p, v, lo=0), lambda s, v: replace(s, initial_scale=v)),
    "allowZeroInitialScale": section_key(boolean, lambda s, v: replace(s, allow_zero_initial_scale=v)),
    "tickInterval": section_key(_positive_duration, lambda s, v: replace(s, tick_interval=v)),
}

_ACTIVATOR: dict[str, SectionKey[ActivatorSettings]] = {
    "queueDepth": section_key(lambda c, p, v: integer(c, p, v, lo=1), lambda s, v: replace(s, queue_depth=v)),
    "requestTimeout": section_key(_positive_duration, lambda s, v: replace(s, request_timeout=v)),
    "activationTimeout": section_key(_positive_duration, lambda s, v: replace(s, activation_timeout=v)),
}

_PROXY: dict[str, SectionKey[ProxySettings]] = {
    "maxHeaderBytes": section_key(byte_size, lambda s, v: replace(s, max_header_bytes=v)),
    "maxBodyBytes": section_key(byte_size, lambda s, v: replace(s, max_body_bytes=v)),
    "headerTimeout": section_key(_positive_duration, lambda s, v: replace(s, header_timeout=v)),
    "keepaliveTimeout": section_key(_positive_duration, lambda s, v: replace(s, keepalive_timeout=v)),
    "upstreamKeepaliveTimeout": section_key(_positive_duration, lambda s, v: replace(s, upstream_keepalive_timeout=v)),
    "connectTimeout": section_key(_positive_duration, lambda s, v: replace(s, connect_timeout=v)),
    "responseStartTimeout": section_key(_positive_duration, lambda s, v: replace(s, response_start_timeout=v)),
    "drainTimeout": section_key(_positive_duration, lambda s, v: replace(s, drain_timeout=v)),
    "maxResponseHeaderBytes": section_key(byte_size, lambda s, v: replace(s, max_response_header_bytes=v)),
    "maxConnections": section_key(lambda c, p, v: _max_connections(c, p, v), lambda s, v: replace(s, max_connections=v)),
    "trustedProxies": section_key(lambda c, p, v: _cidrs(c, p, v), lambda s, v: replace(s, trusted_proxies=v)),
    "sendTimeout": section_key(_positive_duration, lambda s, v: replace(s, send_timeout=v)),
    "bodyTimeout": section_key(_positive_duration, lambda s, v: replace(s, body_timeout=v)),
}

_STORAGE: dict[str, SectionKey[StorageSettings]] = {
    "maxModelBytes": section_key(byte_size, lambda s, v: replace(s, max_model_bytes=v)),
    "downloadTimeout": section_key(_positive_duration, lambda s, v: replace(s, download_timeout=v)),
}

_SPEC_KEYS = (
    "domain",
    "listen",
    "adminListen",
    "backend",
    "redis",
    "stateDir",
    "secretsFile",
    "autoscaler",
    "activator",
    "proxy",
    "kubernetes",
    "storage",
)


def _max_connections(ctx: DocContext, path: str, value: object) -> int | None:
    if value == 0:
        ctx.error(path, "must be >= 1, got 0 (leave it out to derive it from the open-file limit)")
        return None
    return integer(ctx, path, value, lo=1)


def _cidrs(ctx: DocContext, path: str, value: object) -> tuple[str, ...] | None:
    items = sequence(ctx, path, value)
    if items is None:
        return None
    found = []
    for i, item in enumerate(items):
        text = string(ctx, join(path, i), item)
        if text is None:
            continue
        try:
            found.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            ctx.error(join(path, i), f"must be an IP address or CIDR such as 10.0.0.0/8, got {describe(item)}")
    return tuple(found)


def _redis_url(ctx: DocContext, path: str, value: object) -> str | None:
    """redis://[user:password@]HOST[:PORT][/DB], rediss://... (TLS) or unix:///path/to.sock."""
    problem = _redis_url_problem(value) if isinstance(value, str) else "must be a redis://HOST:PORT URL"
    if problem is None:
        return str(value)
    ctx.error(path, f"{problem}, got {describe(value)}")
    return None


def _redis_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None if parts.path else "must name the socket: unix:///path/to/redis.sock"
    if parts.scheme not in ("redis", "rediss"):
        return "must be a redis://HOST:PORT URL (or rediss:// for TLS, unix:///path for a socket)"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number in 1..65535"
    if not parts.hostname:
        return "must name a host: redis://HOST:PORT"
    if port == 0:
        return "has a port that is not a number in 1..65535"
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return "may end with a database number (redis://HOST:PORT/0), nothing else"
    return None


def _autoscaler(ctx: DocContext, value: object) -> AutoscalerSettings:
    settings = read_section(ctx, "spec.autoscaler", value, AutoscalerSettings(), _AUTOSCALER)
    if settings.initial_scale == 0 and not settings.allow_zero_initial_scale:
        ctx.error("spec.autoscaler.initialScale", "must be >= 1 unless allowZeroInitialScale is true, got 0")
    for key, total in (
        ("containerConcurrencyTargetDefault", settings.container_concurrency_target_default),
        ("requestsPerSecondTargetDefault", settings.requests_per_second_target_default),
    ):
        if total * settings.target_utilization / 100 < 0.01:
            ctx.error(f"spec.autoscaler.{key}", "times targetUtilization must be >= 0.01")
    return settings


def _state_dir(ctx: DocContext, path: str, value: object) -> str | None:
    """A path, relative to the config file (stateDir, secretsFile)."""
    text = string(ctx, path, value)
    return None if text is None else os.path.normpath(os.path.join(ctx.directory, os.path.expanduser(text)))


def _backend(ctx: DocContext, path: str, value: object, settings: GatewaySettings) -> GatewaySettings:
    """A `SectionKey` written out: through `section_key`, mypy would not infer the Literal type."""
    found = choice(ctx, path, value, BACKENDS)
    return settings if found is None else replace(settings, backend=cast("BackendKind", found))


# spec's own keys, read in this order (the sections after them).
_SPEC: dict[str, SectionKey[GatewaySettings]] = {
    "domain": section_key(domain, lambda s, v: replace(s, domain=v)),
    "listen": section_key(listen_address, lambda s, v: replace(s, listen=v)),
    "adminListen": section_key(listen_address, lambda s, v: replace(s, admin_listen=v)),
    "backend": _backend,
    "redis": section_key(_redis_url, lambda s, v: replace(s, redis=v)),
    "stateDir": section_key(_state_dir, lambda s, v: replace(s, state_dir=v)),
    # Kubernetes Secret manifests (relative to this file) the local backend reads storage credentials from;
    # read when a service names a secret (gateway/config/storage_secrets.py).
    "secretsFile": section_key(lambda c, p, v: _state_dir(c, p, v), lambda s, v: replace(s, secrets_file=v)),
}


def translate(ctx: DocContext, body: dict[str, object]) -> GatewaySettings:
    """Settings from one GatewayConfig document; problems are recorded in `ctx`."""
    check_keys(ctx, "", body, ("apiVersion", "kind", "metadata", "spec"), strict=True)
    if body.get("metadata") is not None:
        mapping(ctx, "metadata", body["metadata"])
    spec = {} if body.get("spec") is None else mapping(ctx, "spec", body["spec"])
    if spec is None:
        return GatewaySettings()
    check_keys(ctx, "spec", spec, _SPEC_KEYS, strict=True)
    settings = read_keys(ctx, "spec", spec, GatewaySettings(), _SPEC)
    owner = owner_from(body.get("metadata"))
    kubernetes = KubernetesSettings() if owner is None else KubernetesSettings(owner=owner)
    return replace(
        settings,
        autoscaler=_autoscaler(ctx, spec.get("autoscaler")),
        activator=read_section(ctx, "spec.activator", spec.get("activator"), ActivatorSettings(), _ACTIVATOR),
        proxy=read_section(ctx, "spec.proxy", spec.get("proxy"), ProxySettings(), _PROXY),
        kubernetes=read_section(ctx, "spec.kubernetes", spec.get("kubernetes"), kubernetes, KUBERNETES),
        storage=read_section(ctx, "spec.storage", spec.get("storage"), StorageSettings(), _STORAGE),
    )
