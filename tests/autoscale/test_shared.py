"""Stats shared between data planes (the outbox and remote seconds) and the autoscaler's actuator gate."""

from __future__ import annotations

import logging

import pytest

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.stats import RevisionStats
from tests.autoscale.test_scaler import KEY, Clock, FakeBackend, scaling, tick_until


class Sink:
    def __init__(self) -> None:
        self.activated: list[RevisionStats] = []

    def activate(self, stats: RevisionStats) -> None:
        self.activated.append(stats)


def test_a_planes_seconds_added_to_another_make_the_revision_wide_average() -> None:
    leader, follower = RevisionStats(60, 6), RevisionStats(60, 6)
    sink = Sink()
    follower.share(sink, KEY)
    for stats in (leader, follower):
        stats.observe(0.0, ready=1)
    for _ in range(2):
        leader.request_in(0.0)
    for _ in range(3):
        follower.request_in(0.0)
    for t in range(1, 11):
        for stamp, concurrency, requests in follower.take(float(t)):
            leader.record_remote(stamp, concurrency, requests)
        leader.observe(float(t))
    # the leader alone had 2 in flight; with the follower's 3 the revision had 5 for every second
    assert leader.concurrency(10.0) == (5.0, 5.0)
    assert follower.concurrency(10.0) == (3.0, 3.0)  # the follower's own windows hold only its share


def test_the_outbox_holds_each_second_once_and_leaves_idle_seconds_out() -> None:
    stats = RevisionStats(60, 6)
    sink = Sink()
    stats.share(sink, KEY)
    stats.observe(0.0, ready=1)
    stats.request_in(0.5)
    assert sink.activated == [stats] and stats.listed
    stats.request_in(0.6)  # still listed: announced once per active stretch
    assert sink.activated == [stats]
    assert stats.take(0.9) == []  # the second is not finished
    stats.request_out(1.5)
    stats.request_out(1.5)
    taken = stats.take(3.2)
    # second 0: 1 in flight for 0.1 s and 2 for 0.4 s; second 1: 2 for its first half
    assert taken == [(1, 0.9, 2.0), (2, 1.0, 0.0)]
    assert stats.take(5.0) == []  # idle seconds (recorded as zeros locally) are not shipped
    assert not stats.listed  # nothing in flight, nothing left: the sink may drop it
    stats.request_in(6.0)
    assert sink.activated == [stats, stats]


def test_a_long_request_is_published_every_second_while_it_runs() -> None:
    stats = RevisionStats(60, 6)
    stats.share(Sink(), KEY)
    stats.observe(0.0, ready=1)
    stats.request_in(0.0)
    seen = [second for t in range(1, 5) for second in stats.take(float(t))]
    assert seen == [(1, 1.0, 1.0), (2, 1.0, 0.0), (3, 1.0, 0.0), (4, 1.0, 0.0)]
    assert stats.listed


def test_the_first_request_at_zero_is_shipped_at_once() -> None:
    stats = RevisionStats(60, 6)
    stats.share(Sink(), KEY)
    stats.request_in(10.25)  # no replica known: Knative's activator reports a concurrency of 1 at once
    assert stats.take(10.3) == [(10, 1.0, 1.0)]


class Gate:
    def __init__(self) -> None:
        self.leader = False

    def may_act(self, before: int | None, target: int) -> bool:
        return self.leader


async def test_a_follower_decides_but_never_scales_and_takes_over_from_its_warm_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.autoscale.scaler")
    clock = Clock()
    backend = FakeBackend(clock)
    backend.ready[KEY] = 2
    backend.replicas[KEY] = 2
    autoscaler = Autoscaler(backend, clock=clock)
    gate = Gate()
    autoscaler.actuator = gate
    autoscaler.update({KEY: scaling(target_burst_capacity=0)})
    stats = autoscaler.stats(KEY)
    await autoscaler.tick_all()
    for _ in range(300):
        stats.request_in(clock.t)
    await tick_until(autoscaler, clock, 20)
    assert autoscaler.status(KEY).desired == 5  # ceil(300 / 70)
    assert backend.calls == []  # not the leader: nothing sent
    gate.leader = True
    autoscaler.take_over()
    await autoscaler.tick_all()
    assert backend.scales() == [(20.0, 5)]  # from the warm decision, not from the initial scale
    scale_lines = [r.getMessage() for r in caplog.records if " scale " in r.getMessage()]
    assert scale_lines == ["default/iris-default: scale none -> 5 (taken over: this instance now scales)"]


async def test_a_poke_at_zero_is_relayed() -> None:
    clock = Clock()
    backend = FakeBackend(clock)
    autoscaler = Autoscaler(backend, clock=clock)
    relayed: list[object] = []
    autoscaler.relay = relayed.append
    autoscaler.update({KEY: scaling(initial_scale=0)})
    await autoscaler.tick_all()
    autoscaler.poke(KEY)
    assert relayed == [KEY]
