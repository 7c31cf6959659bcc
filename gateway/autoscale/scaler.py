"""The control loop: decider output -> bounds, initial scale, scale to zero -> backend (KPA.md §7, §8).

``RevisionScaler`` is Knative's multiscaler entry plus KPA reconciler for one revision, in our terms:
the PodAutoscaler's Active condition (activating / active / inactive) and the serverless service's
mode (activator in the path or not) are tracked here, with the times of their last transitions.
``Autoscaler`` ticks all of them every tick interval, or one at once when the data plane pokes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gateway.autoscale.kpa import Decider
from gateway.autoscale.settings import RevisionScaling
from gateway.autoscale.stats import RevisionStats
from gateway.types import EndpointSet, RevisionKey

log = logging.getLogger(__name__)

State = Literal["activating", "active", "inactive"]

ACTIVATION_TIMEOUT = 630.0
"""Knative's default progress deadline (600 s) plus its 30 s buffer."""


class ScalingBackend(Protocol):
    """The part of :class:`gateway.backends.base.Backend` the autoscaler uses."""

    async def scale(self, key: RevisionKey, replicas: int) -> None: ...

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet: ...


def _bounded(scaling: RevisionScaling, n: int) -> int:
    n = max(scaling.min_scale, n)
    return min(n, scaling.max_scale) if scaling.max_scale > 0 else n


class RevisionScaler:
    """Decides one revision's replica count on every tick."""

    def __init__(
        self,
        scaling: RevisionScaling,
        now: float,
        ready: int = 0,
        *,
        stats: RevisionStats | None = None,
        activation_timeout: float = ACTIVATION_TIMEOUT,
    ) -> None:
        self.scaling = scaling
        if stats is None:
            stats = RevisionStats(scaling.stable_window, scaling.panic_window)
        self.stats = stats
        self.decider = Decider(scaling.decider_spec(), ready, now)
        self.activation_timeout = activation_timeout
        self.ready = ready
        self.decider_desired = -1  # Knative's DesiredScale: -1 until the first valid decision
        tbc = scaling.target_burst_capacity
        self.excess_burst_capacity = int(tbc) if tbc in (0, -1) else int(scaling.initial_scale * scaling.total_value - tbc)
        self.stable: float | None = None
        self.panic: float | None = None
        self.state: State = "activating"
        self._state_since = now
        self._initialised = False
        self._proxy_since: float | None = now
        self._poked_at: float | None = None
        if scaling.fixed:
            self.desired = scaling.min_scale
        elif ready > 0:
            # Replicas already serve (a restart): keep them, as Knative keeps an active PA.
            self.desired = _bounded(scaling, ready)
            self.state = "active"
            self._initialised = True
        else:
            self.desired = _bounded(scaling, scaling.initial_scale)

    @property
    def panicking(self) -> bool:
        return self.decider.panicking

    @property
    def activator_in_path(self) -> bool:
        """Knative's SKS proxy mode: the revision cannot take a burst of TBC without buffering."""
        return self._proxy_since is not None

    def update(self, scaling: RevisionScaling) -> None:
        """Take new parameters; decider state, windows' data and the state machine are kept."""
        windows = (scaling.stable_window, scaling.panic_window)
        if windows != (self.stats.stable_window, self.stats.panic_window):
            self.stats.reconfigure(*windows)
        self.decider.update(scaling.decider_spec())
        self.scaling = scaling

    def poke(self, now: float, ready: int) -> int | None:
        """Tick at once if the revision is at zero (a request arrived); else do nothing.

        At most one poke a second ticks, as Knative's activator reports at most once a second.
        """
        if self.desired != 0 or (self._poked_at is not None and now - self._poked_at < 1.0):
            return None
        self._poked_at = now
        return self.tick(now, ready)

    def tick(self, now: float, ready: int | None) -> int | None:
        """One decision: the replica count to ask for now, or None to leave the backend as it is.

        ``ready`` None means the ready count is unknown: the decider's tick is invalid.
        """
        if ready is not None:
            self.ready = ready
        # Replicas on their way out (scaled to zero) are not scraped in Knative either.
        self.stats.observe(now, None if ready is None else ready if self.desired > 0 else 0)
        scaling = self.scaling
        averages = self.stats.rps(now) if scaling.metric == "rps" else self.stats.concurrency(now)
        if averages is None and scaling.target_burst_capacity == -1:
            averages = (0.0, 0.0)  # no scrape target, so Knative reports no ErrNoData
        self.stable, self.panic = averages if averages is not None else (None, None)
        if scaling.fixed:
            self.desired = scaling.min_scale
            return self.desired

        result = self.decider.scale(now, self.stable, self.panic, ready)
        if result.valid:
            self.decider_desired = result.desired_pods
            self.excess_burst_capacity = result.excess_burst_capacity
        want, apply = self._scale(now, self.decider_desired)
        self._update_mode(now, want)
        self._update_state(now, want, self.ready)
        if not apply:
            return None
        self.desired = want
        if want == 0:
            self.stats.has_replicas = False
        return want

    def _scale(self, now: float, desired: int) -> tuple[int, bool]:
        """Knative's KPA scaler: (want, whether to apply it)."""
        if desired < 0 and self.state != "activating":
            return desired, False
        desired = self._within_bounds(desired)
        if desired != 0:
            return desired, True
        if not self.scaling.enable_scale_to_zero:
            return 1, True
        return self._toward_zero(now)

    def _within_bounds(self, desired: int) -> int:
        scaling = self.scaling
        lo = scaling.min_scale if scaling.reachable else 0
        if scaling.initial_scale > 1 and not self._initialised and scaling.reachable:
            lo = max(lo, scaling.initial_scale)
        desired = max(desired, lo)
        return min(desired, scaling.max_scale) if scaling.max_scale > 0 else desired

    def _toward_zero(self, now: float) -> tuple[int, bool]:
        """The decider wants zero: whether the state machine and grace periods let it go there yet."""
        scaling = self.scaling
        since = now - self._state_since
        if self.state == "activating":
            if since > self.activation_timeout:
                return 0, True
            return -1, False
        if self.state == "active":
            if since >= scaling.stable_window:
                return 0, False  # marks the revision inactive; replicas go on the next ticks
            return 1, True
        grace = scaling.scale_to_zero_grace_period
        retention = scaling.scale_to_zero_pod_retention if scaling.reachable else 0.0
        if since >= max(grace, retention):
            return 0, True
        if retention > 0 and since < retention:
            return 0, False  # keep the last replica for the retention period
        if self._proxy_since is not None and now - self._proxy_since >= grace:
            return 0, True
        return 0, False

    def _update_mode(self, now: float, want: int) -> None:
        serve = want > 0 and self.excess_burst_capacity >= 0
        if serve:
            self._proxy_since = None
        elif self._proxy_since is None:
            self._proxy_since = now

    def _update_state(self, now: float, want: int, ready: int) -> None:
        scaling = self.scaling
        lo = scaling.min_scale if scaling.reachable else 0
        threshold = max(lo, 1) if self._initialised else max(lo, scaling.initial_scale)
        if ready >= threshold:
            self._initialised = True
        if want == 0 or threshold == 0:
            new: State = "inactive"
        elif want > 0 or self.state != "inactive":
            new = "activating" if ready < threshold else "active"
        else:
            return
        if new != self.state:
            self.state = new
            self._state_since = now


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
            ready = self._ready(key) or 0
            self._scalers[key] = RevisionScaler(scaling, self._clock(), ready, activation_timeout=self._activation_timeout)
        self.tick_interval = scaling.tick_interval  # GatewayConfig's, the same for every revision

    def remove(self, key: RevisionKey) -> None:
        if self._scalers.pop(key, None) is not None:
            self._sent.pop(key, None)
            self._panicking.discard(key)
            self._poked.discard(key)

    def poke(self, key: RevisionKey) -> None:
        """Ask for an immediate tick of ``key`` if it is at zero. Cheap; for the request path."""
        scaler = self._scalers.get(key)
        if scaler is not None and scaler.desired == 0:
            self._poked.add(key)
            self._wake.set()

    async def tick_all(self) -> None:
        """Tick every revision once and apply what changed."""
        self._poked.clear()
        now = self._clock()
        for key, scaler in list(self._scalers.items()):
            try:
                scaler.tick(now, self._ready(key))
            except Exception:
                log.exception("autoscaling %s", key)
                continue
            await self._apply(key, scaler)

    async def tick_poked(self) -> None:
        """Tick the revisions poked since the last tick."""
        poked, self._poked = self._poked, set()
        now = self._clock()
        for key in poked:
            scaler = self._scalers.get(key)
            if scaler is None:
                continue
            ready = self._ready(key)
            scaler.poke(now, ready if ready is not None else 0)
            await self._apply(key, scaler)

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

    async def _apply(self, key: RevisionKey, scaler: RevisionScaler) -> None:
        target = scaler.desired
        panicking = scaler.panicking
        if panicking != (key in self._panicking):
            # Once per transition, never per request or tick.
            if panicking:
                self._panicking.add(key)
                log.info(
                    "%s: panic mode entered (panic concurrency %s over the window, %d ready)",
                    key,
                    _fmt(scaler.panic),
                    scaler.ready,
                )
            else:
                self._panicking.discard(key)
                log.info("%s: panic mode left (stable concurrency %s)", key, _fmt(scaler.stable))
        before = self._sent.get(key)
        if before == target:
            return
        if before is not None or target:
            if before is None:
                why = "initial scale"
            elif target == 0:
                why = "no traffic for the stable window and the grace period"
            else:
                why = f"stable concurrency {_fmt(scaler.stable)}, panic {_fmt(scaler.panic)}{', panicking' if panicking else ''}"
            log.info("%s: scale %s -> %d (%s)", key, "none" if before is None else before, target, why)
        try:
            await self._backend.scale(key, target)
        except Exception:
            log.exception("scaling %s to %d", key, target)
            return
        if key in self._scalers:
            self._sent[key] = target


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
