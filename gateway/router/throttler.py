"""Per-revision throttler: per-replica breakers, load balancing and the activator's wait queue.

Knative's activator semantics (KPA.md §9.3) without its locks: each replica admits at most
``containerConcurrency`` requests at once (0 = unlimited); requests that find no replica with
capacity wait in a bounded FIFO until one frees up or appears. Load balancing as Knative's
throttler: power of two choices when unlimited, first-available when containerConcurrency <= 3, round-robin
otherwise. One of the two choices is the next replica in round-robin order and wins ties, so
sequential requests (and the static backend's idle endpoints) rotate evenly. Every operation on the request path is O(1) (O(log n) for first-available).

Several data planes share the replicas (``set_share``): each tracker's ``capacity`` is this plane's
part of the replica's ``containerConcurrency`` (shares.py), and admission compares ``in_flight`` with
it. The balancing policy stays keyed on ``containerConcurrency``, and a tracker with no capacity here
is never admitted.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections import deque

from gateway.router.shares import check_share, plane_capacity
from gateway.types import Endpoint, EndpointSet


class QueueFull(Exception):
    """The activator queue of a revision is at ``queueDepth``."""


class Retired(Exception):
    """The revision a request waited for was removed by a reload before a replica was free for it."""


class Tracker:
    """One replica as the throttler sees it."""

    __slots__ = ("endpoint", "index", "capacity", "in_flight", "removed", "down", "listed")

    def __init__(self, endpoint: Endpoint, index: int, capacity: int) -> None:
        self.endpoint = endpoint
        self.index = index
        self.capacity = capacity  # slots this data plane may use on the replica (0 with unlimited concurrency)
        self.in_flight = 0
        self.removed = False
        self.down = False
        self.listed = False  # present in the availability structure

    def __lt__(self, other: Tracker) -> bool:
        return self.index < other.index

    def __repr__(self) -> str:
        return f"Tracker({self.endpoint}, in_flight={self.in_flight}, capacity={self.capacity})"


class Throttler:
    __slots__ = (
        "container_concurrency",
        "plane",
        "planes",
        "also",
        "queue_depth",
        "trackers",
        "retired",
        "_up",
        "_ring",
        "_heap",
        "_waiters",
        "queued",
        "_next_index",
        "_rr",
    )

    def __init__(self, container_concurrency: int, queue_depth: int) -> None:
        self.container_concurrency = container_concurrency  # per replica, across all data planes
        self.plane = 0  # this data plane's index among `planes` (set_share)
        self.also: tuple[tuple[int, int], ...] = ()  # shares still in force while the planes renumber
        self.planes = 1
        self.queue_depth = queue_depth
        self.trackers: dict[Endpoint, Tracker] = {}
        # Replicas that left the ready set while still serving: drained before they are stopped.
        self.retired: dict[Endpoint, Tracker] = {}
        self._up: list[Tracker] = []  # unlimited: candidates for power of two choices
        # containerConcurrency > 3: replicas with spare capacity, round-robin. A list, not a deque: an empty deque costs
        # 600 bytes and 10,000 revisions that never see a request must cost little; pop(0) of a
        # list of replicas is a short memmove.
        self._ring: list[Tracker] = []
        self._heap: list[Tracker] = []  # 1 <= containerConcurrency <= 3: replicas with spare capacity, lowest index first
        self._waiters: deque[asyncio.Future[Tracker]] | None = None  # made when first needed (see _ring)
        self.queued = 0
        self._next_index = 0
        self._rr = 0

    # -- endpoints ------------------------------------------------------------------------------
    def update_endpoints(self, endpoints: EndpointSet) -> None:
        for endpoint, tracker in list(self.trackers.items()):
            if endpoint not in endpoints:
                tracker.removed = True
                del self.trackers[endpoint]
                if tracker.in_flight > 0:
                    self.retired[endpoint] = tracker
        for endpoint in sorted(endpoints, key=lambda e: (e.host, e.port)):
            if endpoint not in self.trackers:
                back = self.retired.pop(endpoint, None)
                if back is not None:
                    # Back while its old requests still run: they count against the replica's limit.
                    back.removed = back.down = False  # as new: its ejection was forgotten when it left
                    back.capacity = self._capacity(endpoint)  # its number (gateway/slots.py) may be new
                    self.trackers[endpoint] = back
                else:
                    self.trackers[endpoint] = Tracker(endpoint, self._next_index, self._capacity(endpoint))
                    self._next_index += 1
        self._rebuild()

    def set_concurrency(self, container_concurrency: int) -> None:
        if container_concurrency != self.container_concurrency:
            self.container_concurrency = container_concurrency
            self._recount()

    def set_share(self, index: int, count: int, also: tuple[tuple[int, int], ...] = ()) -> None:
        """This data plane is number ``index`` (0-based) of ``count`` sharing the replicas; while the planes
        renumber (one joined or left), ``also`` holds shares other planes may still go by, and a replica's
        capacity is the least of them all (planes that switch at different moments never overlap).

        Capacity lowered below a replica's requests in flight admits nothing more there until they
        drain below it; capacity raised serves waiters at once, in order.
        """
        check_share(index, count)
        for other in also:
            check_share(*other)
        if (index, count, also) != (self.plane, self.planes, self.also):
            self.plane, self.planes, self.also = index, count, also
            self._recount()

    def _capacity(self, endpoint: Endpoint) -> int:
        cc = self.container_concurrency
        capacity = plane_capacity(endpoint, cc, self.plane, self.planes)
        for index, count in self.also:
            capacity = min(capacity, plane_capacity(endpoint, cc, index, count))
        return capacity

    def _recount(self) -> None:
        for tracker in self.trackers.values():
            tracker.capacity = self._capacity(tracker.endpoint)
        for tracker in self.retired.values():
            tracker.capacity = self._capacity(tracker.endpoint)  # it may come back
        self._rebuild()

    def mark_down(self, endpoint: Endpoint) -> None:
        """Take a replica out of rotation (it refused a connection) until ``mark_up``."""
        tracker = self.trackers.get(endpoint)
        if tracker is not None and not tracker.down:
            tracker.down = True
            self._rebuild()

    def mark_up(self, endpoint: Endpoint) -> None:
        tracker = self.trackers.get(endpoint)
        if tracker is not None and tracker.down:
            tracker.down = False
            self._rebuild()

    def starved(self) -> bool:
        """This data plane has no part of any ready replica (containerConcurrency below the number of planes):
        its requests wait until a replica it has a part of appears. O(replicas): for error messages only."""
        return self.container_concurrency > 0 and bool(self.trackers) and all(t.capacity == 0 for t in self.trackers.values())

    @property
    def ready(self) -> int:
        return len(self.trackers)

    @property
    def reachable(self) -> int:
        return sum(1 for t in self.trackers.values() if not t.down)

    def _rebuild(self) -> None:
        live = [t for t in self.trackers.values() if not t.down]
        live.sort()
        ring = self._ring
        for t in ring:
            t.listed = False
        ring.clear()
        for t in self._heap:
            t.listed = False
        self._up = live
        self._heap.clear()
        if self.container_concurrency > 3:
            for t in live:
                if t.in_flight < t.capacity:
                    t.listed = True
                    ring.append(t)
        elif self.container_concurrency > 0:
            for t in live:
                if t.in_flight < t.capacity:
                    t.listed = True
                    self._heap.append(t)
            heapq.heapify(self._heap)
        self._wake()

    # -- request path ---------------------------------------------------------------------------
    def try_acquire(self) -> Tracker | None:
        """A replica with spare capacity, its slot taken; None when there is none right now."""
        if self._waiters:
            return None  # FIFO: do not overtake requests already waiting
        return self._take()

    def _take(self) -> Tracker | None:
        cc = self.container_concurrency
        if cc > 3:
            # Round-robin over the replicas with spare capacity.
            ring = self._ring
            while ring:
                t = ring.pop(0)
                if t.removed or t.down:
                    t.listed = False
                    continue
                t.in_flight += 1
                if t.in_flight < t.capacity:
                    ring.append(t)
                else:
                    t.listed = False
                return t
            return None
        if cc:
            return self._take_lowest_index()
        # Unlimited concurrency (the common case, inline): the less busy of two replicas, one in
        # turn and one at random.
        up = self._up
        n = len(up)
        if n == 0:
            return None
        if n == 1:
            t = up[0]
        else:
            self._rr += 1
            a = up[self._rr % n]
            b = up[random.randrange(n)]
            t = a if a.in_flight <= b.in_flight else b
        t.in_flight += 1
        return t

    def _take_lowest_index(self) -> Tracker | None:
        heap = self._heap
        while heap:
            t = heap[0]
            if t.removed or t.down:
                heapq.heappop(heap)
                t.listed = False
                continue
            t.in_flight += 1
            if t.in_flight >= t.capacity:
                heapq.heappop(heap)
                t.listed = False
            return t
        return None

    def take_down(self) -> Tracker | None:
        """A slot on a replica marked down (the degraded path: nothing else is up).

        For fixed endpoints a replica that dropped one request is usually still alive; trying it
        beats failing every request until its probe comes back. O(replicas), off the normal path.
        """
        for t in self.trackers.values():
            if t.down and (self.container_concurrency == 0 or t.in_flight < t.capacity):
                t.in_flight += 1
                return t
        return None

    def in_flight(self, endpoint: Endpoint) -> int:
        """Requests on a replica, including one that already left the ready set (draining)."""
        tracker = self.trackers.get(endpoint) or self.retired.get(endpoint)
        return tracker.in_flight if tracker is not None else 0

    def release(self, tracker: Tracker) -> None:
        tracker.in_flight -= 1
        if tracker.removed:
            if tracker.in_flight == 0:
                self.retired.pop(tracker.endpoint, None)
            return
        cc = self.container_concurrency
        if cc and not tracker.listed and not tracker.down and tracker.in_flight < tracker.capacity:
            tracker.listed = True
            if cc > 3:
                self._ring.append(tracker)
            else:
                heapq.heappush(self._heap, tracker)
        if self._waiters:
            self._wake()

    def wait(self) -> asyncio.Future[Tracker]:
        """A future resolved with a replica slot; raises QueueFull past ``queueDepth``.

        Cancelling the future (timeout, client gone) gives its place up.
        """
        if self.queued >= self.queue_depth:
            raise QueueFull()
        fut: asyncio.Future[Tracker] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = deque()
        self._waiters.append(fut)
        self.queued += 1
        fut.add_done_callback(self._waiter_done)
        return fut

    def _waiter_done(self, fut: asyncio.Future[Tracker]) -> None:
        self.queued -= 1

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters[0]
            if fut.done():
                waiters.popleft()
                continue
            tracker = self._take()
            if tracker is None:
                return
            waiters.popleft()
            fut.set_result(tracker)

    def evict_waiters(self) -> int:
        """Fail every waiting request's future with :class:`Retired` (the revision is gone; they were never sent
        upstream, so they may go elsewhere). Control plane, O(waiters); returns how many were waiting."""
        waiters = self._waiters
        evicted = 0
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_exception(Retired())
                evicted += 1
        return evicted
