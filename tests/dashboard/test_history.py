"""The dashboard's history with an injected clock: lazy tracks, samples on change only, rates and quantiles
from counter deltas, the 15-minute window, bounded events, and the autoscaler feeding it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.settings import RevisionScaling
from gateway.config.model import AutoscalerSettings, ScalingSpec
from gateway.dashboard.history import COLUMNS, MAX_EVENTS, RATE_WINDOW, History, quantile
from gateway.router.revision import RevisionRuntime, RevisionSettings
from gateway.types import Endpoint, EndpointSet, RevisionKey

KEY = RevisionKey("default", "iris", "default")
SETTINGS = RevisionSettings(container_concurrency=0, queue_depth=100, scalable=True, request_timeout=60, activation_timeout=60)


@dataclass
class Figures:
    desired: int = 0
    ready: int = 0
    stable: float | None = None
    panic: float | None = None
    panicking: bool = False


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(window: float = 900.0) -> tuple[History, dict[RevisionKey, RevisionRuntime], Clock]:
    clock = Clock()
    runtimes = {KEY: RevisionRuntime(KEY, SETTINGS)}
    return History(runtimes, clock=clock, window=window), runtimes, clock


def rows(history: History, since: float | None = None) -> list[dict[str, object]]:
    doc = history.history(KEY, since)
    assert doc["columns"] == list(COLUMNS)
    return [dict(zip(COLUMNS, row)) for row in doc["rows"]]


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    bounds = (0.1, 0.2, 0.4)
    assert quantile(0.5, bounds, [0, 10, 0, 0]) == pytest.approx(0.15)
    assert quantile(0.99, bounds, [50, 0, 50, 0]) == pytest.approx(0.2 + 0.2 * 49 / 50)
    assert quantile(0.5, bounds, [0, 0, 0, 4]) == 0.4  # past the last bound: that bound
    assert quantile(0.5, bounds, [0, 0, 0, 0]) is None


def test_an_idle_revision_at_zero_costs_nothing() -> None:
    history, _, clock = make()
    for _ in range(1000):
        clock.now += 1
        history.sample(KEY, Figures())
    assert history.tracks == {}
    assert history.history(KEY, None)["rows"] == []
    assert history.recent(KEY) == {"rps": None, "error_rate": None, "p50": None, "p99": None}


def test_samples_are_stored_only_when_something_changed() -> None:
    history, _, clock = make()
    history.sample(KEY, Figures(desired=1))
    for _ in range(10):
        clock.now += 1
        history.sample(KEY, Figures(desired=1))
    clock.now += 1
    history.sample(KEY, Figures(desired=1, ready=1, stable=0.5))
    got = rows(history)
    assert [(r["time"], r["desired"], r["ready"], r["stable"]) for r in got] == [(1000.0, 1, 0, None), (1011.0, 1, 1, 0.5)]


def test_rates_errors_and_latency_quantiles_come_from_counter_deltas() -> None:
    history, runtimes, clock = make()
    runtime = runtimes[KEY]
    figures = Figures(desired=1, ready=1)
    history.sample(KEY, figures)
    clock.now += 2
    for _ in range(18):
        runtime.record(200, 0.03)  # bucket (0.025, 0.05]
    runtime.record(503, 0.3)
    runtime.record(200, 0.3)  # bucket (0.25, 0.5]
    history.sample(KEY, figures)
    last = rows(history)[-1]
    assert last["rps"] == 10.0
    assert last["error_rate"] == 0.05
    assert last["p50"] == pytest.approx(0.025 + 0.025 * 10 / 18, abs=1e-6)
    assert last["p99"] == pytest.approx(0.25 + 0.25 * (19.8 - 18) / 2, abs=1e-6)
    # the table: over the last RATE_WINDOW seconds, the counts standing before the window included
    clock.now += RATE_WINDOW - 2
    recent = history.recent(KEY)
    assert recent["rps"] == pytest.approx(20 / RATE_WINDOW)
    assert recent["error_rate"] == 0.05
    clock.now += RATE_WINDOW + 1
    history.sample(KEY, figures)
    assert history.recent(KEY)["rps"] == 0.0
    assert rows(history)[-1]["rps"] == 0.0


def test_the_window_keeps_the_value_at_its_start_and_an_idle_track_is_dropped_then_revived() -> None:
    history, runtimes, clock = make(window=60)
    history.sample(KEY, Figures(desired=1, ready=1))
    clock.now += 10
    history.sample(KEY, Figures(desired=0, ready=0))
    clock.now += 30
    got = rows(history)
    assert [(r["time"], r["desired"]) for r in got] == [(1000.0, 1), (1010.0, 0)]
    clock.now += 25  # the first sample left the window: shown at its start, the value it held then
    got = rows(history)
    assert [(r["time"], r["desired"]) for r in got] == [(clock.now - 60, 1), (1010.0, 0)]
    history.event(KEY, "scale", "1 -> 0", "no traffic")
    clock.now += 61
    history.sample(KEY, Figures())
    assert KEY not in history.tracks, "a track idle for a whole window is dropped"
    runtimes[KEY].record(200, 0.01)  # the revision at zero answers (its counters go on): active again
    history.sample(KEY, Figures())
    assert KEY in history.tracks
    clock.now += 1
    history.sample(KEY, Figures())  # the next tick: its rate back to 0, the last change
    clock.now += 61
    history.sample(KEY, Figures())
    history.sample(KEY, Figures())
    assert KEY not in history.tracks
    clock.now += 1
    history.sample(KEY, Figures())
    assert KEY not in history.tracks, "the same answered count as when it was dropped: still idle"


def test_since_returns_only_what_is_new_and_events_are_bounded() -> None:
    history, _, clock = make()
    history.sample(KEY, Figures(desired=1))
    first = history.history(KEY, None)
    clock.now += 1
    history.sample(KEY, Figures(desired=2))
    history.event(KEY, "scale", "1 -> 2", "stable concurrency 3.0")
    later = history.history(KEY, first["now"])
    assert [row[1] for row in later["rows"]] == [2]
    assert later["events"] == [{"time": clock.now, "kind": "scale", "what": "1 -> 2", "why": "stable concurrency 3.0"}]
    assert history.history(KEY, clock.now)["rows"] == [] and history.history(KEY, clock.now)["events"] == []
    for i in range(MAX_EVENTS + 20):
        clock.now += 1
        history.event(KEY, "scale", f"{i} -> {i + 1}", "test")
    events = history.history(KEY, None)["events"]
    assert len(events) == MAX_EVENTS
    assert events[-1]["what"] == f"{MAX_EVENTS + 19} -> {MAX_EVENTS + 20}"
    history.forget(KEY)
    assert history.tracks == {}


class Backend:
    def __init__(self) -> None:
        self.ready: dict[RevisionKey, EndpointSet] = {}
        self.scaled: list[int] = []

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        self.scaled.append(replicas)
        self.ready[key] = frozenset(Endpoint("127.0.0.1", 9000 + i) for i in range(replicas))

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        return self.ready.get(key, frozenset())


async def test_the_autoscaler_feeds_samples_and_scale_and_panic_events() -> None:
    clock = Clock()
    backend = Backend()
    autoscaler = Autoscaler(backend, clock=clock, tick_interval=1.0)
    runtimes = {KEY: RevisionRuntime(KEY, SETTINGS)}
    history = History(runtimes, clock=clock)
    autoscaler.observer = history
    scaling = RevisionScaling.resolve(AutoscalerSettings(tick_interval=1.0), ScalingSpec(max_scale=20, target=1.0))
    autoscaler.set(KEY, scaling)
    await autoscaler.tick_all()
    stats = autoscaler.stats(KEY)
    for _ in range(8):
        stats.request_in(clock.now)
    for _ in range(6):
        clock.now += 1
        await autoscaler.tick_all()
    events = history.history(KEY, None)["events"]
    kinds = [(e["kind"], e["what"], e["why"]) for e in events]
    desired = autoscaler.status(KEY).desired
    assert desired > 1 and backend.scaled[0] == 1 and backend.scaled[-1] == desired
    assert kinds[0] == ("scale", "none -> 1", "initial scale"), kinds
    assert kinds[1][:2] == ("panic", "entered"), kinds
    steps = [f"{a} -> {b}" for a, b in zip(backend.scaled, backend.scaled[1:])]
    assert [what for kind, what, _ in kinds[2:]] == steps, "one event per scale sent to the backend"
    assert all(why.endswith("panicking") for _, _, why in kinds[2:]), kinds
    assert rows(history)[-1]["desired"] == desired and rows(history)[-1]["panicking"] is True
    autoscaler.remove(KEY)
    assert KEY not in history.tracks
    await asyncio.sleep(0)


@pytest.mark.parametrize("after_rest", [False, True])
def test_the_first_burst_of_an_idle_revision_shows_its_rate_and_errors(after_rest: bool) -> None:
    """The tick that first sees activity creates the track: its rates start from the counts before the burst
    (zero for a revision never tracked, the counts it was dropped at after a quiet window), not from counters
    that already include the burst."""
    history, runtimes, clock = make(window=60)
    runtime = runtimes[KEY]
    figures = Figures()  # a static-style revision: nothing scales it, no replica counted
    if after_rest:
        for _ in range(40):
            runtime.record(200, 0.3)
        history.sample(KEY, figures)
        clock.now += 1
        history.sample(KEY, figures)
        clock.now += 61
        history.sample(KEY, figures)
        assert KEY not in history.tracks
    clock.now += 30
    history.sample(KEY, figures)  # idle: the tick before the burst
    assert KEY not in history.tracks
    for _ in range(75):
        runtime.record(200, 0.03)
    for _ in range(25):
        runtime.record(503, 0.03)
    clock.now += 2
    history.sample(KEY, figures)
    assert KEY in history.tracks
    last = rows(history)[-1]
    assert last["rps"] == pytest.approx(100 / RATE_WINDOW)
    assert last["error_rate"] == 0.25
    p50 = last["p50"]
    assert isinstance(p50, float) and 0.025 <= p50 <= 0.05, "the burst's latency, not the earlier requests'"
    recent = history.recent(KEY)
    assert recent["rps"] == pytest.approx(100 / RATE_WINDOW)
    assert recent["error_rate"] == 0.25


def test_a_revision_nothing_ticks_does_not_show_old_counts_as_a_burst() -> None:
    """Static endpoints are sampled only while the page looks: at the first look their counters may be hours
    old, so its rates start there (the zero-count start above is for ticked revisions); one idle at its first
    look keeps its counts then, so a burst before the next look still shows."""
    history, runtimes, clock = make()
    runtime = runtimes[KEY]
    for _ in range(1000):
        runtime.record(200, 0.03)
    clock.now += 3600
    history.sample(KEY, Figures(ready=1), ticked=False)
    assert rows(history)[-1]["rps"] == 0.0
    assert history.recent(KEY)["rps"] == 0.0
    for _ in range(20):
        runtime.record(503, 0.03)
    clock.now += 2
    history.sample(KEY, Figures(ready=1), ticked=False)
    last = rows(history)[-1]
    assert last["rps"] == 10.0 and last["error_rate"] == 1.0
    # one nothing ticks, idle at its first look (no ready endpoint): a burst seen at the next look shows
    history.forget(KEY)
    clock.now += 60
    history.sample(KEY, Figures(), ticked=False)
    assert KEY not in history.tracks
    for _ in range(30):
        runtime.record(200, 0.03)
    for _ in range(10):
        runtime.record(500, 0.03)
    clock.now += 1
    history.sample(KEY, Figures(), ticked=False)
    last = rows(history)[-1]
    assert last["rps"] == 40.0 and last["error_rate"] == 0.25
