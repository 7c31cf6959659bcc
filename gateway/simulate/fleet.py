"""The simulated replicas of one revision: the backend the real Autoscaler drives, and the throttler's admission.

As the local backend (gateway/backends/local.py): ``scale(n)`` starts the missing replicas at once,
each ready ``startup`` seconds later (several start-up times, e.g. measured ones: taken in turn by the
replicas as they start), and stops the surplus in the backend's order — replicas not yet
ready first (newest first), then ready ones least loaded first (idle first). A stopped replica leaves
the ready set at once and drains: it finishes the requests it holds, takes no new ones, and costs
until its last request is done.

As the router's throttler (gateway/router/throttler.py): a ready replica admits at most
``containerConcurrency`` requests at once (0 = unlimited). The request goes to the least loaded
ready replica. Simplified: the gateway balances by round-robin (containerConcurrency > 3),
first-available (1..3) or power of two choices (unlimited); which replica serves a request changes
no count here, only which replicas are busy when some are stopped.

Per request O(log replicas): a heap of (in flight, index) with stale entries skipped and compacted.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from gateway.types import Endpoint, EndpointSet, RevisionKey


class Replica:
    __slots__ = ("index", "ready_at", "ready", "stopped", "in_flight")

    def __init__(self, index: int, ready_at: float) -> None:
        self.index = index
        self.ready_at = ready_at
        self.ready = False
        self.stopped = False
        self.in_flight = 0


class Fleet:
    """One revision's replicas on the simulated clock."""

    def __init__(
        self, clock: Callable[[], float], *, startup: float | Sequence[float], container_concurrency: int, horizon: float
    ) -> None:
        self._clock = clock
        self._startups = (startup,) if isinstance(startup, int | float) else tuple(startup)
        self.container_concurrency = container_concurrency
        self.active: list[Replica] = []  # starting or ready, not stopped; oldest first
        self._starting: list[tuple[float, int, Replica]] = []  # heap by ready time
        self._free: list[tuple[int, int, Replica]] = []  # (in flight, index, replica): ready replicas, stale entries too
        self._next_index = 0
        self.ready_count = 0
        self._endpoints: EndpointSet | None = frozenset()
        self.alive = 0  # replicas that cost: starting, ready or draining
        self._horizon = horizon
        self._mark = 0.0
        self.replica_seconds = 0.0  # alive replicas integrated over [0, horizon)
        self.changes = 0  # times the replica count changed (scale-ups and scale-downs)

    # -- the backend the Autoscaler drives --------------------------------------------------------
    async def scale(self, key: RevisionKey, replicas: int) -> None:
        self.resize(max(0, replicas))

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        if self._endpoints is None:
            self._endpoints = frozenset(Endpoint("replica", r.index) for r in self.active if r.ready)
        return self._endpoints

    def resize(self, replicas: int) -> None:
        surplus = len(self.active) - replicas
        if surplus:
            self.changes += 1
        if surplus < 0:
            for _ in range(-surplus):
                self._start()
        elif surplus > 0:
            order = sorted(self.active, key=lambda r: (r.ready, r.in_flight if r.ready else 0, -r.index))
            for replica in order[:surplus]:
                self._stop(replica)

    def _start(self) -> None:
        index = self._next_index
        replica = Replica(index, self._clock() + self._startups[index % len(self._startups)])
        self._next_index += 1
        self.active.append(replica)
        heapq.heappush(self._starting, (replica.ready_at, index, replica))
        self._cost(+1)

    def _stop(self, replica: Replica) -> None:
        replica.stopped = True
        self.active.remove(replica)
        if replica.ready:
            replica.ready = False
            self.ready_count -= 1
            self._endpoints = None
        if replica.in_flight == 0:
            self._cost(-1)

    def _cost(self, change: int) -> None:
        now = min(self._clock(), self._horizon)
        self.replica_seconds += self.alive * (now - self._mark)
        self._mark = now
        self.alive += change

    def close(self) -> None:
        """Count the cost up to the horizon."""
        self._cost(0)
        self.replica_seconds += self.alive * (self._horizon - self._mark)
        self._mark = self._horizon

    # -- start-up ---------------------------------------------------------------------------------
    def next_ready(self) -> float | None:
        starting = self._starting
        while starting and starting[0][2].stopped:
            heapq.heappop(starting)
        return starting[0][0] if starting else None

    def become_ready(self) -> None:
        """The replica due now is ready."""
        replica = heapq.heappop(self._starting)[2]
        replica.ready = True
        self.ready_count += 1
        self._endpoints = None
        heapq.heappush(self._free, (replica.in_flight, replica.index, replica))

    # -- admission --------------------------------------------------------------------------------
    def acquire(self) -> Replica | None:
        """The least loaded ready replica with room, its slot taken; None when none has room."""
        free = self._free
        while free:
            load, _, replica = free[0]
            if not replica.ready or load != replica.in_flight:
                heapq.heappop(free)
                continue
            if self.container_concurrency and load >= self.container_concurrency:
                return None
            replica.in_flight = load + 1
            heapq.heapreplace(free, (load + 1, replica.index, replica))
            return replica
        return None

    def release(self, replica: Replica) -> None:
        replica.in_flight -= 1
        if replica.stopped:
            if replica.in_flight == 0:
                self._cost(-1)  # drained
            return
        free = self._free
        heapq.heappush(free, (replica.in_flight, replica.index, replica))
        if len(free) > 4 * self.ready_count + 64:
            self._free = [(r.in_flight, r.index, r) for r in self.active if r.ready]
            heapq.heapify(self._free)
