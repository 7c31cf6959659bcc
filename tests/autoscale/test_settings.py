from __future__ import annotations

import pytest

from gateway.autoscale.kpa import DeciderSpec
from gateway.autoscale.settings import (
    RevisionScaling,
    resolve_scaling,
    utilization_fraction,
)
from gateway.config.model import AutoscalerSettings, ScalingSpec

DEFAULTS = AutoscalerSettings()


def test_knative_defaults() -> None:
    r = resolve_scaling(DEFAULTS)
    assert r.metric == "concurrency"
    assert r.target_value == pytest.approx(70.0)
    assert r.total_value == 100.0
    assert r.target_burst_capacity == 211.0
    assert r.panic_threshold == 2.0
    assert (r.stable_window, r.panic_window) == (60.0, 6.0)
    assert (r.min_scale, r.max_scale, r.initial_scale) == (0, 0, 1)
    assert (r.max_scale_up_rate, r.max_scale_down_rate) == (1000.0, 2.0)
    assert (r.scale_down_delay, r.scale_to_zero_grace_period) == (0.0, 30.0)
    assert r.enable_scale_to_zero and r.reachable and not r.fixed
    assert r.tick_interval == 2.0


def test_container_concurrency_is_the_total() -> None:
    r = resolve_scaling(DEFAULTS, ScalingSpec(container_concurrency=10))
    assert r.total_value == 10.0
    assert r.target_value == pytest.approx(7.0)
    assert r.container_concurrency == 10


def test_target_replaces_total() -> None:
    r = resolve_scaling(DEFAULTS, ScalingSpec(target=20))
    assert r.total_value == 20.0
    assert r.target_value == pytest.approx(14.0)


def test_target_is_capped_by_container_concurrency() -> None:
    r = resolve_scaling(DEFAULTS, ScalingSpec(target=50, container_concurrency=8))
    assert r.total_value == 8.0
    r2 = resolve_scaling(DEFAULTS, ScalingSpec(target=5, container_concurrency=8))
    assert r2.total_value == 5.0


def test_rps_metric() -> None:
    r = resolve_scaling(DEFAULTS, ScalingSpec(metric="rps", container_concurrency=8))
    assert r.total_value == 200.0
    assert r.target_value == pytest.approx(140.0)  # rps utilisation is 0.7, not the config's
    r2 = resolve_scaling(AutoscalerSettings(target_utilization=50), ScalingSpec(metric="rps", target=10))
    assert r2.total_value == 10.0  # not capped by CC: rps
    assert r2.target_value == pytest.approx(7.0)


@pytest.mark.parametrize(("value", "fraction"), [(70, 0.7), (100, 1.0), (0.5, 0.5), (1, 1.0), (1.5, 0.015)])
def test_utilization_fraction(value: float, fraction: float) -> None:
    assert utilization_fraction(value) == pytest.approx(fraction)


def test_target_utilization_override() -> None:
    r = resolve_scaling(DEFAULTS, ScalingSpec(target_utilization=50))
    assert r.target_value == pytest.approx(50.0)
    r2 = resolve_scaling(AutoscalerSettings(target_utilization=0.9), None)
    assert r2.target_value == pytest.approx(90.0)


def test_target_value_floor() -> None:
    r = resolve_scaling(DEFAULTS, ScalingSpec(target=0.01, target_utilization=10))
    assert r.target_value == 0.01


def test_windows_and_thresholds_from_spec() -> None:
    r = resolve_scaling(
        DEFAULTS,
        ScalingSpec(
            stable_window=25,
            panic_window_percentage=10,
            panic_threshold_percentage=150,
            target_burst_capacity=-1,
            scale_down_delay=120,
            scale_to_zero_grace_period=5,
        ),
    )
    assert (r.stable_window, r.panic_window) == (25.0, 3.0)
    assert r.panic_threshold == 1.5
    assert r.target_burst_capacity == -1
    assert (r.scale_down_delay, r.scale_to_zero_grace_period) == (120, 5)


def test_initial_scale() -> None:
    assert resolve_scaling(DEFAULTS, ScalingSpec(initial_scale=3)).initial_scale == 3
    assert resolve_scaling(DEFAULTS, ScalingSpec(initial_scale=0)).initial_scale == 1
    allow = AutoscalerSettings(allow_zero_initial_scale=True)
    assert resolve_scaling(allow, ScalingSpec(initial_scale=0)).initial_scale == 0


def test_fixed_class_and_bounds() -> None:
    r = resolve_scaling(DEFAULTS, ScalingSpec(autoscaler_class="fixed", min_scale=2, max_scale=4))
    assert r.fixed and (r.min_scale, r.max_scale) == (2, 4)


def test_decider_spec() -> None:
    r = RevisionScaling.resolve(
        AutoscalerSettings(max_scale_up_rate=10, tick_interval=1.0),
        ScalingSpec(scale_down_delay=30),
        reachable=False,
    )
    assert r.decider_spec() == DeciderSpec(
        target_value=r.target_value,
        total_value=100.0,
        target_burst_capacity=211.0,
        panic_threshold=2.0,
        stable_window=60.0,
        max_scale_up_rate=10.0,
        max_scale_down_rate=2.0,
        scale_down_delay=30.0,
        activation_scale=0,
        reachable=False,
        tick_interval=1.0,
    )
