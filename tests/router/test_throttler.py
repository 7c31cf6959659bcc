from __future__ import annotations

import asyncio
import collections
import random

import pytest

from gateway.router.revision import RevisionRuntime, RevisionSettings
from gateway.router.throttler import QueueFull, Throttler, Tracker
from gateway.types import Endpoint, RevisionKey

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


# -- several data planes sharing the replicas (set_share) ----------------------------------------


def _fill(t: Throttler) -> list[Tracker]:
    held = []
    while (tracker := t.try_acquire()) is not None:
        held.append(tracker)
    return held


@pytest.mark.parametrize("cc", [2, 8])  # first-available and round-robin
def test_lowering_the_share_below_in_flight_admits_nothing_until_it_drains_below(cc: int) -> None:
    t = Throttler(cc, 10)
    t.update_endpoints(frozenset(E[:1]))
    held = _fill(t)
    assert len(held) == cc
    t.set_share(0, 2)  # cc is even: this plane now owns cc/2 slots, with cc in flight
    assert t.trackers[E[0]].capacity == cc // 2
    for _ in range(cc // 2):
        t.release(held.pop())
        assert t.try_acquire() is None
    t.release(held.pop())  # in flight cc/2 - 1: one slot free again
    again = t.try_acquire()
    assert again is not None and again.endpoint == E[0]
    assert t.try_acquire() is None
    assert t.trackers[E[0]].in_flight == cc // 2


@pytest.mark.parametrize("cc", [3, 8])
async def test_raising_the_share_serves_waiters_in_order(cc: int) -> None:
    t = Throttler(cc, 10)
    t.set_share(0, cc)  # one slot on the replica
    t.update_endpoints(frozenset(E[:1]))
    assert len(_fill(t)) == 1
    served: list[int] = []
    waiters = [t.wait() for _ in range(cc + 1)]
    for w in waiters:
        w.add_done_callback(lambda fut: served.append(waiters.index(fut)))
    assert not any(w.done() for w in waiters)
    t.set_share(0, 1)  # the whole replica: cc - 1 more slots
    await asyncio.sleep(0)
    assert served == list(range(cc - 1))
    assert t.trackers[E[0]].in_flight == cc
    t.release(waiters[0].result())
    await asyncio.sleep(0)
    assert served == list(range(cc))
    assert not waiters[cc].done()


async def test_a_replica_this_plane_has_no_share_of_is_never_used() -> None:
    # cc=1 over 2 planes: 127.0.0.1:9000 (its CRC-32 is odd) is plane 1's, 127.0.0.1:9004 (even) plane 0's.
    mine, theirs = E[4], E[0]
    t = Throttler(1, 10)
    t.set_share(0, 2)
    t.update_endpoints(frozenset({theirs}))
    assert t.trackers[theirs].capacity == 0
    assert t.try_acquire() is None
    w = t.wait()
    t.mark_down(theirs)
    assert t.take_down() is None  # nor on the degraded path
    t.mark_up(theirs)
    assert not w.done()
    t.update_endpoints(frozenset({theirs, mine}))
    assert w.done() and w.result().endpoint == mine
    assert t.trackers[theirs].in_flight == 0


def test_unlimited_concurrency_ignores_the_share() -> None:
    t = Throttler(0, 10)
    t.set_share(2, 3)
    t.update_endpoints(frozenset(E[:2]))
    assert len([t.try_acquire() for _ in range(50)]) == 50
    assert sum(tr.in_flight for tr in t.trackers.values()) == 50


def test_a_new_concurrency_is_divided_by_the_current_share() -> None:
    t = Throttler(4, 10)
    t.set_share(0, 2)
    t.update_endpoints(frozenset(E))
    assert [t.trackers[e].capacity for e in E] == [2, 2, 2, 2, 2]
    t.set_concurrency(1)
    assert [t.trackers[e].capacity for e in E] == [0, 0, 0, 0, 1]  # only 127.0.0.1:9004's CRC-32 is even
    assert [tr.endpoint for tr in _fill(t)] == [E[4]]


def test_a_share_outside_the_deployment_is_refused_and_changes_nothing() -> None:
    t = Throttler(4, 10)
    t.set_share(1, 2)
    with pytest.raises(ValueError, match="data plane index 2 is outside 0..1"):
        t.set_share(2, 2)
    with pytest.raises(ValueError, match="the number of data planes must be at least 1, not 0"):
        t.set_share(0, 0)
    assert (t.plane, t.planes) == (1, 2)


def test_a_replica_back_while_its_requests_run_counts_them() -> None:
    t = Throttler(2, 10)
    t.update_endpoints(frozenset(E[:1]))
    held = _fill(t)
    t.mark_down(E[0])
    t.update_endpoints(frozenset())
    t.update_endpoints(frozenset(E[:1]))  # the same address again, its two requests still running
    assert t.trackers[E[0]].in_flight == 2 and not t.trackers[E[0]].down
    assert t.try_acquire() is None
    t.release(held[0])
    assert t.try_acquire() is not None
    assert t.try_acquire() is None


def test_the_runtime_passes_the_share_to_its_throttler() -> None:
    key = RevisionKey("default", "m", "default")
    runtime = RevisionRuntime(key, RevisionSettings(2, 10, True, 300.0, 120.0))
    runtime.set_endpoints(frozenset(E[:4]))
    runtime.set_share(1, 2)
    assert all(tr.capacity == 1 for tr in runtime.throttler.trackers.values())
    with pytest.raises(ValueError, match="outside"):
        runtime.set_share(-1, 2)


class Deployment:
    """count data planes, one Throttler each, over the same replicas, driven by random steps.

    Each plane learns of an endpoint change at its own moment; `held` is what the replicas really
    serve, whatever the planes think.
    """

    def __init__(self, rng: random.Random, cc: int, count: int) -> None:
        self.rng, self.cc = rng, cc
        self.pool = [Endpoint(f"10.0.0.{i}", 8000 + i) for i in range(6)]
        self.desired = set(rng.sample(self.pool, 3))
        self.planes = [Throttler(cc, 10_000) for _ in range(count)]
        for index, plane in enumerate(self.planes):
            plane.set_share(index, count)
            plane.update_endpoints(frozenset(self.desired))
        self.held: list[tuple[Throttler, Tracker]] = []
        self.waiting: list[tuple[Throttler, asyncio.Future[Tracker]]] = []

    def step(self) -> None:
        rng, plane = self.rng, self.rng.choice(self.planes)
        op = rng.random()
        if op < 0.35:
            self.acquire(plane)
        elif op < 0.65 and self.held:
            owner, tracker = self.held.pop(rng.randrange(len(self.held)))
            owner.release(tracker)
        elif op < 0.75:
            self.desired ^= {rng.choice(self.pool)}
        elif op < 0.85:
            plane.update_endpoints(frozenset(self.desired))
        elif op < 0.9:
            (plane.mark_down if rng.random() < 0.5 else plane.mark_up)(rng.choice(self.pool))
        elif op < 0.93:
            if (got := plane.take_down()) is not None:
                self.held.append((plane, got))
        elif self.waiting:
            self.waiting.pop(rng.randrange(len(self.waiting)))[1].cancel()
        self.collect()

    def acquire(self, plane: Throttler) -> None:
        got = plane.try_acquire()
        if got is not None:
            self.held.append((plane, got))
        elif self.rng.random() < 0.5:
            self.waiting.append((plane, plane.wait()))

    def collect(self) -> None:
        for entry in [w for w in self.waiting if w[1].done()]:
            self.waiting.remove(entry)
            if not entry[1].cancelled():
                self.held.append((entry[0], entry[1].result()))

    def busiest(self) -> int:
        totals = collections.Counter(tracker.endpoint for _, tracker in self.held)
        return max(totals.values(), default=0)

    def settle(self) -> collections.Counter[Endpoint]:
        """Nothing waiting or in flight, every plane on the same set, nothing down: what the planes admit together."""
        for _, fut in self.waiting:
            fut.cancel()
        for owner, tracker in self.held:
            owner.release(tracker)
        for plane in self.planes:
            plane.update_endpoints(frozenset(self.desired))
            for endpoint in self.desired:
                plane.mark_up(endpoint)
        return collections.Counter(tracker.endpoint for plane in self.planes for tracker in _fill(plane))


@pytest.mark.parametrize(
    ("cc", "count"), [(1, 2), (2, 2), (3, 2), (8, 2), (1, 3), (2, 3), (5, 3), (3, 4), (4, 4), (9, 4), (4, 1), (1, 6)]
)
async def test_no_replica_gets_more_than_its_concurrency_from_all_planes_together(cc: int, count: int) -> None:
    rng = random.Random(cc * 100 + count)
    deployment = Deployment(rng, cc, count)
    peak = 0
    for _ in range(3000):
        deployment.step()
        busiest = deployment.busiest()
        assert busiest <= cc, (cc, count)
        peak = max(peak, busiest)
    assert peak == cc  # the limit was reached, so it was tested
    # Settled, the planes together fill each replica exactly: the safe rounding wastes no slot.
    assert deployment.settle() == {endpoint: cc for endpoint in deployment.desired}


def test_while_the_planes_renumber_a_replica_gives_the_least_of_every_share_in_force() -> None:
    t = Throttler(3, 10)
    t.update_endpoints(frozenset(E))
    t.set_share(0, 1)
    assert [t.trackers[e].capacity for e in E] == [3] * 5
    t.set_share(1, 2, also=((0, 1),))  # another instance joined first in the order
    halves = [t.trackers[e].capacity for e in E]
    assert set(halves) <= {1, 2} and halves == [min(3, c) for c in halves]
    t.set_share(1, 3, also=((0, 1), (1, 2)))
    thirds = [t.trackers[e].capacity for e in E]
    assert thirds == [1] * 5 and all(c <= h for c, h in zip(thirds, halves, strict=True))
    t.set_share(1, 3)  # settled
    assert [t.trackers[e].capacity for e in E] == [1] * 5
    with pytest.raises(ValueError, match="data plane index 4 is outside 0..2"):
        t.set_share(1, 3, also=((4, 3),))
    assert t.also == ()


def test_a_plane_with_no_part_of_any_replica_is_starved_and_the_timeout_says_why() -> None:
    from gateway.router.timeouts import starved_message

    t = Throttler(1, 10)
    t.set_share(0, 2)
    t.update_endpoints(frozenset(E[:4]))  # containerConcurrency 1: each replica's one slot is plane 0's or plane 1's
    assert [t.trackers[e].capacity for e in E[:4]] == [0, 0, 0, 0] and t.starved()
    assert t.try_acquire() is None
    assert starved_message(t).startswith("timed out waiting for a replica: this data plane has no part of any of the 4")
    assert "containerConcurrency 1 is divided among 2 data planes" in starved_message(t)
    t.update_endpoints(frozenset(E))  # 127.0.0.1:9004 is plane 0's
    assert not t.starved() and t.try_acquire() is not None
    assert not Throttler(0, 10).starved() and not Throttler(1, 10).starved()  # unlimited; no replica at all
