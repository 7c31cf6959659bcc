"""A replica's number (gateway/slots.py) travels with its endpoint from the supervisor to the workers, and is known
in the worker before its throttlers see the endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import slots
from gateway.autoscale.stats import RevisionStats
from gateway.router.shares import plane_capacity
from gateway.types import Endpoint, RevisionKey
from gateway.workers.feed import EndpointFeed, endpoints_in, endpoints_out
from tests.workers.test_hub import hub_with, link

A = Endpoint("10.0.0.1", 8080)
D = Endpoint("model-a-7f9c.default.svc", 80)  # CRC-32 puts both on plane 0 of 2
KEY = RevisionKey("default", "iris", "default")


@pytest.fixture(autouse=True)
def forget_numbers() -> Iterator[None]:
    yield
    for endpoint in (A, D):
        slots.forget(endpoint)


def test_numbers_go_out_with_the_endpoints_and_are_learned_coming_in() -> None:
    slots.learn(A, 1)
    out = endpoints_out(sorted({A, D}))
    assert out == [["10.0.0.1", 8080, 1], ["model-a-7f9c.default.svc", 80]]
    slots.forget(A)  # the worker's process: nothing known yet
    slots.learn(D, 5)  # a number left from before: the supervisor says it has none now
    assert endpoints_in(out) == {A, D}
    assert slots.number_of(A) == 1 and slots.number_of(D) is None
    assert plane_capacity(A, 1, 1, 2) == 1 and plane_capacity(A, 1, 0, 2) == 0


@pytest.mark.parametrize(
    ("item", "error"),
    [
        (["10.0.0.1"], "an endpoint is [host, port] or [host, port, number]"),
        (["10.0.0.1", 8080, 1, 2], "an endpoint is [host, port] or [host, port, number]"),
        ("10.0.0.1:8080", "an endpoint is [host, port] or [host, port, number]"),
        (["10.0.0.1", 8080, -1], "a replica's number is an integer in 0..999999"),
        (["10.0.0.1", 8080, "1"], "a replica's number is an integer in 0..999999"),
        (["10.0.0.1", 8080, True], "a replica's number is an integer in 0..999999"),
        (["10.0.0.1", 8080, 1_000_000], "a replica's number is an integer in 0..999999"),
    ],
)
def test_a_malformed_endpoint_is_refused_with_what_it_should_be(item: object, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("]", r"\]")):
        endpoints_in([item])


def test_an_endpoint_leaving_the_feed_takes_its_number_with_it() -> None:
    feed = EndpointFeed()
    feed.set(KEY, endpoints_in([["10.0.0.1", 8080, 0], ["model-a-7f9c.default.svc", 80, 1]]))
    assert slots.number_of(D) == 1
    feed.set(KEY, endpoints_in([["10.0.0.1", 8080, 0]]))
    assert slots.number_of(D) is None and slots.number_of(A) == 0


def test_the_supervisor_sends_each_endpoint_with_its_number(tmp_path: Path) -> None:
    hub, _ = hub_with(RevisionStats(60, 6), tmp_path)
    _, out = link(hub, 0)
    slots.learn(A, 1)
    hub.publish(KEY, frozenset({A, D}))
    (sent,) = [json.loads(data[4:]) for data in out.sent]
    assert sent["t"] == "endpoints"
    ((key, endpoints),) = sent["items"]
    assert sorted(endpoints, key=str) == [["10.0.0.1", 8080, 1], ["model-a-7f9c.default.svc", 80]]
    slots.forget(A)  # the worker's process
    assert endpoints_in(endpoints) == {A, D} and slots.number_of(A) == 1
