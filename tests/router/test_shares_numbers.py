"""Replicas numbered by the actuator (gateway/slots.py): replica n starts at slot n * cc, so replicas 0 .. m-1 hold
consecutive slots and every plane is served once m >= ceil(count / cc), whatever the replicas' addresses."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest

from gateway import slots
from gateway.router.shares import plane_capacity
from gateway.router.throttler import Throttler
from gateway.types import Endpoint

# Two addresses whose CRC-32 puts slot 0 on the same plane of two: unnumbered, with cc 1, plane 1 gets nothing.
A = Endpoint("10.0.0.1", 8080)
D = Endpoint("model-a-7f9c.default.svc", 80)


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    yield
    for endpoint in (A, D, *[Endpoint("10.1.0.1", 8000 + n) for n in range(20)]):
        slots.forget(endpoint)


def test_two_addresses_that_crc_puts_on_one_plane_serve_both_once_numbered() -> None:
    assert zlib.crc32(b"10.0.0.1:8080") % 2 == zlib.crc32(b"model-a-7f9c.default.svc:80") % 2 == 0
    assert [plane_capacity(e, 1, plane, 2) for e in (A, D) for plane in (0, 1)] == [1, 0, 1, 0]  # plane 1 starves
    slots.learn(A, 0)
    slots.learn(D, 1)
    assert [plane_capacity(e, 1, plane, 2) for e in (A, D) for plane in (0, 1)] == [1, 0, 0, 1]
    assert slots.number_of(A) == 0 and slots.number_of(Endpoint("10.9.9.9", 1)) is None


@pytest.mark.parametrize("count", range(1, 9))
@pytest.mark.parametrize("cc", range(1, 9))
def test_numbers_0_to_m_minus_1_serve_every_plane_and_divide_each_replica_exactly(count: int, cc: int) -> None:
    need = -(-count // cc)
    replicas = [Endpoint("10.1.0.1", 8000 + n) for n in range(need + 2)]
    for number, endpoint in enumerate(replicas):
        slots.learn(endpoint, number)
    for m in range(1, len(replicas) + 1):
        capacity = [[plane_capacity(e, cc, plane, count) for plane in range(count)] for e in replicas[:m]]
        assert all(sum(row) == cc for row in capacity)  # never more than cc on a replica, across all planes
        served = [sum(row[plane] for row in capacity) for plane in range(count)]
        if m >= need:
            assert min(served) >= 1, (m, served)
        assert max(served) - min(served) <= 1  # consecutive slots: the planes' totals differ by one at most


def test_a_number_is_independent_of_the_count_of_planes() -> None:
    """Planes join and leave: numbers 0 and 1 with cc 1 serve planes 0 and 1 of 2, and with cc 2 all planes of 3 and 4."""
    slots.learn(A, 0)
    slots.learn(D, 1)
    assert {p for e in (A, D) for p in range(2) if plane_capacity(e, 1, p, 2)} == {0, 1}
    for count in (3, 4):
        assert {p for e in (A, D) for p in range(count) if plane_capacity(e, 2, p, count)} == set(range(count))


@pytest.mark.parametrize("value", [None, "", "-1", "x", "1.5", " 1", "1e3", "1000000", "99999999", "0x1", 5, ["1"]])
def test_an_annotation_that_is_not_a_number_in_range_is_no_number(value: object) -> None:
    assert slots.parse_slot(value) is None


def test_numbers_in_range_parse() -> None:
    assert [slots.parse_slot(v) for v in ("0", "7", "999999")] == [0, 7, 999999]


def test_the_lowest_free_number_fills_holes_first() -> None:
    assert slots.lowest_free(set()) == 0
    assert slots.lowest_free({0, 1, 2}) == 3
    assert slots.lowest_free({1, 3}) == 0
    assert slots.lowest_free({0, 2}) == 1


def test_two_planes_throttlers_never_share_a_numbered_replica() -> None:
    slots.learn(A, 0)
    slots.learn(D, 1)
    planes = [Throttler(1, 10), Throttler(1, 10)]
    for index, throttler in enumerate(planes):
        throttler.set_share(index, 2)
        throttler.update_endpoints(frozenset({A, D}))
    got = [throttler.try_acquire() for throttler in planes]
    assert [t.endpoint if t else None for t in got] == [A, D]
    assert [throttler.try_acquire() for throttler in planes] == [None, None]  # each replica at its one slot


def test_a_replica_back_under_another_number_is_divided_by_the_new_one() -> None:
    """A pod renumbered leaves the ready set and comes back (kube_pods.py); its requests still in flight count,
    and its capacity follows the new number."""
    slots.learn(A, 0)
    throttler = Throttler(1, 10)
    throttler.set_share(0, 2)
    throttler.update_endpoints(frozenset({A}))
    held = throttler.try_acquire()
    assert held is not None and held.capacity == 1
    throttler.update_endpoints(frozenset())  # out, its request still running
    slots.learn(A, 1)  # now plane 1's slot
    throttler.update_endpoints(frozenset({A}))
    assert throttler.trackers[A].capacity == 0 and throttler.trackers[A].in_flight == 1
    throttler.release(held)
    assert throttler.try_acquire() is None
