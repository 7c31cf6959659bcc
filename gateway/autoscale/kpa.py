"""The KPA decider (KPA.md §4-§6): averages and ready pods in, desired pods and EBC out.

Pure: no I/O, no clock reads, no asyncio. ``now`` is always passed in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass
class DeciderSpec:
    """Everything the decider needs to know about one revision."""

    target_value: float
    total_value: float
    target_burst_capacity: float
    panic_threshold: float
    stable_window: float
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_down_delay: float = 0.0
    activation_scale: int = 0
    reachable: bool = True
    tick_interval: float = 2.0


@dataclass(frozen=True)
class ScaleResult:
    """One decision; ``valid`` is False when inputs were missing and the result must be ignored."""

    desired_pods: int
    excess_burst_capacity: int
    valid: bool


INVALID = ScaleResult(desired_pods=0, excess_burst_capacity=0, valid=False)


class _MaxWindow:
    """Maximum of the values recorded in the last ``ceil(duration / granularity)`` slots (§5)."""

    def __init__(self, duration: float, granularity: float) -> None:
        self._slots = math.ceil(duration / granularity)
        self._granularity = max(1, int(granularity))
        self._entries: deque[tuple[int, int]] = deque()  # (slot, value), values descending

    def record(self, now: float, value: int) -> None:
        slot = math.floor(now) // self._granularity
        entries = self._entries
        while entries and entries[-1][1] <= value:
            entries.pop()
        while entries and slot - entries[0][0] >= self._slots:
            entries.popleft()
        if entries and entries[-1][0] == slot:
            value = max(value, entries.pop()[1])
        entries.append((slot, value))

    def current(self) -> int:
        return self._entries[0][1] if self._entries else 0


def _raw_pods(value: float, target: float) -> float:
    if target > 0:
        return float(math.ceil(value / target))
    return math.inf if value > 0 else 0.0


class Decider:
    """Knative's per-revision autoscaler: stable/panic modes, rate limits, scale-down delay."""

    def __init__(self, spec: DeciderSpec, ready_pods: int | None, now: float) -> None:
        self.spec = spec
        # A ready-count error at construction (None) counts as 0 ready (§4.2, TestNewFail).
        ready = max(0, ready_pods) if ready_pods is not None else 0
        # After a restart the history is gone: hold the current scale until data accumulates.
        self.panic_time: float | None = now if ready > 1 else None
        self.max_panic_pods: int = ready
        self._delay = _MaxWindow(spec.scale_down_delay, spec.tick_interval) if spec.scale_down_delay > 0 else None

    @property
    def panicking(self) -> bool:
        return self.panic_time is not None

    def update(self, spec: DeciderSpec) -> None:
        """Replace the spec; panic state and the delay window are kept as they are."""
        self.spec = spec

    def scale(self, now: float, stable: float | None, panic: float | None, ready_pods: int | None) -> ScaleResult:
        """Decide the pod count at ``now`` from the stable and panic averages and the ready pods."""
        if ready_pods is None or stable is None or panic is None:
            return INVALID
        spec = self.spec
        ready = float(max(1, ready_pods))
        stable_wanted = _raw_pods(stable, spec.target_value)
        panic_wanted = _raw_pods(panic, spec.target_value)
        stable_pods, panic_pods = self._rate_limited(ready, stable_wanted, panic_wanted)
        desired = self._stable_or_panic(now, panic_wanted / ready >= spec.panic_threshold, stable_pods, panic_pods)
        if spec.reachable and self._delay is not None:
            self._delay.record(now, desired)
            desired = self._delay.current()
        return ScaleResult(
            desired_pods=desired, excess_burst_capacity=_excess_burst_capacity(spec, ready_pods, panic), valid=True
        )

    def _rate_limited(self, ready: float, stable_wanted: float, panic_wanted: float) -> tuple[int, int]:
        """(stable pods, panic pods) within the scale-up and scale-down rates, raised to the activation scale."""
        spec = self.spec
        max_up = math.ceil(spec.max_scale_up_rate * ready)
        max_down = 0.0
        if spec.reachable:
            rate = spec.max_scale_down_rate
            max_down = math.floor(ready / rate) if rate > 0 else math.inf
        stable_pods = int(min(max(stable_wanted, max_down), max_up))
        panic_pods = int(min(max(panic_wanted, max_down), max_up))
        activation = spec.activation_scale
        if activation > 1:
            if stable_wanted > 0 and activation > stable_pods:
                stable_pods = activation
            if panic_wanted > 0 and activation > panic_pods:
                panic_pods = activation
        return stable_pods, panic_pods

    def _stable_or_panic(self, now: float, over_threshold: bool, stable_pods: int, panic_pods: int) -> int:
        """Enter or leave panic mode; in it, the pod count never goes down."""
        if over_threshold:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + self.spec.stable_window < now:
            self.panic_time = None
            self.max_panic_pods = 0
        if self.panic_time is None:
            return stable_pods
        self.max_panic_pods = max(self.max_panic_pods, stable_pods, panic_pods)
        return self.max_panic_pods


def _excess_burst_capacity(spec: DeciderSpec, ready_pods: int, panic: float) -> int:
    tbc = spec.target_burst_capacity
    if tbc == 0:
        return 0
    if tbc > 0:
        return math.floor(ready_pods * spec.total_value - tbc - panic)
    return -1
