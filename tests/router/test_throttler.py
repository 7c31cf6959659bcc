from __future__ import annotations

import asyncio

import pytest

from gateway.router.throttler import QueueFull, Throttler
from gateway.types import Endpoint

E = [Endpoint("127.0.0.1", 9000 + i) for i in range(5)]


def test_no_endpoints_no_slot() -> None:
    t = Throttler(0, 10)
    assert t.try_acquire() is None


def test_unlimited_uses_power_of_two_choices_and_balances() -> None:
    t = Throttler(0, 10)
    t.update_endpoints(frozenset(E[:3]))
    held = [t.try_acquire() for _ in range(300)]
    loads = sorted(tr.in_flight for tr in t.trackers.values())
    assert sum(loads) == 300
    assert loads[-1] - loads[0] <= 10  # two choices keep the spread small
    for tr in held:
        assert tr is not None
        t.release(tr)
    assert all(tr.in_flight == 0 for tr in t.trackers.values())


def test_first_available_when_cc_small() -> None:
    t = Throttler(2, 10)
    t.update_endpoints(frozenset(E[:3]))
    got = [t.try_acquire() for _ in range(6)]
    assert [g.endpoint for g in got if g] == [E[0], E[0], E[1], E[1], E[2], E[2]]
    assert t.try_acquire() is None
    assert got[3] is not None
    t.release(got[3])
    again = t.try_acquire()
    assert again is not None and again.endpoint == E[1]


def test_round_robin_when_cc_large() -> None:
    t = Throttler(10, 10)
    t.update_endpoints(frozenset(E[:3]))
    got = [t.try_acquire() for _ in range(6)]
    assert [g.endpoint for g in got if g] == [E[0], E[1], E[2], E[0], E[1], E[2]]


def test_breaker_never_exceeds_container_concurrency() -> None:
    t = Throttler(4, 100)
    t.update_endpoints(frozenset(E[:2]))
    held = [t.try_acquire() for _ in range(8)]
    assert all(h is not None for h in held)
    assert t.try_acquire() is None
    assert max(tr.in_flight for tr in t.trackers.values()) == 4


async def test_waiters_are_served_fifo_when_capacity_appears() -> None:
    t = Throttler(1, 10)
    waiters = [t.wait() for _ in range(3)]
    assert t.queued == 3
    t.update_endpoints(frozenset(E[:2]))
    assert waiters[0].done() and waiters[1].done() and not waiters[2].done()
    assert {waiters[0].result().endpoint, waiters[1].result().endpoint} == {E[0], E[1]}
    t.release(waiters[0].result())
    assert waiters[2].done() and waiters[2].result().endpoint == waiters[0].result().endpoint
    await asyncio.sleep(0)
    assert t.queued == 0


async def test_try_acquire_does_not_overtake_waiters() -> None:
    t = Throttler(1, 10)
    t.update_endpoints(frozenset(E[:1]))
    first = t.try_acquire()
    assert first is not None
    w = t.wait()
    assert t.try_acquire() is None
    t.release(first)
    assert w.done()


async def test_queue_depth_is_enforced_and_cancel_frees_a_place() -> None:
    t = Throttler(1, 2)
    a, b = t.wait(), t.wait()
    with pytest.raises(QueueFull):
        t.wait()
    a.cancel()
    await asyncio.sleep(0)
    c = t.wait()
    t.update_endpoints(frozenset(E[:1]))
    assert b.done() and not c.done()
    assert t.trackers[E[0]].in_flight == 1


def test_down_endpoint_is_skipped_until_up() -> None:
    t = Throttler(0, 10)
    t.update_endpoints(frozenset(E[:2]))
    t.mark_down(E[0])
    assert t.reachable == 1
    assert {t.try_acquire().endpoint for _ in range(20)} == {E[1]}  # type: ignore[union-attr]
    t.mark_up(E[0])
    assert t.reachable == 2


def test_removed_endpoint_releases_safely() -> None:
    t = Throttler(5, 10)
    t.update_endpoints(frozenset(E[:2]))
    held = t.try_acquire()
    assert held is not None
    t.update_endpoints(frozenset({E[1]}))
    t.release(held)
    assert all(t.try_acquire().endpoint == E[1] for _ in range(5))  # type: ignore[union-attr]
    assert t.try_acquire() is None


def test_unlimited_rotates_when_idle() -> None:
    t = Throttler(0, 10)
    t.update_endpoints(frozenset(E[:3]))
    seen = []
    for _ in range(9):
        tr = t.try_acquire()
        assert tr is not None
        seen.append(tr.endpoint)
        t.release(tr)
    assert all(seen.count(e) == 3 for e in E[:3])
