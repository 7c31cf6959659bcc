"""One revision's scaling decisions: Knative's multiscaler entry plus KPA reconciler, in our terms (KPA.md §7, §8).

The PodAutoscaler's Active condition (activating / active / inactive) and the serverless service's mode
(activator in the path or not) are tracked here, with the times of their last transitions.
"""

from __future__ import annotations

from typing import Literal

from gateway.autoscale.kpa import Decider
from gateway.autoscale.settings import RevisionScaling
from gateway.autoscale.stats import RevisionStats

State = Literal["activating", "active", "inactive"]

ACTIVATION_TIMEOUT = 630.0
"""Knative's default progress deadline (600 s) plus its 30 s buffer."""


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
        adopted: int | None = None,
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
        self.origin = "initial scale"  # why the first count sent is what it is (the scale event's reason)
        if scaling.fixed:
            self.desired = scaling.min_scale
            self.origin = "fixed replicas"
        elif adopted is not None:
            self._adopt(now, adopted, ready)
            self.origin = f"adopted: {adopted} replicas were running"
        elif ready > 0:
            # Replicas already serve (a restart): keep them, as Knative keeps an active PA.
            self.desired = _bounded(scaling, ready)
            self.state = "active"
            self._initialised = True
        else:
            self.desired = _bounded(scaling, scaling.initial_scale)

    def _adopt(self, now: float, replicas: int, ready: int) -> None:
        """Start from what already runs (a restart): busy stays busy, idle stays at zero, no initial scale."""
        self.desired = _bounded(self.scaling, replicas)
        self._initialised = True
        if self.desired == 0:
            self.state = "inactive"
        else:
            self.state = "active" if ready > 0 else "activating"

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
