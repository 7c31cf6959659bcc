from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pytest

from gateway.autoscale.kpa import Decider, DeciderSpec, ScaleResult

T0 = 1_000.0


def spec(target: float = 10.0, tbc: float = 100.0, **kw: object) -> DeciderSpec:
    """Knative's test defaults: total = target / 0.75, threshold 200 %, rates 10, window 60 s."""
    base = DeciderSpec(
        target_value=target,
        total_value=target / 0.75,
        target_burst_capacity=tbc,
        panic_threshold=2.0,
        stable_window=60.0,
        max_scale_up_rate=10.0,
        max_scale_down_rate=10.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def ebc(target: float, tbc: float, panic: float, ready: int) -> int:
    return math.floor(ready * target / 0.75 - tbc - panic)


@dataclass
class Case:
    label: str
    spec: DeciderSpec
    ready: int | None
    stable: float | None
    panic: float | None
    want: ScaleResult
    panic_age: float | None = None  # seconds since panic started, if starting in panic
    max_panic_pods: int = 0
    built_with: int = 1  # ready pods at construction
    extra: dict[str, object] = field(default_factory=dict)


def ok(desired: int, excess: int) -> ScaleResult:
    return ScaleResult(desired, excess, True)


INVALID = ScaleResult(0, 0, False)

CASES = [
    Case("no data at zero scales to zero", spec(10, 100), 1, 0.0, 0.0, ok(0, ebc(10, 100, 0, 1))),
    Case("unlimited TBC gives EBC -1", spec(181, -1), 1, 21.0, 26.0, ok(1, -1)),
    Case("TBC 0 gives EBC 0", spec(10, 0), 1, 50.0, 49.0, ok(5, 0)),
    Case("stable mode", spec(10, 100), 1, 50.0, 50.0, ok(5, ebc(10, 100, 50, 1))),
    Case("stable mode already scaled", spec(10, 100), 5, 50.0, 50.0, ok(5, ebc(10, 100, 50, 5))),
    Case(
        "panic uses stable when larger",
        spec(1, 100),
        5,
        50.0,
        30.0,
        ok(50, ebc(1, 100, 30, 5)),
        panic_age=5,
        max_panic_pods=5,
    ),
    Case(
        "panic uses panic when larger",
        spec(1, 100),
        5,
        20.0,
        30.0,
        ok(30, ebc(1, 100, 30, 5)),
        panic_age=5,
        max_panic_pods=5,
    ),
    Case(
        "panic never scales down",
        spec(1, 100),
        5,
        2.0,
        3.0,
        ok(40, ebc(1, 100, 3, 5)),
        panic_age=5,
        max_panic_pods=40,
    ),
    Case(
        "small scale-up rate still grows by one pod",
        spec(1, 1982, max_scale_up_rate=1.1),
        2,
        3.0,
        3.1,
        ok(3, ebc(1, 1982, 3.1, 2)),
    ),
    Case(
        "small scale-down rate",
        spec(10, 1982, max_scale_down_rate=1.1),
        100,
        1.0,
        1.0,
        ok(90, ebc(10, 1982, 1, 100)),
    ),
    Case(
        "unreachable has no scale-down limit",
        spec(10, 1982, max_scale_down_rate=1.1, reachable=False),
        100,
        1.0,
        1.0,
        ok(1, ebc(10, 1982, 1, 100)),
    ),
    Case("panic doubles pod count", spec(10, 84), 1, 50.0, 100.0, ok(10, ebc(10, 84, 100, 1))),
    Case("rate limited scale up from one", spec(10, 61), 1, 1000.0, 1001.0, ok(10, ebc(10, 61, 1001, 1))),
    Case("rate limited scale up from ten", spec(10, 61), 10, 1000.0, 1001.0, ok(100, ebc(10, 61, 1001, 10))),
    Case("rate limited scale down", spec(10, 61), 100, 1.0, 1.0, ok(10, ebc(10, 61, 1, 100))),
    Case("zero ready counts as one for rate limits", spec(10, 81), 0, 1000.0, 888.0, ok(10, ebc(10, 81, 888, 0))),
    Case("ready count unknown is invalid", spec(10, 81), None, 1000.0, 888.0, INVALID),
    Case("no stable data is invalid", spec(10, 81), 3, None, 5.0, INVALID),
    Case("no panic data is invalid", spec(10, 81), 3, 5.0, None, INVALID),
    Case("activation scale lifts a non-zero count", spec(10, 75, activation_scale=2), 1, 1.0, 0.0, ok(2, ebc(10, 75, 0, 1))),
    Case("activation scale never lifts zero", spec(10, 75, activation_scale=2), 1, 0.0, 0.0, ok(0, ebc(10, 75, 0, 1))),
    Case("activation scale of one is ignored", spec(10, 75, activation_scale=1), 1, 1.0, 0.0, ok(1, ebc(10, 75, 0, 1))),
    Case(
        "activation scale can exceed max scale up",
        spec(10, 75, activation_scale=5, max_scale_up_rate=1.5),
        1,
        1.0,
        1.0,
        ok(5, ebc(10, 75, 1, 1)),
    ),
    Case(
        "upper bound wins over lower bound", spec(10, 0, max_scale_up_rate=0.1, max_scale_down_rate=1.0), 10, 0.0, 0.0, ok(1, 0)
    ),
    Case("panic threshold is inclusive", spec(10, 0), 2, 10.0, 40.0, ok(4, 0)),
    Case("below panic threshold stays stable", spec(10, 0), 2, 10.0, 30.0, ok(1, 0)),
    Case("scale-down from three keeps one", spec(10, 0, max_scale_down_rate=2.0), 3, 0.0, 0.0, ok(1, 0)),
    Case("one pod may go to zero at rate 2", spec(10, 0, max_scale_down_rate=2.0), 1, 0.0, 0.0, ok(0, 0)),
    Case("EBC uses panic average and raw ready", spec(10, 50), 3, 0.0, 7.5, ok(0, math.floor(3 * 10 / 0.75 - 50 - 7.5))),
    Case("EBC defaults one idle pod", replace(spec(70, 211), total_value=100.0), 1, 0.0, 0.0, ok(0, -111)),
    Case("EBC defaults three idle pods", replace(spec(70, 211), total_value=100.0), 3, 0.0, 0.0, ok(0, 89)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_scale_table(case: Case) -> None:
    d = Decider(case.spec, case.built_with, T0 - 100)
    if case.panic_age is not None:
        d.panic_time = T0 - case.panic_age
        d.max_panic_pods = case.max_panic_pods
    assert d.scale(T0, case.stable, case.panic, case.ready) == case.want


def test_invalid_tick_leaves_state() -> None:
    d = Decider(spec(10, 0), 1, T0)
    d.panic_time = T0
    d.max_panic_pods = 7
    assert not d.scale(T0 + 100, None, None, 3).valid
    assert (d.panic_time, d.max_panic_pods) == (T0, 7)


@pytest.mark.parametrize(("ready", "panicking"), [(0, False), (1, False), (2, True), (5, True)])
def test_start_in_panic_mode(ready: int, panicking: bool) -> None:
    d = Decider(spec(100, 11, panic_threshold=2.2), ready, T0)
    assert d.panicking is panicking
    assert d.panic_time == (T0 if panicking else None)
    assert d.max_panic_pods == ready


def test_started_in_panic_holds_current_scale() -> None:
    d = Decider(spec(10, 0), 5, T0)
    assert d.scale(T0 + 2, 0.0, 0.0, 5) == ok(5, 0)
    assert d.scale(T0 + 60, 0.0, 0.0, 5) == ok(5, 0)
    assert d.scale(T0 + 60.5, 0.0, 0.0, 5) == ok(0, 0)  # maxDown = floor(5/10) = 0
    assert not d.panicking


def test_stable_mode_decrease() -> None:
    d = Decider(spec(10, 98), 1, T0)
    assert d.scale(T0, 100.0, 100.0, 8).desired_pods == 10
    assert d.scale(T0 + 2, 50.0, 50.0, 8).desired_pods == 5


def test_unpanic_after_slow_increase() -> None:
    d = Decider(spec(1, 98), 1, T0)
    assert d.scale(T0, 11.0, 25.0, 10) == ok(25, ebc(1, 98, 25, 10))
    assert d.panic_time == T0
    assert d.scale(T0 + 30, 30.0, 41.0, 40) == ok(41, ebc(1, 98, 41, 40))
    assert d.panic_time == T0  # 41/40 is below the threshold: not extended
    assert d.scale(T0 + 62, 50.0, 56.0, 55) == ok(50, ebc(1, 98, 56, 55))
    assert d.panic_time is None
    assert d.max_panic_pods == 0


def test_extend_panic_window() -> None:
    d = Decider(spec(1, 98), 1, T0)
    d.scale(T0, 11.0, 25.0, 10)
    assert d.scale(T0 + 30, 30.0, 80.0, 40) == ok(80, ebc(1, 98, 80, 40))
    assert d.panic_time == T0 + 30


def test_panic_exit_is_strictly_after_stable_window() -> None:
    d = Decider(spec(10, 93), 1, T0)
    assert d.scale(T0, 100.0, 100.0, 1).desired_pods == 10
    assert d.scale(T0 + 1, 100.0, 1000.0, 10).desired_pods == 100
    assert d.scale(T0 + 31, 1.0, 1.0, 10).desired_pods == 100
    assert d.scale(T0 + 61, 1.0, 1.0, 10).desired_pods == 100  # exactly panic_time + window
    assert d.panicking
    assert d.scale(T0 + 62, 1.0, 1.0, 10).desired_pods == 1
    assert not d.panicking


def test_exponential_track_and_stabilize() -> None:
    d = Decider(spec(1, 101), 1, T0)
    assert d.scale(T0, 6.0, 6.0, 1) == ok(6, ebc(1, 101, 6, 1))
    assert d.scale(T0, 36.0, 36.0, 6) == ok(36, ebc(1, 101, 36, 6))
    assert d.panic_time == T0
    assert d.scale(T0 + 1, 216.0, 216.0, 36) == ok(216, ebc(1, 101, 216, 36))
    assert d.scale(T0 + 1, 1296.0, 1296.0, 216) == ok(1296, ebc(1, 101, 1296, 216))
    assert d.scale(T0 + 2, 1296.0, 1296.0, 1296) == ok(1296, ebc(1, 101, 1296, 1296))


def test_update_target() -> None:
    d = Decider(spec(10, 77), 1, T0)
    assert d.scale(T0, 100.0, 101.0, 1) == ok(10, ebc(10, 77, 101, 1))
    d.update(spec(1, 71))
    assert d.scale(T0 + 2, 100.0, 101.0, 10) == ok(100, ebc(1, 71, 101, 10))


def test_update_keeps_panic_state() -> None:
    d = Decider(spec(10, 0), 4, T0)
    d.update(spec(5, 0))
    assert d.panic_time == T0 and d.max_panic_pods == 4


def delayed(delay: float = 300.0, **kw: object) -> Decider:
    return Decider(spec(10, 0, panic_threshold=100.0, scale_down_delay=delay, **kw), 0, 0.0)


def test_scale_down_delay_simple() -> None:
    d = delayed()
    assert d.scale(2.0, 40.0, 40.0, 0).desired_pods == 4
    assert d.scale(300.0, 0.0, 0.0, 0).desired_pods == 4
    assert d.scale(302.0, 0.0, 0.0, 0).desired_pods == 0


def test_scale_down_delay_gradual() -> None:
    d = delayed()
    assert d.scale(540.0, 40.0, 40.0, 0).desired_pods == 4
    assert d.scale(600.0, 30.0, 30.0, 0).desired_pods == 4
    assert d.scale(660.0, 0.0, 0.0, 0).desired_pods == 4
    assert d.scale(840.0, 0.0, 0.0, 0).desired_pods == 3
    assert d.scale(900.0, 0.0, 0.0, 0).desired_pods == 0


def test_scale_down_delay_does_not_delay_scale_up() -> None:
    d = delayed()
    assert d.scale(2.0, 10.0, 10.0, 0).desired_pods == 1
    assert d.scale(4.0, 50.0, 50.0, 0).desired_pods == 5


def test_same_delay_slot_keeps_the_larger_value() -> None:
    d = delayed(delay=2.0)
    assert d.scale(10.0, 50.0, 50.0, 0).desired_pods == 5
    assert d.scale(11.0, 30.0, 30.0, 0).desired_pods == 5  # same 2 s slot
    assert d.scale(12.0, 30.0, 30.0, 0).desired_pods == 3  # next slot: 5 has scrolled out


def test_slot_index_truncates_now() -> None:
    d = delayed(delay=2.0)
    assert d.scale(10.9, 50.0, 50.0, 0).desired_pods == 5
    assert d.scale(11.99, 0.0, 0.0, 0).desired_pods == 5


def test_zero_delay_scales_down_at_once() -> None:
    d = delayed(delay=0.0)
    assert d.scale(0.0, 40.0, 40.0, 0).desired_pods == 4
    assert d.scale(0.5, 20.0, 20.0, 0).desired_pods == 2


def test_update_never_creates_a_delay_window() -> None:
    d = delayed(delay=0.0)
    d.scale(0.0, 40.0, 40.0, 0)
    d.update(replace(d.spec, scale_down_delay=300.0))
    assert d.scale(2.0, 0.0, 0.0, 0).desired_pods == 0


def test_update_never_removes_the_delay_window() -> None:
    d = delayed()
    d.scale(2.0, 40.0, 40.0, 0)
    d.update(replace(d.spec, scale_down_delay=0.0))
    assert d.scale(4.0, 0.0, 0.0, 0).desired_pods == 4


def test_unreachable_skips_the_delay_window() -> None:
    d = delayed()
    assert d.scale(2.0, 40.0, 40.0, 0).desired_pods == 4
    assert d.scale(60.0, 0.0, 0.0, 0).desired_pods == 4
    d.update(replace(d.spec, reachable=False))
    assert d.scale(62.0, 0.0, 0.0, 0).desired_pods == 0


def test_delay_window_holds_the_panic_count_after_panic() -> None:
    d = Decider(spec(10, 0, scale_down_delay=10.0), 1, 0.0)
    assert d.scale(0.0, 10.0, 40.0, 1).desired_pods == 4  # 4/1 >= 2: panic
    assert d.scale(62.0, 10.0, 10.0, 1).desired_pods == 1  # panic over, 4 recorded long ago
    assert d.scale(64.0, 10.0, 10.0, 10).desired_pods == 1
