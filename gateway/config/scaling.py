"""Per-service scaling: Knative's per-revision ranges and `autoscaling.knative.dev/*` annotations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.config.errors import DocContext
from gateway.config.model import ScalingSpec
from gateway.config.values import choice, describe, duration, integer, join, number

Reader = Callable[[DocContext, str, object], Any]

ANNOTATION_PREFIX = "autoscaling.knative.dev/"
CLASSES = {
    "kpa.autoscaling.knative.dev": "kpa",
    "hpa.autoscaling.knative.dev": "hpa",
    "kpa": "kpa",
    "hpa": "hpa",
}
METRICS = ("concurrency", "rps", "cpu", "memory")


def read_class(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and value in CLASSES:
        return CLASSES[value]
    ctx.error(path, f"must be one of {', '.join(CLASSES)}, got {describe(value)}")
    return None


def read_metric(ctx: DocContext, path: str, value: object) -> str | None:
    """Any metric name; whether it suits the autoscaler class is decided in `ScalingDraft.finish`."""
    return choice(ctx, path, value, METRICS)


def read_window(ctx: DocContext, path: str, value: object) -> float | None:
    return duration(ctx, path, value, ok=lambda v: 6 <= v <= 3600, expect="6s..1h", whole_seconds=True)


def read_panic_window_percentage(ctx: DocContext, path: str, value: object) -> float | None:
    return number(ctx, path, value, ok=lambda v: 1 <= v <= 100, expect="1..100")


def read_panic_threshold_percentage(ctx: DocContext, path: str, value: object) -> float | None:
    return number(ctx, path, value, ok=lambda v: 110 <= v <= 1000, expect="110..1000")


def read_target(ctx: DocContext, path: str, value: object) -> float | None:
    return number(ctx, path, value, ok=lambda v: v >= 0.01, expect=">= 0.01")


def read_target_utilization(ctx: DocContext, path: str, value: object) -> float | None:
    return number(ctx, path, value, ok=lambda v: 1 <= v <= 100, expect="1..100")


def read_target_burst_capacity(ctx: DocContext, path: str, value: object) -> float | None:
    return number(ctx, path, value, ok=lambda v: v >= 0 or v == -1, expect=">= 0 or -1")


def read_scale(ctx: DocContext, path: str, value: object) -> int | None:
    return integer(ctx, path, value, lo=0)


def read_scale_down_delay(ctx: DocContext, path: str, value: object) -> float | None:
    return duration(ctx, path, value, ok=lambda v: 0 <= v <= 3600, expect="0s..1h", whole_seconds=True)


def read_retention(ctx: DocContext, path: str, value: object) -> float | None:
    return duration(ctx, path, value, ok=lambda v: 0 <= v <= 3600, expect="0s..1h")


def read_container_concurrency(ctx: DocContext, path: str, value: object) -> int | None:
    return integer(ctx, path, value, lo=0, hi=1000)


_ANNOTATIONS: dict[str, tuple[str, Reader]] = {
    "class": ("autoscaler_class", read_class),
    "metric": ("metric", read_metric),
    "target": ("target", read_target),
    "window": ("stable_window", read_window),
    "min-scale": ("min_scale", read_scale),
    "minScale": ("min_scale", read_scale),
    "max-scale": ("max_scale", read_scale),
    "maxScale": ("max_scale", read_scale),
    "initial-scale": ("initial_scale", read_scale),
    "initialScale": ("initial_scale", read_scale),
    "panic-window-percentage": ("panic_window_percentage", read_panic_window_percentage),
    "panicWindowPercentage": ("panic_window_percentage", read_panic_window_percentage),
    "panic-threshold-percentage": ("panic_threshold_percentage", read_panic_threshold_percentage),
    "panicThresholdPercentage": ("panic_threshold_percentage", read_panic_threshold_percentage),
    "target-utilization-percentage": ("target_utilization", read_target_utilization),
    "targetUtilizationPercentage": ("target_utilization", read_target_utilization),
    "target-burst-capacity": ("target_burst_capacity", read_target_burst_capacity),
    "targetBurstCapacity": ("target_burst_capacity", read_target_burst_capacity),
    "scale-down-delay": ("scale_down_delay", read_scale_down_delay),
    "scaleDownDelay": ("scale_down_delay", read_scale_down_delay),
    "scale-to-zero-pod-retention-period": ("scale_to_zero_pod_retention_period", read_retention),
    "scaleToZeroPodRetentionPeriod": ("scale_to_zero_pod_retention_period", read_retention),
    "activation-scale": ("activation_scale", lambda c, p, v: integer(c, p, v, lo=2)),
    "activationScale": ("activation_scale", lambda c, p, v: integer(c, p, v, lo=2)),
}


class ScalingDraft:
    """ScalingSpec fields gathered from a manifest's spec and then its annotations (which win)."""

    def __init__(self, base_path: str, **values: Any) -> None:
        self.base_path = base_path
        self.values: dict[str, Any] = dict(values)
        self.paths: dict[str, str] = {}

    def set(self, name: str, value: object, path: str) -> None:
        if value is not None:
            self.values[name] = value
            self.paths[name] = path

    def path(self, name: str) -> str:
        return self.paths.get(name, self.base_path)

    def apply_annotations(self, ctx: DocContext, annotations: dict[str, str]) -> None:
        for key, value in annotations.items():
            if not key.startswith(ANNOTATION_PREFIX):
                continue
            path = join("metadata.annotations", key)
            entry = _ANNOTATIONS.get(key[len(ANNOTATION_PREFIX) :])
            if entry is None:
                ctx.warn(path, "autoscaling annotation not supported by the gateway, ignored")
                continue
            name, reader = entry
            self.set(name, reader(ctx, path, value), path)

    def finish(self, ctx: DocContext) -> ScalingSpec | None:
        errors = ctx.error_count
        values = dict(self.values)
        klass = values.get("autoscaler_class", "kpa")
        metric = values.get("metric", "concurrency")
        if metric in ("cpu", "memory"):
            metric_path = self.path("metric")
            if klass == "hpa":
                ctx.warn(
                    metric_path,
                    f"{metric} is measured by Kubernetes' HPA, not by the gateway; scaling on concurrency",
                )
            else:
                ctx.error(metric_path, f"must be concurrency or rps for the kpa autoscaler, got {metric!r}")
            values["metric"] = "concurrency"
        low, high = values.get("min_scale", 0), values.get("max_scale", 0)
        if high and high < low:
            ctx.error(
                self.path("max_scale"),
                f"must be 0 (unbounded) or >= the minimum scale {low}, got {high}",
            )
        activation = values.get("activation_scale")
        if activation is not None and (activation < low or (high and activation > high)):
            bounds = f"{low}..{high}" if high else f">= {low}"
            ctx.error(self.path("activation_scale"), f"must be within the scale bounds ({bounds}), got {activation}")
        if ctx.error_count > errors:
            return None
        return ScalingSpec(**values)
