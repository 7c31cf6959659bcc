"""One gateway instance joined to the others: the coordinator wired to its autoscaler, runtimes and backends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.stats import RevisionStats
from gateway.backends import Backend
from gateway.config.model import BackendKind
from gateway.revision_backends import RevisionBackends
from gateway.shared.coordinator import Coordinator
from gateway.shared.exchange import StatsOutbox
from gateway.shared.hooks import Hooks
from gateway.shared.keys import Keys
from gateway.shared.mirror import MirroredBackend
from gateway.types import RevisionKey

log = logging.getLogger(__name__)

# No slot of any replica: every replica's capacity is the least over the shares in force, and of these two
# planes of 2000 (and of planes i and 1000 + i, as a hub deals them to its workers) one owns no slot of a
# replica with containerConcurrency up to 1000 (the most a manifest may give): their slot numbers are 1000 apart.
NOTHING = ((0, 2000), (1000, 2000))


@runtime_checkable
class Fenced(Protocol):
    """A backend that asks, before each write, whether this instance still holds the lease."""

    def set_fence(self, fence: Callable[[], bool]) -> None: ...


class SharedState:
    """Several gateway instances, one autoscaler (DESIGN.md; issue 11): built when ``spec.redis`` is set."""

    def __init__(
        self,
        url: str,
        *,
        autoscaler: Autoscaler,
        backends: RevisionBackends,
        set_share: Callable[[int, int, tuple[tuple[int, int], ...]], None],
        planes: int = 1,
        keys: Keys | None = None,
        interval: float = 1.0,
        lease_ttl: float = 5.0,
    ) -> None:
        self.keys = keys or Keys()
        self.outbox = StatsOutbox()
        self._autoscaler = autoscaler
        self._backends = backends
        self._set_share = set_share
        self._share: tuple[int, int] | None = None
        self._held = False  # may have been dropped from the membership (paused): nothing until seen back
        self._recent: dict[tuple[int, int], float] = {}  # earlier shares -> when they stopped being this one's
        self._refresh: asyncio.TimerHandle | None = None
        self.mirrors: list[MirroredBackend] = []
        hooks = Hooks(
            stats_of=self._stats_of,
            on_lead=self._lead,
            on_follow=self._follow,
            on_share=self._share_changed,
            on_poke=autoscaler.poke,
            on_message=self._message,
            on_subscribed=self._resync,
            on_hold=self._hold,
        )
        self.coordinator = Coordinator(
            url,
            hooks,
            self.outbox,
            planes=planes,
            keys=self.keys,
            channels=(self.keys.endpoints,),
            interval=interval,
            member_ttl=lease_ttl,
            lease_ttl=lease_ttl,
        )
        autoscaler.sink = self.outbox
        autoscaler.actuator = self.coordinator
        autoscaler.relay = self.coordinator.relay
        backends.wrap = self._wrap
        backends.actuating = False  # until the lease says otherwise

    @property
    def _settle(self) -> float:
        """How long an earlier share stays in force: every live instance has seen a renumbering by then, and an
        instance that left (its entry expired) holds nothing by its own clock: it did not run for a member TTL."""
        return self.coordinator.member_ttl + 2 * self.coordinator.interval

    def _hold(self, held: bool) -> None:
        self._held = held
        self._apply_share()

    def _share_changed(self, offset: int, count: int) -> None:
        """The membership renumbered this instance's data planes. The others see it at their own next beat:
        until all have (`settle` seconds), every share in force since is kept too, and each replica's
        capacity is the least of them, so planes that switch at different moments never overlap."""
        now = asyncio.get_running_loop().time()
        if self._share is not None and self._share != (offset, count):
            self._recent[self._share] = now
        self._share = (offset, count)
        self._recent.pop(self._share, None)
        self._apply_share()

    def _apply_share(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._recent = {share: since for share, since in self._recent.items() if now - since < self._settle}
        share = self._share or self.coordinator.share  # alone from the start: (0, 1), never announced
        self._set_share(*share, tuple(sorted(self._recent)) + (NOTHING if self._held else ()))
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        if self._recent:
            self._refresh = loop.call_later(min(self._recent.values()) + self._settle - now, self._apply_share)

    def _stats_of(self, key: RevisionKey) -> RevisionStats | None:
        return self._autoscaler.stats(key) if key in self._autoscaler else None

    def _wrap(self, kind: BackendKind, backend: Backend) -> Backend:
        if isinstance(backend, Fenced):
            backend.set_fence(self.coordinator.holds)
        if kind != "local":
            return backend  # kubernetes: every instance watches the pods itself; static: fixed endpoints
        coordinator = self.coordinator
        mirror = MirroredBackend(backend, coordinator.redis, self.keys, lambda: coordinator.epoch, lambda: coordinator.seen_epoch)
        self.mirrors.append(mirror)
        return mirror

    def _lead(self) -> None:
        self._backends.set_actuating(True)
        self._autoscaler.take_over()

    def _follow(self) -> None:
        self._backends.set_actuating(False)

    async def _message(self, channel: str, data: str) -> None:
        for mirror in self.mirrors:
            await mirror.on_message(channel, data)

    async def _resync(self) -> None:
        for mirror in self.mirrors:
            await mirror.resync()

    async def start(self) -> None:
        await self.coordinator.start()
        await self._resync()

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        await self.coordinator.close()

    @property
    def joined(self) -> bool:
        """The other instances have seen this one (its share of each replica is known); once, for good."""
        return self.coordinator.joined.is_set()

    def joining(self) -> str:
        return f"joining the gateways sharing {self.coordinator.describe()['redis']}" + (
            f" ({self.coordinator.error})" if self.coordinator.error else ""
        )

    def health(self) -> str | None:
        return self.coordinator.health()

    def describe(self) -> dict[str, object]:
        return self.coordinator.describe()
