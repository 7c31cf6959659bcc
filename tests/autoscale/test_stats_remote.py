"""Another plane's seconds arriving late: its last second stands in until they are in (stats.py, ``CARRY``)."""

from __future__ import annotations

from collections.abc import Container

import pytest

from gateway.autoscale.stats import RevisionStats, Second
from gateway.shared.exchange import StatsOutbox


class Plane:
    """One data plane with `in_flight` requests held and `rate` requests a second passing through."""

    def __init__(self, in_flight: int, rate: int, stable: float, panic: float) -> None:
        self.stats = RevisionStats(stable, panic)
        self.stats.share(StatsOutbox(), "rev")
        self.in_flight = in_flight
        self.rate = rate

    def start(self, now: float) -> None:
        self.stats.observe(now, ready=1)
        for _ in range(self.in_flight):
            self.stats.request_in(now)

    def second(self, now: float) -> None:
        for _ in range(self.rate):
            self.stats.request_in(now)
            self.stats.request_out(now)

    def stop(self, now: float) -> None:
        for _ in range(self.in_flight):
            self.stats.request_out(now)


class Late:
    """Seconds taken from a plane at one tick, delivered `lag` seconds later to a decider under `name`."""

    def __init__(self, plane: Plane, decider: RevisionStats, lag: float, name: str = "b") -> None:
        self.plane, self.decider, self.lag, self.name = plane, decider, lag, name
        self.queue: list[tuple[float, list[Second]]] = []
        self.live: Container[str] = {name}

    def tick(self, now: float) -> None:
        self.queue.append((now + self.lag, self.plane.stats.take(now)))
        while self.queue and self.queue[0][0] <= now:
            for stamp, concurrency, requests in self.queue.pop(0)[1]:
                self.decider.record_remote(stamp, concurrency, requests, self.name, self.live)


def ticks(first: float, last: float, step: float = 0.25) -> list[float]:
    return [first + i * step for i in range(round((last - first) / step) + 1)]


@pytest.mark.parametrize(("stable", "panic"), [(60.0, 6.0), (20.0, 2.0), (6.0, 1.0)])
@pytest.mark.parametrize("lag", [0.5, 1.0, 1.75])
def test_two_planes_with_one_reporting_late_decide_as_one_plane_with_all_the_load(
    stable: float, panic: float, lag: float
) -> None:
    one = Plane(8, 6, stable, panic)  # the whole load on one plane
    local, remote = Plane(3, 2, stable, panic), Plane(5, 4, stable, panic)  # the same load split over two
    late = Late(remote, local.stats, lag)
    for plane in (one, local, remote):
        plane.start(1000.1)
    checked = 0
    for now in ticks(1000.25, 1000.0 + stable + 10):
        if now == int(now):
            for plane in (one, local, remote):
                plane.second(now)
        late.tick(now)
        if now >= 1000.0 + stable + 3:  # the windows full, the late plane's first seconds long in
            assert local.stats.concurrency(now) == one.stats.concurrency(now), now
            assert local.stats.rps(now) == one.stats.rps(now), now
            checked += 1
    assert checked == 29


def test_a_plane_that_went_idle_stops_counting_once_its_seconds_should_have_come() -> None:
    one = Plane(8, 0, 20.0, 2.0)  # 3 + 5, then 3 once the other plane's requests ended
    local, remote = Plane(3, 0, 20.0, 2.0), Plane(5, 0, 20.0, 2.0)
    late = Late(remote, local.stats, 1.5)
    for plane in (one, local, remote):
        plane.start(1000.1)
    for now in ticks(1000.25, 1040.0):
        if now == 1030.0:
            remote.stop(now)
            for _ in range(5):
                one.stats.request_out(now)
        late.tick(now)
        read = local.stats.concurrency(now)  # read every tick, as the decider does: what is not in yet stands in
        if now >= 1024.0 and not 1030.0 <= now < 1034.0:  # within CARRY + 1 s of its last second it may still count
            assert read == one.stats.concurrency(now), now


def test_a_plane_that_left_is_not_carried_forward() -> None:
    local, remote = Plane(3, 0, 20.0, 2.0), Plane(5, 0, 20.0, 2.0)
    late = Late(remote, local.stats, 1.5)  # at 1030 its seconds up to 1028 are in
    live = {"b"}
    late.live = live
    for plane in (local, remote):
        plane.start(1000.1)
    for now in ticks(1000.25, 1030.0):
        late.tick(now)
    assert local.stats.concurrency(1030.0) == (8.0, 8.0)  # carried: 3 here and the other's 5
    live.discard("b")  # it left the membership: its newest seconds will never come
    late.queue.clear()
    # its placeholders for 1029 and 1030 are taken out: the panic window (2 s) holds only this plane's 3
    assert local.stats.concurrency(1030.0) == pytest.approx((3 + 5 * 18 / 20, 3.0))


def test_without_a_source_seconds_are_added_as_they_come() -> None:
    local = Plane(3, 0, 20.0, 2.0)
    local.start(1000.1)
    for stamp in range(1001, 1029):
        local.stats.record_remote(stamp, 5.0, 0.0)
    # the window (20 s, 1011..1030) holds the other plane's 5 in 1011..1028 and nothing in its place after
    assert local.stats.concurrency(1030.0) == pytest.approx((3 + 5 * 18 / 20, 3.0))
