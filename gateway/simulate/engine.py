"""The event loop: the real autoscaler, a model of the activator and the replicas, a simulated clock.

Events are taken in time order; at one instant completions go first, then replicas becoming ready,
queue timeouts, arrivals, the autoscaler's tick and last the per-second sample. Nothing sleeps: the
clock jumps from one event to the next. Arrivals are read from the sorted trace, completions from a
heap, so a request costs O(log n) whatever the number of replicas.

What is real (imported, not re-implemented): ``gateway.autoscale`` — the ``Autoscaler`` ticking every
``tickInterval`` and on pokes, its ``RevisionScaler`` (bounds, initial scale, scale to zero), the KPA
``Decider`` and the ``RevisionStats`` windows, fed as the router feeds them: ``request_in`` when a
request arrives (queued or not), ``request_out`` when it is answered, times out or is refused, and a
poke when a request has to wait while no replica is ready. Its coroutines run to completion at once:
the simulated backend never waits.

What is modelled (``Fleet`` and this loop): the activator's FIFO queue of ``queueDepth`` (beyond it a
request is refused at once, 503), a queued request given up after ``activationTimeout`` (504), a
request cut at ``requestTimeout`` from its arrival or ``responseStartTimeout`` from its dispatch (504),
and the replicas (fleet.py). Not modelled: several gateway instances or workers, crashes, retries.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.settings import RevisionScaling
from gateway.config.model import GatewaySettings, ServiceSpec
from gateway.simulate.fleet import Fleet, Replica
from gateway.simulate.trace import Trace
from gateway.types import RevisionName

INF = math.inf


@dataclass(frozen=True, slots=True)
class Row:
    """The state at the instant ``time`` (whole seconds), after every event at that instant.

    ``stable`` and ``panic`` are the averages the decider saw at its last tick (None: no data then).
    """

    time: int
    desired: int
    ready: int
    stable: float | None
    panic: float | None
    panicking: bool
    queued: int


class _Clock:
    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _complete(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never really waits (the simulated backend answers at once)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("the autoscaler waited for something the simulation does not provide")


class Simulation:
    """One run of one revision over one trace."""

    def __init__(
        self,
        settings: GatewaySettings,
        spec: ServiceSpec,
        trace: Trace,
        *,
        startup: float | Sequence[float],
        revision: RevisionName,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.trace = trace
        self.key = spec.key(revision)
        self.scaling = RevisionScaling.resolve(settings.autoscaler, spec.scaling)
        self.clock = _Clock()
        self.fleet = Fleet(
            self.clock, startup=startup, container_concurrency=spec.scaling.container_concurrency, horizon=trace.seconds
        )
        self.autoscaler = Autoscaler(self.fleet, clock=self.clock, tick_interval=settings.autoscaler.tick_interval)
        self.autoscaler.update({self.key: self.scaling})
        self.scaler = self.autoscaler.revision(self.key)
        self.stats = self.scaler.stats
        activator = settings.activator
        self.queue_depth = activator.queue_depth
        self.activation_timeout = activator.activation_timeout
        self.request_timeout = spec.timeout or activator.request_timeout
        self.response_start_timeout = settings.proxy.response_start_timeout
        self.queue: deque[tuple[float, float]] = deque()  # (arrival, duration), FIFO
        self.running: list[tuple[float, int, Replica]] = []  # heap of (end, seq, replica)
        self._seq = 0
        self.waits: array[float] = array("d")
        self.waited = 0
        self.rejected = 0
        self.timed_out = 0
        self.max_queued = 0
        self.rows: list[Row] = []
        self._ticks = 0

    def run(self) -> list[Row]:
        arrivals, durations = self.trace.arrivals, self.trace.durations
        n, i = len(arrivals), 0
        seconds, next_sample = self.trace.seconds, 0
        next_tick = 0.0
        clock, fleet, queue, running = self.clock, self.fleet, self.queue, self.running
        while True:
            t_done = running[0][0] if running else INF
            ready = fleet.next_ready()
            t_ready = INF if ready is None else ready
            t_expire = queue[0][0] + self.activation_timeout if queue else INF
            t_arrive = arrivals[i] if i < n else INF
            t_sample = next_sample if next_sample < seconds else INF
            if t_arrive == t_done == t_expire == t_sample == INF:
                break
            now = min(t_done, t_ready, t_expire, t_arrive, next_tick, t_sample)
            clock.now = now
            if t_done == now:
                self._done(now)
            elif t_ready == now:
                fleet.become_ready()
                self._serve_queue(now)
            elif t_expire == now:
                self._expire(now)
            elif t_arrive == now:
                self._arrive(now, durations[i])
                i += 1
            elif next_tick == now:
                _complete(self.autoscaler.tick_all())
                self._ticks += 1
                next_tick = self._ticks * self.autoscaler.tick_interval
            else:
                self._sample(next_sample)
                next_sample += 1
        fleet.close()
        return self.rows

    def _arrive(self, now: float, duration: float) -> None:
        self.stats.request_in(now)
        queue = self.queue
        if not queue:
            replica = self.fleet.acquire()
            if replica is not None:
                self._dispatch(replica, now, now, duration)
                return
        if len(queue) >= self.queue_depth:
            self.rejected += 1  # 503: too many requests waiting
            self.stats.request_out(now)
            return
        queue.append((now, duration))
        if len(queue) > self.max_queued:
            self.max_queued = len(queue)
        if self.fleet.ready_count == 0:
            self.autoscaler.poke(self.key)
            _complete(self.autoscaler.tick_poked())

    def _dispatch(self, replica: Replica, now: float, arrival: float, duration: float) -> None:
        wait = now - arrival
        self.waits.append(wait)
        if wait > 0:
            self.waited += 1
        end = now + duration
        limit = min(arrival + self.request_timeout, now + self.response_start_timeout)
        if end > limit:
            end = limit
            self.timed_out += 1
        self._seq += 1
        heapq.heappush(self.running, (end, self._seq, replica))

    def _done(self, now: float) -> None:
        _, _, replica = heapq.heappop(self.running)
        self.fleet.release(replica)
        self.stats.request_out(now)
        if self.queue:
            self._serve_queue(now)

    def _serve_queue(self, now: float) -> None:
        queue, fleet = self.queue, self.fleet
        while queue:
            replica = fleet.acquire()
            if replica is None:
                return
            arrival, duration = queue.popleft()
            self._dispatch(replica, now, arrival, duration)

    def _expire(self, now: float) -> None:
        self.queue.popleft()
        self.timed_out += 1  # 504: no replica in activationTimeout
        self.waits.append(self.activation_timeout)
        self.waited += 1
        self.stats.request_out(now)

    def _sample(self, second: int) -> None:
        scaler = self.scaler
        self.rows.append(
            Row(second, scaler.desired, self.fleet.ready_count, scaler.stable, scaler.panic, scaler.panicking, len(self.queue))
        )

    def summary(self) -> dict[str, Any]:
        """The figures of the run (call after ``run``)."""
        requests = len(self.trace)
        waits = sorted(self.waits)
        rows = self.rows
        return {
            "requests": requests,
            "replica_seconds": round(self.fleet.replica_seconds, 3),
            "waited_share": round(self.waited / requests, 6) if requests else 0.0,
            "wait_p50_s": _percentile(waits, 0.50),
            "wait_p95_s": _percentile(waits, 0.95),
            "wait_p99_s": _percentile(waits, 0.99),
            "wait_max_s": round(waits[-1], 6) if waits else 0.0,
            "rejected": self.rejected,
            "timed_out": self.timed_out,
            "seconds": self.trace.seconds,
            "max_desired": max((row.desired for row in rows), default=0),
            "max_ready": max((row.ready for row in rows), default=0),
            "max_queued": self.max_queued,
            "panic_seconds": sum(1 for row in rows if row.panicking),
            "scale_changes": self.fleet.changes,
        }


def _percentile(ordered: array[float] | list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of all values at or below it; 0 when there are none."""
    if not ordered:
        return 0.0
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 6)
