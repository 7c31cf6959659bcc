"""The control loop: decider output -> bounds, initial scale, scale to zero -> backend (KPA.md §7, §8).

``Autoscaler`` ticks every revision's ``RevisionScaler`` (gateway/autoscale/revision.py) every tick
interval, or one at once when the data plane pokes it. A backend whose replicas outlive the gateway
(``AdoptingBackend``) seeds each revision with what already runs, and pauses it while it cannot tell.

With several gateway instances every one runs the deciders on the summed stats (so a new leader's
windows are warm), but only the one its ``actuator`` allows calls the backend; a poke at zero is also
given to ``relay``, which carries it to the leader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from gateway.autoscale.revision import ACTIVATION_TIMEOUT, RevisionScaler, State
from gateway.autoscale.settings import RevisionScaling
from gateway.autoscale.stats import RevisionStats, StatsSink
from gateway.types import EndpointSet, RevisionKey

__all__ = [
    "ACTIVATION_TIMEOUT",
    "Adoption",
    "AdoptingBackend",
    "Autoscaler",
    "RevisionScaler",
    "ScalerStatus",
    "ScalingBackend",
    "State",
]

log = logging.getLogger(__name__)


class ScalingBackend(Protocol):
    """The part of :class:`gateway.backends.base.Backend` the autoscaler uses."""

    async def scale(self, key: RevisionKey, replicas: int) -> None: ...

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet: ...


Adoption = int | None | Literal["unknown"]


@runtime_checkable
class AdoptingBackend(Protocol):
    """A backend whose replicas outlive the gateway (Kubernetes Deployments): a restart adopts them."""

    def adoption(self, key: RevisionKey) -> Adoption:
        """The replicas the revision already had when the backend first saw it (adopt them), None when it
        starts afresh (initial scale applies), "unknown" while the backend cannot tell (scaling waits)."""
        ...


@dataclass(frozen=True)
class ScalerStatus:
    """One revision's autoscaling status, for the admin API."""

    desired: int
    ready: int
    stable: float | None
    panic: float | None
    panicking: bool
    excess_burst_capacity: int
    state: State
    activator_in_path: bool
    in_flight: int


class ScaleObserver(Protocol):
    """Watches the decisions (the dashboard's history, gateway/dashboard/): called from the ticks, never per request."""

    def sample(self, key: RevisionKey, scaler: RevisionScaler) -> None:
        """After every tick of a revision; must be O(1) and cheap for an idle one."""

    def event(self, key: RevisionKey, kind: str, what: str, why: str) -> None:
        """A scale decision sent to the backend ("scale"), a panic mode entered or left ("panic")."""

    def forget(self, key: RevisionKey) -> None: ...


class Actuator(Protocol):
    """Whether this instance may change a revision's replicas from ``before`` (None: never sent) to ``target``
    now: the leader with a valid lease may; with the shared state unreachable the last leader may only add."""

    def may_act(self, before: int | None, target: int) -> bool: ...


class Autoscaler:
    """Owns one RevisionScaler per revision and drives the backend from them."""

    def __init__(
        self,
        backend: ScalingBackend,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tick_interval: float = 2.0,
        activation_timeout: float = ACTIVATION_TIMEOUT,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._sleep = sleep
        self.tick_interval = tick_interval
        self._activation_timeout = activation_timeout
        self._scalers: dict[RevisionKey, RevisionScaler] = {}
        self._sent: dict[RevisionKey, int] = {}
        self._panicking: set[RevisionKey] = set()
        self._poked: set[RevisionKey] = set()
        self._wake = asyncio.Event()
        self._adoption = backend.adoption if isinstance(backend, AdoptingBackend) else None
        self._unseeded: set[RevisionKey] = set()  # created while the backend could not tell what runs
        self.actuator: Actuator | None = None  # None: a single instance, always acts
        self.relay: Callable[[RevisionKey], None] | None = None  # a poke at zero, for the leader elsewhere
        self.sink: StatsSink | None = None  # shared stats: every revision's stats keep an outbox for it
        self._resend = False  # take_over: tick every revision at once
        self._taken_over: set[RevisionKey] = set()  # whose first count after a take-over is not sent yet
        self.observer: ScaleObserver | None = None  # the dashboard's history

    def __contains__(self, key: object) -> bool:
        return key in self._scalers

    def keys(self) -> list[RevisionKey]:
        return list(self._scalers)

    def revision(self, key: RevisionKey) -> RevisionScaler:
        return self._scalers[key]

    def stats(self, key: RevisionKey) -> RevisionStats:
        """The stats object the data plane calls request_in/request_out on; KeyError if unknown."""
        return self._scalers[key].stats

    def status(self, key: RevisionKey) -> ScalerStatus:
        scaler = self._scalers[key]
        return ScalerStatus(
            desired=scaler.desired,
            ready=scaler.ready,
            stable=scaler.stable,
            panic=scaler.panic,
            panicking=scaler.panicking,
            excess_burst_capacity=scaler.excess_burst_capacity,
            state=scaler.state,
            activator_in_path=scaler.activator_in_path,
            in_flight=scaler.stats.in_flight,
        )

    def update(self, configs: Mapping[RevisionKey, RevisionScaling]) -> None:
        """Match the set of revisions to ``configs``: add new ones, drop missing, update the rest."""
        for key in [k for k in self._scalers if k not in configs]:
            self.remove(key)
        for key, scaling in configs.items():
            self.set(key, scaling)
        if configs:
            self.tick_interval = min(s.tick_interval for s in configs.values())

    def set(self, key: RevisionKey, scaling: RevisionScaling) -> None:
        """Add a revision, or give it new parameters (its windows' data and state are kept)."""
        existing = self._scalers.get(key)
        if existing is not None:
            existing.update(scaling)
        else:
            self._scalers[key] = self._new_scaler(key, scaling, None)
        self.tick_interval = scaling.tick_interval  # GatewayConfig's, the same for every revision

    def _new_scaler(self, key: RevisionKey, scaling: RevisionScaling, stats: RevisionStats | None) -> RevisionScaler:
        ready = self._ready(key) or 0
        adoption = self._adoption(key) if self._adoption is not None else None
        if adoption == "unknown":
            self._unseeded.add(key)
            adoption = None
        else:
            self._unseeded.discard(key)
        scaler = RevisionScaler(
            scaling, self._clock(), ready, stats=stats, activation_timeout=self._activation_timeout, adopted=adoption
        )
        if self.sink is not None:
            scaler.stats.share(self.sink, key)
        return scaler

    def _paused(self, key: RevisionKey) -> bool:
        """Whether the backend cannot tell what runs now (its API unreachable): no decision, no flapping.

        A revision created meanwhile is seeded once the backend can tell."""
        if self._adoption is None or self._adoption(key) != "unknown":
            if key in self._unseeded:
                old = self._scalers[key]
                self._scalers[key] = self._new_scaler(key, old.scaling, old.stats)
            return False
        return True

    def remove(self, key: RevisionKey) -> None:
        self._unseeded.discard(key)
        if self.observer is not None:
            self.observer.forget(key)  # also revisions nothing scales (static), which the observer may still hold
        if self._scalers.pop(key, None) is not None:
            self._sent.pop(key, None)
            self._taken_over.discard(key)
            self._panicking.discard(key)
            self._poked.discard(key)

    def poke(self, key: RevisionKey) -> None:
        """Ask for an immediate tick of ``key`` if it is at zero. Cheap; for the request path."""
        scaler = self._scalers.get(key)
        if scaler is not None and scaler.desired == 0:
            self._poked.add(key)
            self._wake.set()
            if self.relay is not None:
                self.relay(key)

    def take_over(self) -> None:
        """This instance just became the one that acts: every revision's count is sent again on its next
        tick (the backend changes only those that differ from what runs), from the deciders' warm state."""
        self._sent.clear()
        self._taken_over = set(self._scalers)
        self._resend = True
        self._wake.set()

    async def tick_all(self) -> None:
        """Tick every revision once and apply what changed."""
        self._poked.clear()
        now = self._clock()
        for key in list(self._scalers):
            if self._paused(key):
                continue
            scaler = self._scalers[key]
            try:
                scaler.tick(now, self._ready(key))
            except Exception:
                log.exception("autoscaling %s", key)
                continue
            await self._apply(key, scaler)
            if self.observer is not None:
                self.observer.sample(key, scaler)

    async def tick_poked(self) -> None:
        """Tick the revisions poked since the last tick."""
        poked, self._poked = self._poked, set()
        now = self._clock()
        for key in poked:
            if key not in self._scalers or self._paused(key):
                continue
            scaler = self._scalers[key]
            ready = self._ready(key)
            scaler.poke(now, ready if ready is not None else 0)
            await self._apply(key, scaler)
            if self.observer is not None:
                self.observer.sample(key, scaler)

    async def run(self) -> None:
        """Tick every ``tick_interval`` and on pokes, until cancelled."""
        sleeper: asyncio.Future[Any] | None = None
        waiter: asyncio.Future[Any] | None = None
        try:
            while True:
                if sleeper is None:
                    await self.tick_all()
                    sleeper = asyncio.ensure_future(self._sleep(self.tick_interval))
                if waiter is None:
                    waiter = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    waiter = None
                    self._wake.clear()
                    if self._resend:
                        self._resend = False
                        await self.tick_all()
                    await self.tick_poked()
                if sleeper in done:
                    sleeper = None
        finally:
            pending = [task for task in (sleeper, waiter) if task is not None]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _ready(self, key: RevisionKey) -> int | None:
        try:
            return len(self._backend.ready_endpoints(key))
        except Exception:
            log.exception("ready endpoints of %s", key)
            return None

    def _panic_changed(self, key: RevisionKey, scaler: RevisionScaler, panicking: bool) -> None:
        """Once per transition, never per request or tick."""
        if panicking:
            self._panicking.add(key)
            why = f"panic concurrency {_fmt(scaler.panic)} over the window, {scaler.ready} ready"
            log.info("%s: panic mode entered (%s)", key, why)
        else:
            self._panicking.discard(key)
            why = f"stable concurrency {_fmt(scaler.stable)}"
            log.info("%s: panic mode left (%s)", key, why)
        if self.observer is not None:
            self.observer.event(key, "panic", "entered" if panicking else "left", why)

    async def _apply(self, key: RevisionKey, scaler: RevisionScaler) -> None:
        target = scaler.desired
        panicking = scaler.panicking
        if panicking != (key in self._panicking):
            self._panic_changed(key, scaler, panicking)
        before = self._sent.get(key)
        if before == target or (self.actuator is not None and not self.actuator.may_act(before, target)):
            return
        if before is not None or target:
            if before is None:
                why = "taken over: this instance now scales" if key in self._taken_over else scaler.origin
            elif target == 0:
                why = "no traffic for the stable window and the grace period"
            else:
                why = f"stable concurrency {_fmt(scaler.stable)}, panic {_fmt(scaler.panic)}{', panicking' if panicking else ''}"
            log.info("%s: scale %s -> %d (%s)", key, "none" if before is None else before, target, why)
            if self.observer is not None:
                self.observer.event(key, "scale", f"{'none' if before is None else before} -> {target}", why)
        try:
            await self._backend.scale(key, target)
        except Exception:
            log.exception("scaling %s to %d", key, target)
            return
        if key in self._scalers:
            self._sent[key] = target
            self._taken_over.discard(key)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
