from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import pytest

from gateway.autoscale.scaler import Autoscaler, RevisionScaler
from gateway.autoscale.settings import RevisionScaling, resolve_scaling
from gateway.config.model import AutoscalerSettings, ScalingSpec
from gateway.types import Endpoint, EndpointSet, RevisionKey

KEY = RevisionKey("default", "iris", "default")
OTHER = RevisionKey("default", "iris", "canary")


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeBackend:
    """Replicas become ready at once unless ``auto_ready`` is off; then ``ready`` is set by hand."""

    def __init__(self, clock: Clock, auto_ready: bool = True) -> None:
        self.clock = clock
        self.auto_ready = auto_ready
        self.replicas: dict[RevisionKey, int] = {}
        self.ready: dict[RevisionKey, int] = {}
        self.calls: list[tuple[float, RevisionKey, int]] = []
        self.broken = False

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        self.calls.append((self.clock.t, key, replicas))
        self.replicas[key] = replicas
        if self.auto_ready:
            self.ready[key] = replicas

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        if self.broken:
            raise RuntimeError("cannot list endpoints")
        return frozenset(Endpoint("127.0.0.1", 9000 + i) for i in range(self.ready.get(key, 0)))

    def scales(self, key: RevisionKey = KEY) -> list[tuple[float, int]]:
        return [(t, n) for t, k, n in self.calls if k == key]


def scaling(spec: ScalingSpec | None = None, **kw: object) -> RevisionScaling:
    return replace(resolve_scaling(AutoscalerSettings(), spec), **kw)  # type: ignore[arg-type]


async def make(config: RevisionScaling, auto_ready: bool = True) -> tuple[Autoscaler, FakeBackend, Clock]:
    """An autoscaler with one revision, ticked once at t=0."""
    clock = Clock()
    backend = FakeBackend(clock, auto_ready)
    a = Autoscaler(backend, clock=clock)
    a.update({KEY: config})
    await a.tick_all()
    return a, backend, clock


async def tick_until(a: Autoscaler, clock: Clock, end: float, step: float = 2.0) -> None:
    while clock.t + step <= end:
        clock.t += step
        await a.tick_all()


async def test_idle_revision_scales_to_zero_after_stable_window_and_grace() -> None:
    a, backend, clock = await make(scaling(target_burst_capacity=0))
    started = time.perf_counter()
    await tick_until(a, clock, 90)
    assert backend.replicas[KEY] == 1
    assert a.status(KEY).state == "inactive"  # active for 60 s at t=62
    await tick_until(a, clock, 92)
    assert backend.scales() == [(0.0, 1), (92.0, 0)]
    assert time.perf_counter() - started < 1.0


async def test_activator_in_path_skips_the_grace_period() -> None:
    # TBC 211 with one idle replica: EBC -111, so the activator has been in the path all along.
    a, backend, clock = await make(scaling())
    await tick_until(a, clock, 62)
    assert backend.replicas[KEY] == 1
    assert a.revision(KEY).activator_in_path
    await tick_until(a, clock, 64)
    assert backend.scales() == [(0.0, 1), (64.0, 0)]


async def test_traffic_keeps_replicas_and_drives_scale_up() -> None:
    a, backend, clock = await make(scaling(target_burst_capacity=0))
    await tick_until(a, clock, 2)
    stats = a.stats(KEY)
    for _ in range(200):
        stats.request_in(clock.t)
    await tick_until(a, clock, 10)
    status = a.status(KEY)
    assert backend.replicas[KEY] == 3  # ceil(200 / 70)
    # Stamps 1..2 are idle zeros (a replica was ready), stamps 3..10 hold 200.
    assert status.stable == 160.0 and status.panic == 200.0
    assert status.panicking  # 3 pods wanted with 1 ready: 300 %
    assert status.in_flight == 200


async def test_scale_calls_only_on_change() -> None:
    a, backend, clock = await make(scaling(min_scale=1))
    await tick_until(a, clock, 300)
    assert backend.scales() == [(0.0, 1)]


async def test_min_and_max_clamp() -> None:
    a, backend, clock = await make(scaling(min_scale=2, max_scale=4, target_burst_capacity=0))
    await tick_until(a, clock, 2)
    assert backend.replicas[KEY] == 2
    stats = a.stats(KEY)
    for _ in range(1000):
        stats.request_in(clock.t)
    await tick_until(a, clock, 10)
    assert backend.replicas[KEY] == 4
    for _ in range(1000):
        stats.request_out(clock.t)
    await tick_until(a, clock, 400)
    assert backend.replicas[KEY] == 2
    assert min(n for _, n in backend.scales()) == 2


async def test_initial_scale_until_first_reached() -> None:
    a, backend, clock = await make(scaling(initial_scale=3), auto_ready=False)
    await tick_until(a, clock, 20)
    assert backend.scales() == [(0.0, 3)]
    backend.ready[KEY] = 3
    await tick_until(a, clock, 22)
    assert backend.replicas[KEY] == 3  # reached now; bounds relax from the next tick
    await tick_until(a, clock, 24)
    assert backend.replicas[KEY] == 1  # idle, but maxDown = floor(3 / 2) keeps one
    assert a.status(KEY).state == "active"


async def test_scale_to_zero_disabled_keeps_one() -> None:
    a, backend, clock = await make(scaling(enable_scale_to_zero=False, target_burst_capacity=0))
    await tick_until(a, clock, 400)
    assert backend.scales() == [(0.0, 1)]


async def test_fixed_class_ignores_load() -> None:
    a, backend, clock = await make(scaling(ScalingSpec(autoscaler_class="fixed", min_scale=2)))
    stats = a.stats(KEY)
    for _ in range(1000):
        stats.request_in(clock.t)
    await tick_until(a, clock, 200)
    assert backend.scales() == [(0.0, 2)]
    assert a.status(KEY).stable == 1000.0


async def test_activation_timeout_gives_up() -> None:
    a, backend, clock = await make(scaling(), auto_ready=False)
    await tick_until(a, clock, 630)
    assert backend.replicas[KEY] == 1
    await tick_until(a, clock, 632)
    assert backend.replicas[KEY] == 0


async def test_unknown_ready_count_changes_nothing() -> None:
    a, backend, clock = await make(scaling(min_scale=1))
    await tick_until(a, clock, 10)
    backend.broken = True
    rs = a.revision(KEY)
    before = rs.decider_desired
    await tick_until(a, clock, 20)
    assert rs.decider_desired == before
    assert backend.scales() == [(0.0, 1)]


async def test_invalid_tick_keeps_previous_decision() -> None:
    config = scaling(target_burst_capacity=0)
    rs = RevisionScaler(config, 0.0, ready=1)
    assert rs.tick(0.0, 1) is None  # no data yet: nothing to apply
    assert rs.desired == 1 and rs.decider_desired == -1


async def test_update_adds_removes_and_updates() -> None:
    a, backend, clock = await make(scaling(target_burst_capacity=0))
    await tick_until(a, clock, 4)
    stats = a.stats(KEY)
    for _ in range(100):
        stats.request_in(clock.t)
    a.update({KEY: scaling(target_burst_capacity=0, target_value=10.0), OTHER: scaling(min_scale=1)})
    assert a.stats(KEY) is stats
    assert a.revision(KEY).decider.spec.target_value == 10.0
    await tick_until(a, clock, 8)
    # Stamps 1..4 idle, 5..8 hold 100: panic average 400/6 -> 7 pods at target 10.
    assert backend.replicas[KEY] == 7
    assert backend.replicas[OTHER] == 1
    a.update({OTHER: scaling(min_scale=2)})
    assert KEY not in a and a.keys() == [OTHER]
    with pytest.raises(KeyError):
        a.stats(KEY)
    await tick_until(a, clock, 10)
    assert backend.replicas[OTHER] == 2
    assert backend.scales(KEY)[-1] == (8.0, 7)


async def test_update_resizes_windows() -> None:
    a, _, _ = await make(scaling())
    a.update({KEY: scaling(stable_window=30.0, panic_window=3.0)})
    stats = a.stats(KEY)
    assert (stats.stable_window, stats.panic_window) == (30.0, 3.0)


class ManualSleep:
    """Sleeps that end only when the test says so, advancing the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, asyncio.Future[None]]] = []

    async def __call__(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((seconds, future))
        await future

    def elapse(self) -> None:
        seconds, future = self.pending.pop(0)
        self.clock.t += seconds
        future.set_result(None)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_run_ticks_every_interval_and_poke_scales_from_zero_at_once() -> None:
    clock = Clock(100.0)
    backend = FakeBackend(clock)
    sleep = ManualSleep(clock)
    a = Autoscaler(backend, clock=clock, sleep=sleep)
    a.update({KEY: scaling(initial_scale=0, target_burst_capacity=0)})
    task = asyncio.create_task(a.run())
    try:
        await settle()
        assert backend.scales() == [(100.0, 0)]
        assert [s for s, _ in sleep.pending] == [2.0]
        sleep.elapse()
        await settle()
        assert a.status(KEY).desired == 0
        a.stats(KEY).request_in(clock.t)
        a.poke(KEY)
        await settle()
        assert backend.scales() == [(100.0, 0), (102.0, 1)]  # no waiting for the next tick
        assert len(sleep.pending) == 1  # the regular schedule is untouched
        sleep.elapse()
        await settle()
        assert backend.replicas[KEY] == 1
        assert a.status(KEY).state in ("activating", "active")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_poke_ignored_when_not_at_zero() -> None:
    a, backend, _ = await make(scaling(min_scale=1))
    await a.tick_all()
    a.poke(KEY)
    a.poke(OTHER)  # unknown keys are ignored too
    await a.tick_poked()
    assert backend.scales() == [(0.0, 1)]


async def test_run_with_instant_sleep_covers_minutes_without_wall_time() -> None:
    clock = Clock()
    backend = FakeBackend(clock)

    two_minutes = asyncio.Event()

    async def instant(seconds: float) -> None:
        clock.t += seconds
        if clock.t >= 120:
            two_minutes.set()
        await asyncio.sleep(0)

    a = Autoscaler(backend, clock=clock, sleep=instant)
    a.update({KEY: scaling(target_burst_capacity=0)})
    started = time.perf_counter()
    task = asyncio.create_task(a.run())
    try:
        await two_minutes.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert backend.scales() == [(0.0, 1), (92.0, 0)]
    assert time.perf_counter() - started < 2.0


async def test_backend_failure_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    backend = FakeBackend(clock)
    a = Autoscaler(backend, clock=clock)
    a.update({KEY: scaling(min_scale=1)})
    failures = [RuntimeError("boom")]
    original = backend.scale

    async def flaky(key: RevisionKey, replicas: int) -> None:
        if failures:
            raise failures.pop()
        await original(key, replicas)

    backend.scale = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="gateway.autoscale.scaler"):
        await a.tick_all()
    assert KEY not in backend.replicas
    assert "scaling default/iris-default to 1" in caplog.text
    clock.t = 2.0
    await a.tick_all()
    assert backend.replicas[KEY] == 1


def test_restart_with_ready_replicas_keeps_them() -> None:
    rs = RevisionScaler(scaling(), 50.0, ready=4)
    assert rs.desired == 4 and rs.state == "active"
    assert rs.panicking  # the decider holds the scale until data accumulates


def test_revision_poke_ticks_only_at_zero_and_once_a_second() -> None:
    rs = RevisionScaler(scaling(initial_scale=0, target_burst_capacity=0), 0.0)
    assert rs.tick(0.0, 0) is None  # no data: nothing to apply, stays at its initial 0
    assert rs.desired == 0 and rs.state == "inactive"
    rs.stats.request_in(5.0)
    rs.stats.request_in(5.1)
    assert rs.poke(5.1, 0) == 1
    assert rs.poke(5.2, 0) is None  # no longer at zero
    rs.desired = 0
    assert rs.poke(5.5, 0) is None  # within a second of the last poke
    assert rs.poke(6.2, 0) == 1


async def test_request_right_after_scale_to_zero_scales_up_at_once() -> None:
    a, backend, clock = await make(scaling(target_burst_capacity=0), auto_ready=False)
    backend.ready[KEY] = 1
    await tick_until(a, clock, 92)
    assert backend.replicas[KEY] == 0
    # The replica is still draining (ready) when the next request comes.
    clock.t = 93.0
    a.stats(KEY).request_in(clock.t)
    a.poke(KEY)
    await a.tick_poked()
    assert backend.scales()[-1] == (93.0, 1)


async def test_pod_retention_keeps_the_last_replica_past_the_grace_period() -> None:
    # As the grace-period test above, with a 120 s retention: inactive at 62 s, zero at 182 s.
    a, backend, clock = await make(scaling(scale_to_zero_pod_retention=120.0))
    await tick_until(a, clock, 180)
    assert backend.replicas[KEY] == 1
    await tick_until(a, clock, 184)
    assert backend.scales() == [(0.0, 1), (182.0, 0)]


async def test_pod_retention_is_ignored_when_unreachable() -> None:
    a, backend, clock = await make(scaling(scale_to_zero_pod_retention=120.0, reachable=False))
    await tick_until(a, clock, 100)
    assert backend.replicas[KEY] == 0


async def test_decisions_are_logged_once_each_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.autoscale.scaler")
    a, backend, clock = await make(scaling(target_burst_capacity=0))
    await tick_until(a, clock, 2)
    stats = a.stats(KEY)
    for _ in range(200):
        stats.request_in(clock.t)
    await tick_until(a, clock, 10)
    for _ in range(200):
        stats.request_out(clock.t)
    await tick_until(a, clock, 200)
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.autoscale.scaler"]
    assert lines == [
        "default/iris-default: scale none -> 1 (initial scale)",
        "default/iris-default: panic mode entered (panic concurrency 100.0 over the window, 1 ready)",
        "default/iris-default: scale 1 -> 2 (stable concurrency 100.0, panic 100.0, panicking)",
        "default/iris-default: scale 2 -> 3 (stable concurrency 150.0, panic 200.0, panicking)",
        "default/iris-default: panic mode left (stable concurrency 13.3)",
        "default/iris-default: scale 3 -> 1 (stable concurrency 13.3, panic 0.0)",
        "default/iris-default: scale 1 -> 0 (no traffic for the stable window and the grace period)",
    ]
    assert len(lines) < 10, "once per decision, never per tick"


class AdoptingFake(FakeBackend):
    """A backend whose replicas outlive the gateway: `running` is what it found at start."""

    def __init__(self, clock: Clock, running: int) -> None:
        super().__init__(clock)
        self.replicas[KEY] = self.ready[KEY] = running

    def adoption(self, key: RevisionKey) -> int | None:
        return self.replicas.get(key)


async def test_an_adopted_count_is_logged_as_adopted_not_as_an_initial_scale(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.autoscale.scaler")
    clock = Clock()
    backend = AdoptingFake(clock, running=6)
    a = Autoscaler(backend, clock=clock)
    a.update({KEY: scaling(initial_scale=0)})
    await a.tick_all()
    assert backend.scales() == [(0.0, 6)]
    lines = [r.getMessage() for r in caplog.records if " scale " in r.getMessage()]
    assert lines == ["default/iris-default: scale none -> 6 (adopted: 6 replicas were running)"]
