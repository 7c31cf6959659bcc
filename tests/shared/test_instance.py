"""How one instance moves to a new share when the membership renumbers (no Redis needed: no round trip is made)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.autoscale.scaler import Autoscaler
from gateway.backends import BackendContext
from gateway.revision_backends import RevisionBackends
from gateway.router.shares import plane_capacity
from gateway.shared.instance import NOTHING, SharedState
from gateway.types import Endpoint
from tests.conftest import wait_until

Share = tuple[int, int, tuple[tuple[int, int], ...]]


async def test_a_renumbered_instance_holds_the_least_of_old_and_new_until_everyone_has_seen_it(tmp_path: Path) -> None:
    backends = RevisionBackends(BackendContext(tmp_path), {})
    given: list[Share] = []
    shared = SharedState(
        "redis://127.0.0.1:1",
        autoscaler=Autoscaler(backends),
        backends=backends,
        set_share=lambda index, count, also: given.append((index, count, also)),
        lease_ttl=0.3,
        interval=0.1,
    )
    on_share = shared.coordinator.hooks.on_share
    on_share(0, 1)  # alone: the first share is the share
    assert given == [(0, 1, ())]
    on_share(1, 2)  # another joined before it in the order: both in force for a while, then the new alone
    assert given[-1] == (1, 2, ((0, 1),))
    await wait_until(lambda: given[-1] == (1, 2, ()), "the old share dropped once settled", within=2)
    on_share(1, 3)
    on_share(2, 3)  # a second change while the first settles: every share since is kept
    expected: Share = (2, 3, ((1, 2), (1, 3)))
    assert given[-1] == expected
    await wait_until(lambda: given[-1] == (2, 3, ()), "settled", within=2)
    await asyncio.sleep(0)
    await shared.close()


def shared_state(tmp_path: Path, given: list[Share], *, lease_ttl: float, interval: float) -> SharedState:
    backends = RevisionBackends(BackendContext(tmp_path), {})
    return SharedState(
        "redis://127.0.0.1:1",
        autoscaler=Autoscaler(backends),
        backends=backends,
        set_share=lambda index, count, also: given.append((index, count, also)),
        lease_ttl=lease_ttl,
        interval=interval,
    )


async def test_an_instance_that_left_keeps_its_slots_until_it_holds_nothing_by_its_own_clock(tmp_path: Path) -> None:
    """The survivor's side: the other's entry expired (it did not run for a member TTL, so by its own clock it
    holds nothing now, or will at its next look); its slots stay out of use for a member TTL and two beats more."""
    given: list[Share] = []
    shared = shared_state(tmp_path, given, lease_ttl=0.5, interval=0.2)
    loop = asyncio.get_running_loop()
    shared.coordinator.hooks.on_share(1, 2)
    await wait_until(lambda: given[-1] == (1, 2, ()), "settled with two")
    left = loop.time()
    shared.coordinator.hooks.on_share(0, 1)  # the other dropped out
    assert given[-1] == (0, 1, ((1, 2),))  # still at most the old share
    await wait_until(lambda: given[-1] == (0, 1, ()), "the whole replica, at last", within=3)
    assert loop.time() - left >= 0.5 + 2 * 0.2
    await shared.close()


async def test_a_held_instance_owns_no_slot_of_any_replica_until_released(tmp_path: Path) -> None:
    given: list[Share] = []
    shared = shared_state(tmp_path, given, lease_ttl=0.5, interval=0.1)
    hold = shared.coordinator.hooks.on_hold
    assert hold is not None
    hold(True)  # alone from the start (its share never announced): still nothing
    held: Share = (0, 1, NOTHING)
    assert given[-1] == held
    hold(False)
    released: Share = (0, 1, ())
    assert given[-1] == released
    shared.coordinator.hooks.on_share(1, 2)
    hold(True)
    assert given[-1] == (1, 2, NOTHING)
    await shared.close()


def test_nothing_is_no_slot_of_any_replica_for_any_plane_a_hub_deals() -> None:
    endpoints = [Endpoint(f"10.0.{i // 250}.{i % 250}", 8000 + i) for i in range(300)]
    for cc in (1, 2, 3, 7, 64, 999, 1000):
        for worker in (0, 1, 5, 255):  # a hub gives its worker i the pairs (first + i, count)
            for endpoint in endpoints:
                least = min(plane_capacity(endpoint, cc, first + worker, count) for first, count in NOTHING)
                assert least == 0, (cc, worker, endpoint)
