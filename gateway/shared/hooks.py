"""What the coordinator tells the rest of the gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.autoscale.stats import RevisionStats
from gateway.types import RevisionKey


@dataclass(frozen=True)
class Hooks:
    """What the coordinator tells the rest of the gateway."""

    stats_of: Callable[[RevisionKey], RevisionStats | None]  # the deciders' stats, to add other instances' seconds
    on_lead: Callable[[], None]  # this instance now holds the lease: take over actuation
    on_follow: Callable[[], None]  # it lost the lease (another instance holds it)
    on_share: Callable[[int, int], None]  # (first plane index, all planes): this instance's share of each replica
    on_poke: Callable[[RevisionKey], None]  # (leader) a revision at zero got a request on another instance
    on_message: Callable[[str, str], Awaitable[None]] | None = None  # other channels subscribed (see ``channels``)
    on_subscribed: Callable[[], Awaitable[None]] | None = None  # (re)subscribed: what a message may have missed
    on_hold: Callable[[bool], None] | None = None  # True: hold no slots (may have been dropped); False: seen back
