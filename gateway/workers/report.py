"""What a worker tells the supervisor once a second: stats seconds, load, replica in-flight counts, counters.

Work per report is O(active revisions) for stats and load (the sink lists a revision from its first
request until its seconds are shipped and nothing is in flight), and one pass over the runtimes for
the counters, sending only those that changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.autoscale.stats import RevisionStats
from gateway.router.revision import RevisionRuntime
from gateway.router.server import ProxyServer
from gateway.types import Endpoint, RevisionKey
from gateway.workers.protocol import Message, endpoint_out, key_out


class Publisher:
    """The workers' StatsSink: keeps the revisions with seconds to ship, and builds each report."""

    def __init__(self, runtimes: Mapping[RevisionKey, RevisionRuntime], proxy: ProxyServer) -> None:
        # The revisions with seconds to ship, with their runtime as it was when they became active: a
        # reload that removes one retires its runtime, whose requests still run (and still count).
        self.active: dict[RevisionKey, tuple[RevisionStats, RevisionRuntime | None]] = {}
        self._runtimes = runtimes
        self._proxy = proxy
        self._sent: dict[RevisionKey, tuple[int, int]] = {}  # (requests, cold starts) last sent
        self.poked: set[RevisionKey] = set()  # poked since the last report: one poke per revision per second
        self.send: Callable[[Message], None] = lambda message: None

    # -- StatsSink -------------------------------------------------------------------------------
    def activate(self, stats: RevisionStats) -> None:
        if isinstance(stats.label, RevisionKey):
            self.active[stats.label] = (stats, self._runtimes.get(stats.label))

    # -- request path: a request found its revision at zero ---------------------------------------
    def poke(self, key: RevisionKey, now: float) -> None:
        if key in self.poked:
            return
        self.poked.add(key)
        entry = self.active.get(key)
        seconds = entry[0].take(now) if entry is not None else []
        self.send({"t": "poke", "key": key_out(key), "stats": seconds})

    # -- once a second ---------------------------------------------------------------------------
    def report(self, now: float) -> Message:
        self.poked.clear()
        stats_items: list[object] = []
        load: list[object] = []
        replicas: dict[Endpoint, int] = {}
        for key, (stats, runtime) in list(self.active.items()):
            seconds = stats.take(now)
            if seconds:
                stats_items.append([key_out(key), seconds])
            if not stats.listed:
                del self.active[key]
            if runtime is None:
                continue
            throttler = runtime.throttler
            per_replica = [[endpoint_out(t.endpoint), t.in_flight] for t in throttler.trackers.values() if t.in_flight]
            if per_replica or throttler.queued:
                load.append([key_out(key), throttler.queued, per_replica])
            for tracker in (*throttler.trackers.values(), *throttler.retired.values()):
                if tracker.in_flight:
                    replicas[tracker.endpoint] = replicas.get(tracker.endpoint, 0) + tracker.in_flight
        view = self._proxy.connections_view()
        return {
            "t": "report",
            "stats": stats_items,
            "load": load,
            "replicas": [[endpoint_out(e), n] for e, n in replicas.items()],
            "counters": self.counters(),
            "unrouted": {str(code): n for code, n in self._proxy.unrouted.items()},
            "connections": [view.open, view.limit, view.limit_reached, view.accept_shortages],
        }

    def counters(self) -> list[object]:
        """Every revision's cumulative counters that changed since the last report."""
        out: list[object] = []
        sent = self._sent
        for key, runtime in self._runtimes.items():
            durations = runtime.durations
            if durations is None:
                continue
            cold = runtime.cold_starts
            mark = (durations.count, cold.count if cold is not None else 0)
            if sent.get(key) == mark:
                continue
            sent[key] = mark
            out.append(
                [
                    key_out(key),
                    {str(code): n for code, n in runtime.codes.items()},
                    durations.counts,
                    durations.sum,
                    cold.counts if cold is not None else None,
                    cold.sum if cold is not None else 0.0,
                ]
            )
        return out

    def replicas_of(self, key: RevisionKey, endpoints: set[Endpoint]) -> list[object]:
        """In-flight counts on `endpoints`, which just left revision `key`'s ready set."""
        entry = self.active.get(key)
        runtime = entry[1] if entry is not None and entry[1] is not None else self._runtimes.get(key)
        return [[endpoint_out(e), runtime.throttler.in_flight(e) if runtime is not None else 0] for e in endpoints]
