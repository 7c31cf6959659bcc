"""How one instance moves to a new share when the membership renumbers (no Redis needed: no round trip is made)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.autoscale.scaler import Autoscaler
from gateway.backends import BackendContext
from gateway.revision_backends import RevisionBackends
from gateway.shared.instance import SharedState
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
