"""GatewayConfig (serving-gateway/v1): our own document, so unknown keys are errors, not warnings."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gateway.config.cluster import KUBERNETES
from gateway.config.errors import DocContext
from gateway.config.model import (
    ActivatorSettings,
    AutoscalerSettings,
    GatewaySettings,
    KubernetesSettings,
    ProxySettings,
)
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
BACKENDS = ("local", "kubernetes", "static")

Reader = Callable[[DocContext, str, object], Any]


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


_AUTOSCALER: dict[str, tuple[str, Reader]] = {
    "stableWindow": (
        "stable_window",
        lambda c, p, v: duration(c, p, v, ok=lambda s: 6 <= s <= 3600, expect="6s..1h", whole_seconds=True),
    ),
    "panicWindowPercentage": (
        "panic_window_percentage",
        lambda c, p, v: number(c, p, v, ok=lambda n: 1 <= n <= 100, expect="1..100"),
    ),
    "panicThresholdPercentage": (
        "panic_threshold_percentage",
        lambda c, p, v: number(c, p, v, ok=lambda n: n > 0, expect="> 0"),
    ),
    "maxScaleUpRate": ("max_scale_up_rate", _rate),
    "maxScaleDownRate": ("max_scale_down_rate", _rate),
    "scaleToZeroGracePeriod": ("scale_to_zero_grace_period", _positive_duration),
    "scaleToZeroPodRetentionPeriod": (
        "scale_to_zero_pod_retention_period",
        lambda c, p, v: duration(c, p, v, ok=lambda s: 0 <= s <= 3600, expect="0s..1h"),
    ),
    "scaleDownDelay": (
        "scale_down_delay",
        lambda c, p, v: duration(c, p, v, ok=lambda s: s >= 0, expect=">= 0s", whole_seconds=True),
    ),
    "targetBurstCapacity": (
        "target_burst_capacity",
        lambda c, p, v: number(c, p, v, ok=lambda n: n >= 0 or n == -1, expect=">= 0 or -1"),
    ),
    "containerConcurrencyTargetDefault": ("container_concurrency_target_default", _at_least_hundredth),
    "targetUtilization": ("target_utilization", _utilization),
    # Knative's own name for it (container-concurrency-target-percentage)
    "containerConcurrencyTargetPercentage": ("target_utilization", _utilization),
    "requestsPerSecondTargetDefault": ("requests_per_second_target_default", _at_least_hundredth),
    "enableScaleToZero": ("enable_scale_to_zero", boolean),
    "initialScale": ("initial_scale", lambda c, p, v: integer(c, p, v, lo=0)),
    "allowZeroInitialScale": ("allow_zero_initial_scale", boolean),
    "tickInterval": ("tick_interval", _positive_duration),
}

_ACTIVATOR: dict[str, tuple[str, Reader]] = {
    "queueDepth": ("queue_depth", lambda c, p, v: integer(c, p, v, lo=1)),
    "requestTimeout": ("request_timeout", _positive_duration),
    "activationTimeout": ("activation_timeout", _positive_duration),
}

_PROXY: dict[str, tuple[str, Reader]] = {
    "maxHeaderBytes": ("max_header_bytes", byte_size),
    "maxBodyBytes": ("max_body_bytes", byte_size),
    "headerTimeout": ("header_timeout", _positive_duration),
    "keepaliveTimeout": ("keepalive_timeout", _positive_duration),
    "upstreamKeepaliveTimeout": ("upstream_keepalive_timeout", _positive_duration),
    "connectTimeout": ("connect_timeout", _positive_duration),
    "responseStartTimeout": ("response_start_timeout", _positive_duration),
    "drainTimeout": ("drain_timeout", _positive_duration),
    "maxResponseHeaderBytes": ("max_response_header_bytes", byte_size),
    "maxConnections": ("max_connections", lambda c, p, v: _max_connections(c, p, v)),
    "trustedProxies": ("trusted_proxies", lambda c, p, v: _cidrs(c, p, v)),
    "sendTimeout": ("send_timeout", _positive_duration),
    "bodyTimeout": ("body_timeout", _positive_duration),
}

_SPEC_KEYS = (
    "domain",
    "listen",
    "adminListen",
    "backend",
    "redis",
    "stateDir",
    "autoscaler",
    "activator",
    "proxy",
    "kubernetes",
)


def _section(ctx: DocContext, path: str, value: object, fields: dict[str, tuple[str, Reader]]) -> dict[str, Any]:
    if value is None:
        return {}
    found = mapping(ctx, path, value)
    if found is None:
        return {}
    check_keys(ctx, path, found, fields, strict=True)
    kwargs: dict[str, Any] = {}
    for key, item in found.items():
        if key in fields:
            name, reader = fields[key]
            parsed = reader(ctx, join(path, key), item)
            if parsed is not None:
                kwargs[name] = parsed
    return kwargs


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
    if isinstance(value, str) and value.split("://", 1)[0] in ("redis", "rediss", "unix") and "://" in value:
        ctx.warn(
            path,
            "sharing load between gateway replicas through Redis is not implemented yet: "
            "each gateway scales on the traffic it sees itself",
        )
        return value
    ctx.error(path, f"must be a redis://HOST:PORT URL, got {describe(value)}")
    return None


def _autoscaler(ctx: DocContext, value: object) -> AutoscalerSettings:
    settings = replace(AutoscalerSettings(), **_section(ctx, "spec.autoscaler", value, _AUTOSCALER))
    if settings.initial_scale == 0 and not settings.allow_zero_initial_scale:
        ctx.error("spec.autoscaler.initialScale", "must be >= 1 unless allowZeroInitialScale is true, got 0")
    for key, total in (
        ("containerConcurrencyTargetDefault", settings.container_concurrency_target_default),
        ("requestsPerSecondTargetDefault", settings.requests_per_second_target_default),
    ):
        if total * settings.target_utilization / 100 < 0.01:
            ctx.error(f"spec.autoscaler.{key}", "times targetUtilization must be >= 0.01")
    return settings


def translate(ctx: DocContext, body: dict[str, object]) -> GatewaySettings:
    """Settings from one GatewayConfig document; problems are recorded in `ctx`."""
    check_keys(ctx, "", body, ("apiVersion", "kind", "metadata", "spec"), strict=True)
    if body.get("metadata") is not None:
        mapping(ctx, "metadata", body["metadata"])
    spec = {} if body.get("spec") is None else mapping(ctx, "spec", body["spec"])
    if spec is None:
        return GatewaySettings()
    check_keys(ctx, "spec", spec, _SPEC_KEYS, strict=True)
    simple: dict[str, tuple[str, Reader]] = {
        "domain": ("domain", domain),
        "listen": ("listen", listen_address),
        "adminListen": ("admin_listen", listen_address),
        "backend": ("backend", lambda c, p, v: choice(c, p, v, BACKENDS)),
        "redis": ("redis", _redis_url),
        "stateDir": (
            "state_dir",
            lambda c, p, v: (
                None
                if (text := string(c, p, v)) is None
                else os.path.normpath(os.path.join(c.directory, os.path.expanduser(text)))
            ),
        ),
    }
    kwargs: dict[str, Any] = {}
    for key, (name, reader) in simple.items():
        if spec.get(key) is not None:
            parsed = reader(ctx, join("spec", key), spec[key])
            if parsed is not None:
                kwargs[name] = parsed
    kwargs["autoscaler"] = _autoscaler(ctx, spec.get("autoscaler"))
    kwargs["activator"] = replace(ActivatorSettings(), **_section(ctx, "spec.activator", spec.get("activator"), _ACTIVATOR))
    kwargs["proxy"] = replace(ProxySettings(), **_section(ctx, "spec.proxy", spec.get("proxy"), _PROXY))
    kwargs["kubernetes"] = replace(KubernetesSettings(), **_section(ctx, "spec.kubernetes", spec.get("kubernetes"), KUBERNETES))
    return GatewaySettings(**kwargs)
