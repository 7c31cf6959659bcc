"""A revision's effective autoscaling parameters: gateway defaults + per-service spec (KPA.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.autoscale.kpa import DeciderSpec
from gateway.autoscale.stats import panic_window_seconds
from gateway.config.model import AutoscalerSettings, Metric, ScalingSpec

RPS_TARGET_UTILIZATION = 0.7
"""Knative's TargetUtilization for the rps metric; not configurable gateway-wide."""

MIN_TARGET = 0.01


def utilization_fraction(value: float) -> float:
    """A utilisation as a fraction: values above 1 are percentages (70 -> 0.7), (0, 1] already fractions."""
    return value / 100.0 if value > 1 else value


@dataclass(frozen=True)
class RevisionScaling:
    """Resolved autoscaling parameters of one revision. Durations in seconds."""

    min_scale: int
    max_scale: int  # 0 = unbounded
    initial_scale: int
    metric: Metric
    container_concurrency: int
    target_value: float
    total_value: float
    target_burst_capacity: float
    panic_threshold: float  # fraction: 2.0 = 200 %
    stable_window: float
    panic_window: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    scale_down_delay: float
    scale_to_zero_grace_period: float
    enable_scale_to_zero: bool
    tick_interval: float
    fixed: bool
    reachable: bool = True
    activation_scale: int = 0
    scale_to_zero_pod_retention: float = 0.0

    @classmethod
    def resolve(
        cls,
        settings: AutoscalerSettings,
        spec: ScalingSpec | None = None,
        *,
        reachable: bool = True,
    ) -> RevisionScaling:
        """Fill every ``None`` in ``spec`` from ``settings`` and derive the per-pod targets."""
        spec = spec if spec is not None else ScalingSpec()
        container_concurrency = spec.container_concurrency
        if spec.metric == "rps":
            total = settings.requests_per_second_target_default
            utilization = RPS_TARGET_UTILIZATION
        else:
            total = float(container_concurrency) if container_concurrency > 0 else settings.container_concurrency_target_default
            utilization = utilization_fraction(settings.target_utilization)
        if spec.target is not None:
            total = spec.target
            if spec.metric == "concurrency" and container_concurrency != 0:
                total = min(spec.target, float(container_concurrency))
        if spec.target_utilization is not None:
            utilization = utilization_fraction(spec.target_utilization)

        initial = settings.initial_scale
        if spec.initial_scale is not None and (spec.initial_scale > 0 or settings.allow_zero_initial_scale):
            initial = spec.initial_scale

        stable = _pick(spec.stable_window, settings.stable_window)
        panic_pct = _pick(spec.panic_window_percentage, settings.panic_window_percentage)
        threshold_pct = _pick(spec.panic_threshold_percentage, settings.panic_threshold_percentage)
        return cls(
            min_scale=spec.min_scale,
            max_scale=spec.max_scale,
            initial_scale=initial,
            metric=spec.metric,
            container_concurrency=container_concurrency,
            target_value=max(MIN_TARGET, total * utilization),
            total_value=total,
            target_burst_capacity=_pick(spec.target_burst_capacity, settings.target_burst_capacity),
            panic_threshold=threshold_pct / 100.0,
            stable_window=stable,
            panic_window=panic_window_seconds(stable, panic_pct),
            max_scale_up_rate=settings.max_scale_up_rate,
            max_scale_down_rate=settings.max_scale_down_rate,
            scale_down_delay=_pick(spec.scale_down_delay, settings.scale_down_delay),
            scale_to_zero_grace_period=_pick(spec.scale_to_zero_grace_period, settings.scale_to_zero_grace_period),
            enable_scale_to_zero=settings.enable_scale_to_zero,
            tick_interval=settings.tick_interval,
            fixed=spec.autoscaler_class == "fixed",
            reachable=reachable,
            activation_scale=spec.activation_scale or 0,
            scale_to_zero_pod_retention=_pick(
                spec.scale_to_zero_pod_retention_period, settings.scale_to_zero_pod_retention_period
            ),
        )

    def decider_spec(self) -> DeciderSpec:
        """The decider's view of these parameters (§3.2)."""
        return DeciderSpec(
            target_value=self.target_value,
            total_value=self.total_value,
            target_burst_capacity=self.target_burst_capacity,
            panic_threshold=self.panic_threshold,
            stable_window=self.stable_window,
            max_scale_up_rate=self.max_scale_up_rate,
            max_scale_down_rate=self.max_scale_down_rate,
            scale_down_delay=self.scale_down_delay,
            activation_scale=self.activation_scale,
            reachable=self.reachable,
            tick_interval=self.tick_interval,
        )


def resolve_scaling(settings: AutoscalerSettings, spec: ScalingSpec | None = None, *, reachable: bool = True) -> RevisionScaling:
    """Shorthand for :meth:`RevisionScaling.resolve`."""
    return RevisionScaling.resolve(settings, spec, reachable=reachable)


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value
