"""Per-service scaling: Knative's per-revision ranges and `autoscaling.knative.dev/*` annotations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from gateway.config.errors import DocContext
from gateway.config.model import AutoscalerClass, Metric, ScalingSpec
from gateway.config.values import choice, describe, duration, integer, join, number

T = TypeVar("T")

ANNOTATION_PREFIX = "autoscaling.knative.dev/"
CLASSES: dict[str, AutoscalerClass] = {
    "kpa.autoscaling.knative.dev": "kpa",
    "hpa.autoscaling.knative.dev": "hpa",
    "kpa": "kpa",
    "hpa": "hpa",
}
METRICS = ("concurrency", "rps", "cpu", "memory")


def read_class(ctx: DocContext, path: str, value: object) -> AutoscalerClass | None:
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


def read_activation_scale(ctx: DocContext, path: str, value: object) -> int | None:
    return integer(ctx, path, value, lo=2)


@dataclass(slots=True)
class Given(Generic[T]):
    """One draft field: its value, and the manifest path it was read from (None: not given, a default)."""

    value: T
    path: str | None = None

    def give(self, value: T | None, path: str) -> None:
        """Take `value` read at `path`; None (absent or wrong, already reported) keeps what was there."""
        if value is not None:
            self.value, self.path = value, path


@dataclass(slots=True)
class ScalingDraft:
    """ScalingSpec fields gathered from a manifest's spec and then its annotations (which win).

    Each field is a typed `Given`, so a misspelt field is a type error; `finish` is the one place a
    draft becomes a ScalingSpec. Fields default to ScalingSpec's defaults; a translator that has its
    own (PaddleService, SimpleMLService) sets `.value`, which leaves the field's path unset.
    """

    base_path: str  # where a problem with a field that was not given is reported
    min_scale: Given[int] = field(default_factory=lambda: Given(0))
    max_scale: Given[int] = field(default_factory=lambda: Given(0))
    autoscaler_class: Given[AutoscalerClass] = field(default_factory=lambda: Given[AutoscalerClass]("kpa"))
    metric: Given[str] = field(default_factory=lambda: Given("concurrency"))  # cpu, memory: see `finish`
    target: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    container_concurrency: Given[int] = field(default_factory=lambda: Given(0))
    target_utilization: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    stable_window: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    panic_window_percentage: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    panic_threshold_percentage: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    target_burst_capacity: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    initial_scale: Given[int | None] = field(default_factory=lambda: Given[int | None](None))
    scale_down_delay: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    scale_to_zero_pod_retention_period: Given[float | None] = field(default_factory=lambda: Given[float | None](None))
    activation_scale: Given[int | None] = field(default_factory=lambda: Given[int | None](None))

    def path(self, given: Given[T]) -> str:
        return self.base_path if given.path is None else given.path

    def apply_annotations(self, ctx: DocContext, annotations: dict[str, str]) -> None:
        for key, value in annotations.items():
            if not key.startswith(ANNOTATION_PREFIX):
                continue
            path = join("metadata.annotations", key)
            setting = ANNOTATIONS.get(key[len(ANNOTATION_PREFIX) :])
            if setting is None:
                ctx.warn(path, "autoscaling annotation not supported by the gateway, ignored")
                continue
            setting.apply(ctx, path, value, self)

    def finish(self, ctx: DocContext) -> ScalingSpec | None:
        errors = ctx.error_count
        metric = self._metric(ctx)
        low, high = self.min_scale.value, self.max_scale.value
        if high and high < low:
            ctx.error(
                self.path(self.max_scale),
                f"must be 0 (unbounded) or >= the minimum scale {low}, got {high}",
            )
        activation = self.activation_scale.value
        if activation is not None and (activation < low or (high and activation > high)):
            bounds = f"{low}..{high}" if high else f">= {low}"
            ctx.error(self.path(self.activation_scale), f"must be within the scale bounds ({bounds}), got {activation}")
        if ctx.error_count > errors:
            return None
        return ScalingSpec(
            min_scale=low,
            max_scale=high,
            autoscaler_class=self.autoscaler_class.value,
            metric=metric,
            target=self.target.value,
            container_concurrency=self.container_concurrency.value,
            target_utilization=self.target_utilization.value,
            stable_window=self.stable_window.value,
            panic_window_percentage=self.panic_window_percentage.value,
            panic_threshold_percentage=self.panic_threshold_percentage.value,
            target_burst_capacity=self.target_burst_capacity.value,
            initial_scale=self.initial_scale.value,
            scale_down_delay=self.scale_down_delay.value,
            scale_to_zero_pod_retention_period=self.scale_to_zero_pod_retention_period.value,
            activation_scale=activation,
        )

    def _metric(self, ctx: DocContext) -> Metric:
        """The metric the gateway scales on: cpu and memory are Kubernetes' HPA's, not the gateway's."""
        metric = self.metric.value
        if metric in ("cpu", "memory"):
            if self.autoscaler_class.value == "hpa":
                ctx.warn(
                    self.path(self.metric),
                    f"{metric} is measured by Kubernetes' HPA, not by the gateway; scaling on concurrency",
                )
            else:
                ctx.error(self.path(self.metric), f"must be concurrency or rps for the kpa autoscaler, got {metric!r}")
        return "rps" if metric == "rps" else "concurrency"


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """A manifest key that sets one draft field: how its value is read, and which field it is."""

    read: Callable[[DocContext, str, object], T | None]
    field_of: Callable[[ScalingDraft], Given[T]]

    def apply(self, ctx: DocContext, path: str, value: object, draft: ScalingDraft) -> None:
        self.field_of(draft).give(self.read(ctx, path, value), path)


def setting(read: Callable[[DocContext, str, object], T | None], field_of: Callable[[ScalingDraft], Given[T]]) -> Setting[Any]:
    """A `Setting` whose reader and field agree on the value's type (checked here, where T is inferred)."""
    return Setting(read, field_of)


def _camel(key: str) -> str:
    first, *rest = key.split("-")
    return first + "".join(word.capitalize() for word in rest)


_KNATIVE_ANNOTATIONS: dict[str, Setting[Any]] = {
    "class": setting(read_class, lambda d: d.autoscaler_class),
    "metric": setting(read_metric, lambda d: d.metric),
    "target": setting(read_target, lambda d: d.target),
    "window": setting(read_window, lambda d: d.stable_window),
    "min-scale": setting(read_scale, lambda d: d.min_scale),
    "max-scale": setting(read_scale, lambda d: d.max_scale),
    "initial-scale": setting(read_scale, lambda d: d.initial_scale),
    "panic-window-percentage": setting(read_panic_window_percentage, lambda d: d.panic_window_percentage),
    "panic-threshold-percentage": setting(read_panic_threshold_percentage, lambda d: d.panic_threshold_percentage),
    "target-utilization-percentage": setting(read_target_utilization, lambda d: d.target_utilization),
    "target-burst-capacity": setting(read_target_burst_capacity, lambda d: d.target_burst_capacity),
    "scale-down-delay": setting(read_scale_down_delay, lambda d: d.scale_down_delay),
    "scale-to-zero-pod-retention-period": setting(read_retention, lambda d: d.scale_to_zero_pod_retention_period),
    "activation-scale": setting(read_activation_scale, lambda d: d.activation_scale),
}
# `autoscaling.knative.dev/` annotations by the rest of their key: Knative's kebab-case names, and the
# camelCase spelling of each name of more than one word (minScale), which Knative also reads.
ANNOTATIONS: dict[str, Setting[Any]] = {
    **_KNATIVE_ANNOTATIONS,
    **{_camel(key): found for key, found in _KNATIVE_ANNOTATIONS.items() if "-" in key},
}
