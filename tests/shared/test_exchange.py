"""Stats seconds on the wire: what goes out, what comes in, and what is refused from a hostile or broken peer."""

from __future__ import annotations

import json

import pytest

from gateway.autoscale.stats import RevisionStats
from gateway.shared.exchange import decode, encode, ingest
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
