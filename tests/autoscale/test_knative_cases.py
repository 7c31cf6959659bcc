"""Knative's own test cases for the KPA decider and its windows, restated in our terms.

Sources (knative/serving at 98e5ef90aa70, facts only — inputs and expected outputs):
* pkg/autoscaler/scaling/autoscaler_test.go        -> Decider / DeciderSpec / ScaleResult
* pkg/autoscaler/aggregation/bucketing_test.go     -> WindowAverage (linear algorithm)
* pkg/autoscaler/aggregation/max/window_test.go    -> scale-down-delay max window
* pkg/autoscaler/aggregation/max/timewindow_test.go -> the same, indexed by time

Mapping: Go's ``time.Now()`` is an arbitrary base (T0 here), ``time.Time{}`` is 0.0; the fake
metric client's (stable, panic) are our ``stable``/``panic`` arguments and its error is ``None``;
the fake pod counter's count is ``ready_pods`` and its error is ``None`` (a NotFound error would
be ``ready_pods=0``, KPA.md §4.3 step 1 / §11). EBC is compared with Knative's ±1 tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from gateway.autoscale.kpa import Decider, DeciderSpec, ScaleResult, _MaxWindow
from gateway.autoscale.window import WindowAverage

# ----------------------------------------------------------------------------------------------
# autoscaler_test.go
# ----------------------------------------------------------------------------------------------

T0 = 1_000.0  # Go's time.Now()
STABLE_WINDOW = 60.0
TICK = 2.0
TU = 0.75  # the Go tests' targetUtilization: TotalValue = TargetValue / 0.75
ANY: Any = object()  # "not checked"


def kspec(target: float, tbc: float, **kw: Any) -> DeciderSpec:
    """The spec built by newTestAutoscalerWithScalingMetric (ActivatorCapacity has no counterpart)."""
    base = DeciderSpec(
        target_value=target,
        total_value=target / TU,
        target_burst_capacity=tbc,
        panic_threshold=2.0,
        stable_window=STABLE_WINDOW,
        max_scale_up_rate=10.0,
        max_scale_down_rate=10.0,
        reachable=True,
    )
    return replace(base, **kw)


def delay_spec(**kw: Any) -> DeciderSpec:
    """The spec of TestAutoscalerScaleDownDelay* (unset Go fields are zero values)."""
    base = DeciderSpec(
        target_value=10.0,
        total_value=0.0,
        target_burst_capacity=0.0,
        panic_threshold=100.0,
        stable_window=0.0,
        max_scale_up_rate=10.0,
        max_scale_down_rate=10.0,
        scale_down_delay=300.0,
        reachable=True,
    )
    return replace(base, **kw)


def kebc(target: float, tbc: float, concurrency: float, pods: int) -> int:
    """Knative's expectedEBC helper."""
    return math.floor(target / TU * pods - tbc - concurrency)


@dataclass(frozen=True)
class Step:
    t: float
    stable: float | None
    panic: float | None
    ready: int | None
    desired: int
    ebc: int
    valid: bool = True
    panic_time: Any = ANY  # expected decider.panic_time after the step (None = not panicking)
    panicking: Any = ANY
    max_panic_pods: Any = ANY
    update: DeciderSpec | None = None  # Decider.update(...) before this step


@dataclass(frozen=True)
class Scenario:
    knative: str
    spec: DeciderSpec
    steps: tuple[Step, ...]
    built_with: int | None = 1  # ready pods at construction (fakePodCounter default in helpers: 1)
    built_at: float = T0
    panic_time: Any = ANY  # prepFunc: decider.panic_time = ...
    max_panic_pods: Any = ANY  # prepFunc: decider.max_panic_pods = ...


def S(*a: Any, **kw: Any) -> Step:
    return Step(*a, **kw)


INVALID = dict(desired=0, ebc=0, valid=False)

SCENARIOS = [
    # TestAutoscalerScaleDownDelay/simple (zero-time clock, ready 0, delay 5 min)
    Scenario(
        "TestAutoscalerScaleDownDelay/simple",
        delay_spec(),
        built_with=0,
        built_at=0.0,
        steps=(
            S(2.0, 40, 40, 0, 4, 0),
            S(300.0, 0, 0, 0, 4, 0),  # less than the delay: hold 4
            S(302.0, 0, 0, 0, 0, 0),  # the 4 scrolled out
        ),
    ),
    # TestAutoscalerScaleDownDelay/simple then /gradual (same decider)
    Scenario(
        "TestAutoscalerScaleDownDelay/gradual",
        delay_spec(),
        built_with=0,
        built_at=0.0,
        steps=(
            S(2.0, 40, 40, 0, 4, 0),
            S(300.0, 0, 0, 0, 4, 0),
            S(302.0, 0, 0, 0, 0, 0),
            S(540.0, 40, 40, 0, 4, 0),
            S(600.0, 30, 30, 0, 4, 0),  # 4 still dominates
            S(660.0, 0, 0, 0, 4, 0),
            S(840.0, 0, 0, 0, 3, 0),  # 4 scrolls out, 3 remains
            S(900.0, 0, 0, 0, 0, 0),  # everything scrolled out
        ),
    ),
    # TestAutoscalerScaleDownDelayNotReachable: Update to unreachable bypasses the delay window
    Scenario(
        "TestAutoscalerScaleDownDelayNotReachable",
        delay_spec(),
        built_with=0,
        built_at=0.0,
        steps=(
            S(2.0, 40, 40, 0, 4, 0),
            S(60.0, 0, 0, 0, 4, 0),
            S(2.0, 0, 0, 0, 0, 0, update=delay_spec(reachable=False)),
        ),
    ),
    # TestAutoscalerScaleDownDelayZero: no delay window -> immediate scale-down within the slot
    Scenario(
        "TestAutoscalerScaleDownDelayZero",
        delay_spec(scale_down_delay=0.0, reachable=False),
        built_with=0,
        built_at=0.0,
        steps=(S(0.0, 40, 40, 0, 4, 0), S(0.5, 20, 20, 0, 2, 0)),
    ),
    # Variant of TestAutoscalerScaleDownDelayZero with Reachable=True (KPA.md §11: built with
    # delay 0 never delays, even in the same slot) — not a Knative case as such.
    Scenario(
        "TestAutoscalerScaleDownDelayZero (reachable variant)",
        delay_spec(scale_down_delay=0.0),
        built_with=0,
        built_at=0.0,
        steps=(S(0.0, 40, 40, 0, 4, 0), S(0.5, 20, 20, 0, 2, 0)),
    ),
    # TestAutoscalerNoDataNoAutoscale: metric client error -> invalid
    Scenario("TestAutoscalerNoDataNoAutoscale", kspec(10, 100), steps=(S(T0, None, None, 1, **INVALID),)),
    # TestAutoscalerMetrics (decision part; OTel gauges not restated): panic gauge -> panicking
    Scenario("TestAutoscalerMetrics", kspec(10, 100), steps=(S(T0, 50, 50, 1, 5, kebc(10, 100, 50, 1), panicking=True),)),
    # TestAutoscalerMetricsWithRPS: RPS averages are handed over as stable/panic
    Scenario(
        "TestAutoscalerMetricsWithRPS", kspec(10, 100), steps=(S(T0 + 61, 100, 99, 1, 10, kebc(10, 100, 99, 1), panicking=True),)
    ),
    # TestAutoscalerStableModeIncreaseWithConcurrencyDefault
    Scenario(
        "TestAutoscalerStableModeIncreaseWithConcurrencyDefault",
        kspec(10, 101),
        steps=(
            S(T0, 50, 10, 1, 5, kebc(10, 101, 10, 1)),
            S(T0 + 0.001, 100, 10, 1, 10, kebc(10, 101, 10, 1)),
        ),
    ),
    # TestAutoscalerStableModeIncreaseWithRPS
    Scenario(
        "TestAutoscalerStableModeIncreaseWithRPS",
        kspec(10, 101),
        steps=(
            S(T0, 50, 50, 1, 5, kebc(10, 101, 50, 1)),
            S(T0 + 0.001, 100, 99, 1, 10, kebc(10, 101, 99, 1)),
        ),
    ),
    # TestAutoscalerUnpanicAfterSlowIncrease
    Scenario(
        "TestAutoscalerUnpanicAfterSlowIncrease",
        kspec(1, 98),
        steps=(
            S(T0, 11, 25, 10, 25, kebc(1, 98, 25, 10), panic_time=T0),
            S(T0 + 30, 30, 41, 40, 41, kebc(1, 98, 41, 40), panic_time=T0),  # panic time must not move
            S(T0 + 30 + 30 + TICK, 50, 56, 55, 50, kebc(1, 98, 56, 55), panic_time=None),  # un-panic
        ),
    ),
    # TestAutoscalerExtendPanicWindow
    Scenario(
        "TestAutoscalerExtendPanicWindow",
        kspec(1, 98),
        steps=(
            S(T0, 11, 25, 10, 25, kebc(1, 98, 25, 10), panic_time=T0),
            S(T0 + 30, 30, 80, 40, 80, kebc(1, 98, 80, 40), panic_time=T0 + 30),
        ),
    ),
    # TestAutoscalerStableModeDecrease
    Scenario(
        "TestAutoscalerStableModeDecrease",
        kspec(10, 98),
        steps=(
            S(T0, 100, 100, 8, 10, kebc(10, 98, 100, 8)),
            S(T0 + 0.001, 50, 50, 8, 5, kebc(10, 98, 50, 8)),
        ),
    ),
    # TestAutoscalerStableModeNoTrafficScaleToZero
    Scenario(
        "TestAutoscalerStableModeNoTrafficScaleToZero",
        kspec(10, 75),
        steps=(
            S(T0, 1, 0, 1, 1, kebc(10, 75, 0, 1)),
            S(T0 + 0.001, 0, 0, 1, 0, kebc(10, 75, 0, 1)),
        ),
    ),
    # TestAutoscalerActivationScale: 0 is never lifted; 1 is lifted to activation scale 2
    Scenario(
        "TestAutoscalerActivationScale",
        kspec(10, 75, activation_scale=2),
        steps=(
            S(T0, 0, 0, 1, 0, kebc(10, 75, 0, 1)),
            S(T0 + 0.001, 1, 0, 1, 2, kebc(10, 75, 0, 1)),
        ),
    ),
    # TestAutoscalerPanicModeExponentialTrackAndStabilize
    Scenario(
        "TestAutoscalerPanicModeExponentialTrackAndStabilize",
        kspec(1, 101),
        steps=(
            S(T0, 6, 6, 1, 6, kebc(1, 101, 6, 1)),
            S(T0 + 0.5, 36, 36, 6, 36, kebc(1, 101, 36, 6), panic_time=T0 + 0.5),
            S(T0 + 1.5, 216, 216, 36, 216, kebc(1, 101, 216, 36), panic_time=T0 + 1.5),
            S(T0 + 1.5, 1296, 1296, 216, 1296, kebc(1, 101, 1296, 216), panic_time=T0 + 1.5),
            S(T0 + 2.5, 1296, 1296, 1296, 1296, kebc(1, 101, 1296, 1296)),
        ),
    ),
    # TestAutoscalerScale table (fresh decider built with 1 ready pod; scaled at baseScale)
    Scenario(
        "TestAutoscalerScale/AutoscalerNoDataAtZeroNoAutoscale", kspec(10, 100), steps=(S(T0, 0, 0, 1, 0, kebc(10, 100, 0, 1)),)
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerNoDataAtZeroNoAutoscaleWithExplicitEPs",
        kspec(10, 100),
        steps=(S(T0, 0, 0, 1, 0, kebc(10, 100, 0, 1)),),
    ),
    Scenario("TestAutoscalerScale/AutoscalerStableModeUnlimitedTBC", kspec(181, -1), steps=(S(T0, 21, 26, 1, 1, -1),)),
    Scenario("TestAutoscalerScale/Autoscaler0TBC", kspec(10, 0), steps=(S(T0, 50, 49, 1, 5, 0),)),
    Scenario(
        "TestAutoscalerScale/AutoscalerStableModeNoChange", kspec(10, 100), steps=(S(T0, 50, 50, 1, 5, kebc(10, 100, 50, 1)),)
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerPanicStableLargerThanPanic",
        kspec(1, 100),
        panic_time=T0 - 5,
        max_panic_pods=5,
        steps=(S(T0, 50, 30, 5, 50, kebc(1, 100, 30, 5)),),  # stable wins in panic
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerPanicStableLessThanPanic",
        kspec(1, 100),
        panic_time=T0 - 5,
        max_panic_pods=5,
        steps=(S(T0, 20, 30, 5, 30, kebc(1, 100, 30, 5)),),  # panic wins
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerStableModeNoChangeAlreadyScaled",
        kspec(10, 100),
        steps=(S(T0, 50, 50, 5, 5, kebc(10, 100, 50, 5)),),
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerStableModeIncreaseWithSmallScaleUpRate",
        kspec(1, 1982, max_scale_up_rate=1.1),
        steps=(S(T0, 3, 3.1, 2, 3, kebc(1, 1982, 3.1, 2)),),  # ceil(1.1*2) = 3
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerStableModeDecreaseWithSmallScaleDownRate",
        kspec(10, 1982, max_scale_down_rate=1.1),
        steps=(S(T0, 1, 1, 100, 90, kebc(10, 1982, 1, 100)),),  # floor(100/1.1) = 90
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerStableModeDecreaseNonReachable",
        kspec(10, 1982, max_scale_down_rate=1.1, reachable=False),
        steps=(S(T0, 1, 1, 100, 1, kebc(10, 1982, 1, 100)),),  # no scale-down limit
    ),
    Scenario(
        "TestAutoscalerScale/AutoscalerPanicModeDoublePodCount",
        kspec(10, 84),
        steps=(S(T0, 50, 100, 1, 10, kebc(10, 84, 100, 1)),),
    ),
    # TestAutoscalerPanicThenUnPanicScaleDown
    Scenario(
        "TestAutoscalerPanicThenUnPanicScaleDown",
        kspec(10, 93),
        steps=(
            S(T0, 100, 100, 1, 10, kebc(10, 93, 100, 1)),
            S(T0 + 1, 100, 1000, 10, 100, kebc(10, 93, 1000, 10)),
            S(T0 + 1 + 30, 1, 1, 10, 100, kebc(10, 93, 1, 10)),  # still in panic: hold
            S(T0 + 1 + 61, 1, 1, 10, 1, kebc(10, 93, 1, 10)),  # after the stable window
        ),
    ),
    # TestAutoscalerRateLimitScaleUp
    Scenario(
        "TestAutoscalerRateLimitScaleUp",
        kspec(10, 61),
        steps=(
            S(T0, 1000, 1001, 1, 10, kebc(10, 61, 1001, 1)),
            S(T0 + 0.001, 1000, 1001, 10, 100, kebc(10, 61, 1001, 10)),
        ),
    ),
    # TestAutoscalerRateLimitScaleDown
    Scenario(
        "TestAutoscalerRateLimitScaleDown",
        kspec(10, 61),
        steps=(
            S(T0, 1, 1, 100, 10, kebc(10, 61, 1, 100)),
            S(T0 + 0.001, 1, 1, 10, 1, kebc(10, 61, 1, 10)),
        ),
    ),
    # TestCantCountPods: pod counter error -> invalid
    Scenario("TestCantCountPods", kspec(10, 81), steps=(S(T0, 1000, 888, None, **INVALID),)),
    # TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound: 0 ready -> rate limits use 1, EBC uses 0
    Scenario(
        "TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound",
        kspec(10, 81),
        steps=(S(T0, 1000, 888, 0, 10, kebc(10, 81, 888, 0)),),
    ),
    # TestAutoscalerUpdateTarget: Update replaces the whole spec (Reachable unset -> False)
    Scenario(
        "TestAutoscalerUpdateTarget",
        kspec(10, 77),
        steps=(
            S(T0, 100, 101, 1, 10, kebc(10, 77, 101, 1)),
            S(
                T0 + 0.001,
                100,
                101,
                10,
                100,
                kebc(1, 71, 101, 10),
                update=DeciderSpec(
                    target_value=1.0,
                    total_value=1 / TU,
                    target_burst_capacity=71.0,
                    panic_threshold=2.0,
                    stable_window=STABLE_WINDOW,
                    max_scale_up_rate=10.0,
                    max_scale_down_rate=10.0,
                    reachable=False,
                ),
            ),
        ),
    ),
]


def _run(sc: Scenario) -> None:
    d = Decider(sc.spec, sc.built_with, sc.built_at)
    if sc.panic_time is not ANY:
        d.panic_time = sc.panic_time
    if sc.max_panic_pods is not ANY:
        d.max_panic_pods = sc.max_panic_pods
    for i, st in enumerate(sc.steps):
        if st.update is not None:
            d.update(st.update)
        got = d.scale(st.t, st.stable, st.panic, st.ready)
        where = f"{sc.knative} step {i} (t={st.t})"
        assert isinstance(got, ScaleResult)
        assert (got.desired_pods, got.valid) == (st.desired, st.valid), f"{where}: {got}"
        assert abs(got.excess_burst_capacity - st.ebc) <= 1, f"{where}: EBC {got} want {st.ebc}"
        if st.panic_time is not ANY:
            assert d.panic_time == st.panic_time, f"{where}: panic_time {d.panic_time}"
        if st.panicking is not ANY:
            assert d.panicking is st.panicking, where
        if st.max_panic_pods is not ANY:
            assert d.max_panic_pods == st.max_panic_pods, where


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.knative for s in SCENARIOS])
def test_autoscaler_scenarios(sc: Scenario) -> None:
    _run(sc)


def test_ebc_exact_without_tolerance() -> None:
    # Knative allows ±1 for FMA; on plain IEEE doubles our EBC must equal the formula exactly.
    for sc in SCENARIOS:
        d = Decider(sc.spec, sc.built_with, sc.built_at)
        if sc.panic_time is not ANY:
            d.panic_time = sc.panic_time
        if sc.max_panic_pods is not ANY:
            d.max_panic_pods = sc.max_panic_pods
        for st in sc.steps:
            if st.update is not None:
                d.update(st.update)
            got = d.scale(st.t, st.stable, st.panic, st.ready)
            assert got.excess_burst_capacity == st.ebc, sc.knative


# TestStartInPanicMode (ready 0, 1 -> not panicking, maxPanicPods = ready; 2 -> panicking)
# and TestNewFail (pod counter error at construction counts as 0 ready).
@pytest.mark.parametrize(
    "knative, ready, panicking, max_panic_pods",
    [
        ("TestStartInPanicMode/0", 0, False, 0),
        ("TestStartInPanicMode/1", 1, False, 1),
        ("TestStartInPanicMode/2", 2, True, 2),
        ("TestAutoscalerStartMetrics (startInPanic, 2 ready)", 2, True, 2),
        ("TestNewFail", None, False, 0),
    ],
)
def test_construction(knative: str, ready: int | None, panicking: bool, max_panic_pods: int) -> None:
    s = DeciderSpec(
        target_value=100.0,
        total_value=120.0,
        target_burst_capacity=11.0,
        panic_threshold=220.0,
        stable_window=STABLE_WINDOW,
        max_scale_up_rate=10.0,
        max_scale_down_rate=10.0,
    )
    d = Decider(s, ready, T0)
    assert d.panicking is panicking, knative
    assert (d.panic_time is not None) is panicking
    if panicking:
        assert d.panic_time == T0  # Go: time.Now() at creation
    assert d.max_panic_pods == max_panic_pods, knative


def test_not_found_ready_count_is_zero() -> None:
    # autoscaler.go: a NotFound ready-count error is treated as 0 ready (KPA.md §4.3 step 1),
    # i.e. the caller passes ready_pods=0: the tick stays valid (same as the 0-ready Knative case).
    d = Decider(kspec(10, 81), 0, T0)
    assert d.scale(T0, 1000, 888, 0) == ScaleResult(10, kebc(10, 81, 888, 0), True)


# ----------------------------------------------------------------------------------------------
# max/window_test.go (TestWindowMax: newWindow(5), Record(index, v), Current after each)
# max/timewindow_test.go (TestTimedWindowMax: NewTimeWindow(5 s, 1 s))
# ----------------------------------------------------------------------------------------------


def _same(_: int) -> int:
    return 1


def _gaps(i: int) -> int:
    return i + 3 if i >= 3 else i


WINDOW_MAX = [
    ("single value", [1], None, [1]),
    ("ascending values", [1, 2], None, [1, 2]),
    ("descending values", [2, 1], None, [2, 2]),
    ("up, down, up", [1, 2, 1], None, [1, 2, 2]),
    ("windowing out", [5, 6, 5, 5, 5, 5, 5], None, [5, 6, 6, 6, 6, 6, 5]),
    ("windowing out with gaps", [6, 5, 2, 1], _gaps, [6, 6, 6, 2]),
    ("windowing out 2", [5, 6, 5, 7, 5, 5, 1], None, [5, 6, 6, 7, 7, 7, 7]),
    ("windowing out 3", [5, 8, 5, 7, 5, 5], None, [5, 8, 8, 8, 8, 8]),
    ("windowing out 4", [5, 8, 5, 7, 5, 5, 1], None, [5, 8, 8, 8, 8, 8, 7]),
    ("windowing out 5", [5, 8, 5, 7, 5, 5, 1, 4, 4, 4], None, [5, 8, 8, 8, 8, 8, 7, 7, 5, 5]),
    ("windowing out 6", [5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4], None, [5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4]),
    ("windowing out 7", [5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4, 9], None, [5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4, 9]),
    (
        "windowing out 8",
        [5, 8, 5, 7, 5, 5, 1, 4, 4, 4, 4, 9, 3, 4, 2, 1, 0],
        None,
        [5, 8, 8, 8, 8, 8, 7, 7, 5, 5, 4, 9, 9, 9, 9, 9, 4],
    ),
    ("multiple with same index, ascending", [1, 2, 3, 4, 5, 6, 7], _same, [1, 2, 3, 4, 5, 6, 7]),
    ("multiple with same index, descending", [7, 6, 5, 4, 3, 2, 1], _same, [7, 7, 7, 7, 7, 7, 7]),
]


@pytest.mark.parametrize("name, values, index, expect", WINDOW_MAX, ids=[c[0] for c in WINDOW_MAX])
def test_window_max(name: str, values: list[int], index: Any, expect: list[int]) -> None:
    index = index or (lambda i: i)
    w = _MaxWindow(5, 1)  # 5 slots of 1 s: index i is time i
    got = []
    for i, v in enumerate(values):
        w.record(float(index(i)), v)
        got.append(w.current())
    assert got == expect


@pytest.mark.parametrize("name, values, index, expect", WINDOW_MAX, ids=[c[0] for c in WINDOW_MAX])
def test_window_max_through_decider(name: str, values: list[int], index: Any, expect: list[int]) -> None:
    # Same table seen from outside: a decider with a 5 s delay on 1 s ticks; each value is the
    # undelayed desired count (target 1, 1 ready pod: no scale-down floor, no panic).
    index = index or (lambda i: i)
    s = DeciderSpec(
        target_value=1.0,
        total_value=1.0,
        target_burst_capacity=0.0,
        panic_threshold=1000.0,
        stable_window=60.0,
        max_scale_up_rate=1000.0,
        max_scale_down_rate=2.0,
        scale_down_delay=5.0,
        tick_interval=1.0,
    )
    d = Decider(s, 1, T0)
    got = [d.scale(T0 + index(i), v, v, 1).desired_pods for i, v in enumerate(values)]
    assert got == expect


TIMED_MAX = [
    ("single value", [(0.0, 5)], 5),
    ("two values in same second", [(0.0, 6), (0.5, 5)], 6),
    ("two values", [(0.0, 5), (1.0, 8)], 8),
    ("time gap", [(0.0, 5), (6.0, 4)], 4),
]


@pytest.mark.parametrize("base", [T0, T0 + 0.3, T0 + 0.7])  # Go uses an unaligned time.Now()
@pytest.mark.parametrize("name, entries, expect", TIMED_MAX, ids=[c[0] for c in TIMED_MAX])
def test_timed_window_max(name: str, entries: list[tuple[float, int]], expect: int, base: float) -> None:
    w = _MaxWindow(5.0, 1.0)
    for dt, v in entries:
        w.record(base + dt, v)
    assert w.current() == expect


# ----------------------------------------------------------------------------------------------
# bucketing_test.go (linear TimedFloat64Buckets; the weighted-exponential tests are skipped)
# ----------------------------------------------------------------------------------------------


def bucket_values(w: WindowAverage, now: float) -> list[tuple[float, float]]:
    """Knative's test-only forEachBucket, restated on our internals: (bucket start, value) from the
    last write backwards, over len(buckets) - (now - lastWrite)/granularity buckets."""
    if w._last is None:
        return []
    g = w._granularity
    n = len(w._buckets)
    count = n - (math.floor(now / g) - w._last)
    return [((w._last - k) * g, w._buckets[(w._last - k) % n]) for k in range(max(0, count))]


def bucket_sum(w: WindowAverage, now: float) -> float:
    return sum(v for _, v in bucket_values(w, now))


# Ops: ("rec", dt, v) | ("avg", dt, want) | ("empty", dt, want) | ("sum", dt, want)
#      | ("resize", window, dt) | ("nbuckets", n) | ("window", w) | ("first_unset",) | ("same_buckets", w, dt)
BUCKETS: list[tuple[str, float, float, str, list[tuple[Any, ...]]]] = [
    # TestTimedFloat64BucketsSimple/"granularity = 1s" (window 2 min; values per bucket)
    (
        "TestTimedFloat64BucketsSimple/granularity=1s",
        120.0,
        1.0,
        "aligned1",
        [
            ("empty", 0, True),
            ("rec", 0, 1.0),
            ("rec", 0.1, 10.0),
            ("rec", 1, 1.0),
            ("rec", 3, 1.0),
            ("nonzero", 60, {0: 11.0, 1: 1.0, 3: 1.0}),
            ("avg", 60, 13 / 4),  # derived: the same data seen through the public average
        ],
    ),
    (
        "TestTimedFloat64BucketsSimple/granularity=5s",
        120.0,
        5.0,
        "aligned5",
        [
            ("empty", 0, True),
            ("rec", 0, 1.0),
            ("rec", 3, 11.0),
            ("rec", 6, 1.0),
            ("nonzero", 60, {0: 12.0, 5: 1.0}),
            ("avg", 60, 13 / 2),  # derived
        ],
    ),
    (
        "TestTimedFloat64BucketsSimple/empty",
        120.0,
        1.0,
        "aligned1",
        [
            ("empty", 0, True),
            ("nonzero", 60, {}),
            ("avg", 60, 0.0),
        ],
    ),
    # TestTimedFloat64BucketsManyReps (window 1 min; 5 values per second for 5 seconds)
    (
        "TestTimedFloat64BucketsManyReps",
        60.0,
        1.0,
        "aligned1",
        [("rec", p + 1, float(p + t)) for p in range(5) for t in range(5)]
        + [("sum", 5, 100.0), ("sum", 5, 100.0), ("avg", 5, 20.0)],
    ),
    # TestTimedFloat64BucketsManyRepsWithNonMonotonicalOrder
    (
        "TestTimedFloat64BucketsManyRepsWithNonMonotonicalOrder",
        60.0,
        1.0,
        "aligned1",
        [("rec", d, float(p + t)) for p, d in enumerate([0, 3, 2, 1, 4]) for t in range(5)]
        + [("sum", 4, 100.0), ("sum", 4, 100.0), ("avg", 4, 20.0)],
    ),
    # TestTimedFloat64BucketsWindowAverage (window 5 s)
    (
        "TestTimedFloat64BucketsWindowAverage",
        5.0,
        1.0,
        "now",
        [
            ("rec", 0, 1.0),
            ("avg", 0, 1.0),  # firstWrite is honoured (not 0.2)
            ("rec", 1, 2.0),
            ("rec", 2, 3.0),
            ("rec", 3, 4.0),
            ("rec", 4, 5.0),
            ("avg", 4, 15 / 5),
            ("avg", 3.6, 15 / 5),  # now lags behind
            ("avg", 6, (15 - 1 - 2) / (5 - 2)),  # short hole
            ("avg", 10, 0.0),  # long hole
            ("rec", 6, 91.0),
            ("avg", 6, (15 - 1 - 2 + 91) / 5),  # write after a hole
            ("rec", 60, 1984.0),
            ("avg", 60, 1984.0),  # much farther: fresh start
            ("rec", 57, 4.0),
            ("avg", 60, (4 + 1984) / 4),  # earlier time moves firstWrite back
            ("rec", 61, 5.0),
            ("avg", 61, (4 + 1984 + 5) / 5),
            ("rec", 58, 10.0),
            ("avg", 61, (4 + 10 + 1984 + 5) / 5),  # earlier time again
            ("rec", 55, 10.0),
            ("avg", 61, (4 + 10 + 1984 + 5) / 5),  # too early: ignored
            ("rec", 56, 10.0),
            ("avg", 61, (4 + 10 + 1984 + 5) / 5),  # exactly a window back: ignored
            ("rec", 66, 10.0),
            ("avg", 66, 10.0),  # exactly `window` of silence clears the data
        ],
    ),
    # TestDescendingRecord
    ("TestDescendingRecord", 5.0, 1.0, "now", [("rec", s, 5.0) for s in range(8, -1, -1)] + [("avg", 5, 5.0)]),
    # TestTimedFloat64BucketsHoles
    (
        "TestTimedFloat64BucketsHoles",
        5.0,
        1.0,
        "now",
        [("rec", i, float(i + 1)) for i in range(5)]
        + [
            ("sum", 4, 15.0),
            ("avg", 4, 15 / 5),
            ("rec", 8, 2.0),
            ("sum", 8, 7.0),  # seconds 5..7 became 0; [3] = 2, [4] = 5
            ("avg", 8, 7 / 5),
        ],
    ),  # derived
    # TestTimedFloat64BucketsResizeWindow
    (
        "TestTimedFloat64BucketsResizeWindow",
        5.0,
        1.0,
        "now",
        [("rec", i, float(i + 1)) for i in range(6)]
        + [
            ("sum", 5, 20.0),
            ("avg", 5, 20 / 5),
            ("resize", 10.0, 5),
            ("nbuckets", 10),
            ("window", 10.0),
            ("sum", 5, 20.0),
            ("avg", 5, 20 / 5),  # at most 5 buckets were known
            ("rec", 6, 7.0),
            ("sum", 6, 27.0),
            ("avg", 6, round(27 / 6, 6)),
            ("resize", 4.0, 6),
            ("nbuckets", 4),
            ("window", 4.0),
            ("sum", 6, 27.0 - 2 - 3),
            ("avg", 6, (27 - 2 - 3) / 4),
            ("same_buckets", 4.0, 6),
        ],
    ),  # idempotent
    # TestTimedFloat64BucketsWindowUpdate3sGranularity (2 buckets of 3 s)
    (
        "TestTimedFloat64BucketsWindowUpdate3sGranularity",
        5.0,
        3.0,
        "aligned3",
        [
            ("nbuckets", 2),
            ("rec", 0, 10.0),
            ("rec", 1, 2.0),
            ("rec", 2, 3.0),
            ("rec", 3, 4.0),
            ("rec", 4, 5.0),
            ("rec", 5, 6.0),
            ("rec", 6, 7.0),  # overrides the first bucket (10+2+3)
            ("sum", 6, 4 + 5 + 6 + 7.0),
            ("resize", 10.0, 6),
            ("nbuckets", 4),
            ("window", 10.0),
            ("sum", 6, 22.0),
            ("rec", 9.3, 42.0),
            ("sum", 9, 64.0),
            ("resize", 4.0, 9),
            ("nbuckets", 2),
            ("sum", 9, 42 + 7.0),  # oldest bucket dropped
            ("same_buckets", 4.0, 9),
        ],
    ),
    # TestTimedFloat64BucketsWindowUpdateNoOp (last write a minute before the resize)
    (
        "TestTimedFloat64BucketsWindowUpdateNoOp",
        5.0,
        1.0,
        "now",
        [
            ("rec", -60, 19.82),
            ("first_is_last",),
            ("resize", 10.0, 0),
            ("first_unset",),
            ("avg", -60, 0.0),
            ("empty", 0, True),  # derived: nothing valid survives
        ],
    ),
    # TestRoundToNDigits (the 6-digit precision the average uses), through a single write
    ("TestRoundToNDigits/6:3.6e-17", 5.0, 1.0, "now", [("rec", 0, 3.6e-17), ("avg", 0, 0.0)]),
    ("TestRoundToNDigits/-3.6e-17 (Go: 3 digits; here 6)", 5.0, 1.0, "now", [("rec", 0, -3.6e-17), ("avg", 0, 0.0)]),
    ("TestRoundToNDigits/6:12345", 5.0, 1.0, "now", [("rec", 0, 12345.0), ("avg", 0, 12345.0)]),
]

BASES = {
    # time.Now() is unaligned in Go; the Truncate-based tests use aligned starts.
    "now": [T0, T0 + 0.37, T0 + 0.93],
    "aligned1": [T0],
    "aligned3": [999.0],
    "aligned5": [T0],
}


def _resize_keeps_buckets(w: WindowAverage, base: float, op: tuple[Any, ...]) -> bool:
    before = w._buckets
    w.resize(op[1], base + op[2])
    return w._buckets is before


# One step of a bucketing case: what it does to the window, or what it asserts about it.
BUCKET_OPS: dict[str, Callable[[WindowAverage, float, tuple[Any, ...]], object]] = {
    "rec": lambda w, base, op: w.record(base + op[1], op[2]),
    "resize": lambda w, base, op: w.resize(op[1], base + op[2]),
}
BUCKET_CHECKS: dict[str, Callable[[WindowAverage, float, tuple[Any, ...]], object]] = {
    "avg": lambda w, base, op: w.average(base + op[1]) == op[2],
    "empty": lambda w, base, op: w.is_empty(base + op[1]) is op[2],
    "sum": lambda w, base, op: bucket_sum(w, base + op[1]) == op[2],
    "nonzero": lambda w, base, op: {t - base: v for t, v in bucket_values(w, base + op[1]) if v > 0} == op[2],
    "nbuckets": lambda w, base, op: len(w._buckets) == op[1],
    "window": lambda w, base, op: w.window == op[1],
    "first_is_last": lambda w, base, op: w._first == w._last,
    "first_unset": lambda w, base, op: w._first is None,
    "same_buckets": _resize_keeps_buckets,
}


@pytest.mark.parametrize(
    "name, window, gran, base",
    [(c[0], c[1], c[2], b) for c in BUCKETS for b in BASES[c[3]]],
)
def test_bucketing(name: str, window: float, gran: float, base: float) -> None:
    ops = next(c[4] for c in BUCKETS if c[0] == name)
    w = WindowAverage(window, gran)
    for i, op in enumerate(ops):
        where = f"{name} op {i} {op}"
        kind = op[0]
        if kind in BUCKET_OPS:
            BUCKET_OPS[kind](w, base, op)
        else:
            assert kind in BUCKET_CHECKS, kind
            assert BUCKET_CHECKS[kind](w, base, op) is True, where
