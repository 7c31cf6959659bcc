"""Stats seconds on the wire: what goes out, what comes in, and what is refused from a hostile or broken peer."""

from __future__ import annotations

import json

import pytest

from gateway.autoscale.stats import RevisionStats
from gateway.shared.exchange import ServerClock, decode, encode, ingest
from gateway.types import RevisionKey

KEY = RevisionKey("default", "iris", "default")
NAME = "default/iris/default"


def test_seconds_round_trip_between_two_clocks() -> None:
    # this process's second 100 is wall second 1000 (offset 900); another process's offset is 990
    wire = encode({KEY: [(100, 2.5, 7.0)]}, 900)
    assert decode(wire, 990) == {KEY: [(10, 2.5, 7.0)]}


def entry(seconds: object) -> str:
    return json.dumps({NAME: seconds})


@pytest.mark.parametrize(
    "seconds",
    [
        [[1000, -1, 1]],
        [[1000, 1, -1]],
        [[1000, "1", 1]],
        [[1000, True, 1]],
        [[1000, 1e9, 1]],  # a billion in flight on one instance
        [[1000, 1, 1e12]],
        [[1e300, 1, 1]],
        [[1000, 1]],
        [1000, 1, 1],
        ["x"],
    ],
)
def test_a_malformed_second_is_skipped(seconds: object) -> None:
    assert decode(entry(seconds), 0) == {KEY: []}


def test_seconds_far_from_now_are_skipped() -> None:
    wire = entry([[900, 1, 1], [995, 2, 2], [1001, 3, 3], [1003, 4, 4], [10**9, 5, 5]])
    assert decode(wire, 0, now=1000.0, window=60.0) == {KEY: [(995, 2.0, 2.0), (1001, 3.0, 3.0)]}


@pytest.mark.parametrize("payload", ["", "null", "[1, 2]", "{", json.dumps({"bogus": [[1, 1, 1]]}), json.dumps({NAME: 5})])
def test_a_malformed_entry_gives_nothing(payload: str) -> None:
    assert all(not seconds for seconds in decode(payload, 0).values())


def test_a_future_second_would_have_voided_the_window() -> None:
    stats = RevisionStats(60, 6)
    stats.observe(1000.0, ready=1)
    batch = decode(entry([[5000, 9, 9], [1000, 3, 3]]), 0, now=1000.5, window=60.0)
    ingest(batch, {KEY: stats})
    stats.request_in(1000.5)
    # buckets 1000 (the other instance's 3) and 1001 (this one's half second with 1 in flight): (3 + 0.5) / 2
    assert stats.concurrency(1001.5) == (1.75, 1.75)


class Clocks:
    """One machine: a monotonic clock starting at `mono` and a wall clock `skew` seconds off the true time."""

    def __init__(self, mono: float, skew: float) -> None:
        self.true = 1_700_000_000.25  # the true time, which Redis's clock shows
        self.mono0 = mono
        self.skew = skew

    def clock(self) -> float:
        return self.mono0 + (self.true - 1_700_000_000.25)

    def wall(self) -> float:
        return self.true + self.skew


@pytest.mark.parametrize("skew", [30.0, -30.0, -4.0, 0.6, 3600.0])
def test_a_skewed_wall_clock_still_adds_into_the_same_seconds(skew: float, caplog: pytest.LogCaptureFixture) -> None:
    sender, receiver = Clocks(mono=500.0, skew=skew), Clocks(mono=8000.0, skew=0.0)
    theirs, ours = ServerClock(sender.clock, sender.wall), ServerClock(receiver.clock, receiver.wall)
    for machine, server_clock, rtt in ((sender, theirs, 0.004), (receiver, ours, 0.002)):
        sent = machine.clock()
        server_clock.sample(sent, sent + rtt, machine.true + rtt / 2)  # Redis read its clock halfway
    # the sender's second 510 ended 10 s after the start, and so did the receiver's second 8010
    wire = encode({KEY: [(510, 2.5, 7.0), (511, 1.0, 1.0)]}, theirs.offset)
    assert decode(wire, ours.offset, now=8009.5, window=60.0) == {KEY: [(8010, 2.5, 7.0), (8011, 1.0, 1.0)]}
    warned = [r.getMessage() for r in caplog.records if "wall clock" in r.getMessage()]
    assert len(warned) == (1 if abs(skew) > 1 else 0)
    if warned:
        assert f"{skew:+.1f} s off" in warned[0]


def test_the_offset_keeps_the_shortest_round_trip_and_stays_put_while_it_wanders_little() -> None:
    machine = Clocks(mono=100.0, skew=0.0)
    server_clock = ServerClock(machine.clock, machine.wall)
    server_clock.sample(100.0, 100.002, machine.true + 0.001)
    assert server_clock.offset == pytest.approx(machine.true - 100.0)
    first = server_clock.offset
    server_clock.sample(101.0, 101.8, machine.true + 1.0 + 0.7)  # a slow round trip answered late: not taken
    assert server_clock.offset == first
    server_clock.sample(102.0, 102.001, machine.true + 2.0 + 0.02)  # as short, 20 ms apart: kept still
    assert server_clock.offset == first
    server_clock.sample(103.0, 103.001, machine.true + 3.0 + 0.2)  # as short, 200 ms apart: moved
    assert server_clock.offset == pytest.approx(machine.true + 0.2 - 100.0, abs=0.001)


def test_a_late_second_from_a_live_instance_replaces_the_one_that_stood_in_for_it() -> None:
    stats = RevisionStats(20, 2)
    stats.observe(1000.0, ready=1)
    live = {"b"}
    ingest({KEY: [(1000, 4.0, 2.0)]}, {KEY: stats}, "b", live)
    stats.observe(1001.5)
    assert stats.concurrency(1001.5) == (4.0, 4.0)  # 1001 not in yet: its 1000 stands in
    ingest({KEY: [(1001, 2.0, 1.0)]}, {KEY: stats}, "b", live)
    assert stats.concurrency(1001.5) == (3.0, 3.0)
    assert stats.rps(1001.5) == (1.5, 1.5)
