"""Per-revision state the data plane keeps across reloads: throttler, counters, hooks to the control plane."""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.router.outliers import Ejections
from gateway.router.throttler import Throttler
from gateway.types import Endpoint, EndpointSet, RevisionKey

log = logging.getLogger(__name__)

REPORT_EVERY = 10.0  # seconds between two warnings about one revision's failed requests

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
COLD_START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class ConcurrencyRecorder(Protocol):
    def request_in(self, now: float) -> None: ...
    def request_out(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RevisionSettings:
    """How the data plane treats one revision's requests (from its spec and the gateway's settings)."""

    container_concurrency: int  # 0 = unlimited
    queue_depth: int
    scalable: bool  # False: nothing scales it up, so a request never waits for a replica to appear
    request_timeout: float
    activation_timeout: float


@dataclass(frozen=True, slots=True)
class RevisionHooks:
    """How a revision's requests reach the control plane; every hook is optional."""

    stats: ConcurrencyRecorder | None = None  # the autoscaler's in/out counter
    poke: Callable[[], None] | None = None  # a request found no replica: ask the autoscaler at once
    on_endpoint_dropped: Callable[[Endpoint], None] | None = None  # an endpoint left the set (close its pool)
    # (state, message) of a revision from the backend, read only when a request finds no replica.
    backend_state: Callable[[RevisionKey], tuple[str, str | None]] | None = None


NO_HOOKS = RevisionHooks()


class Histogram:
    """A lock-free histogram: plain lists updated on the event loop, read at scrape time."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


class RevisionRuntime:
    """Everything the request path touches for one revision, bound once (no label lookups per request).

    The settings and hooks are copied to plain attributes (`scalable`, `stats`, `poke`, ...): the
    request path reads those, one attribute each.
    """

    __slots__ = (
        "key",
        "service_label",
        "revision_label",
        "header",
        "throttler",
        "settings",
        "hooks",
        "scalable",
        "request_timeout",
        "activation_timeout",
        "codes",
        "durations",
        "cold_starts",
        "stats",
        "poke",
        "on_endpoint_dropped",
        "backend_state",
        "_ejections",
        "_reported_at",
        "_unreported",
    )

    def __init__(self, key: RevisionKey, settings: RevisionSettings, hooks: RevisionHooks = NO_HOOKS) -> None:
        self.key = key
        self.service_label = key.service
        self.revision_label = key.name
        self.header = b"x-gateway-revision: " + key.name.encode() + b"\r\n"
        self.throttler = Throttler(settings.container_concurrency, settings.queue_depth)
        self.codes: dict[int, int] = {}
        # Made on the first request: most of 10,000 revisions may never see one.
        self.durations: Histogram | None = None
        self.cold_starts: Histogram | None = None
        self._ejections: Ejections | None = None  # made on the first failure
        self._reported_at = float("-inf")
        self._unreported = 0
        self.configure(settings, hooks)

    def configure(self, settings: RevisionSettings, hooks: RevisionHooks) -> None:
        """Take new settings and hooks (a reload); counters, queue and endpoints are kept."""
        self.settings = settings
        self.throttler.set_concurrency(settings.container_concurrency)
        self.throttler.queue_depth = settings.queue_depth
        self.scalable = settings.scalable
        self.request_timeout = settings.request_timeout
        self.activation_timeout = settings.activation_timeout
        self.hooks = hooks
        self.stats: ConcurrencyRecorder | None = hooks.stats
        self.poke: Callable[[], None] | None = hooks.poke
        self.on_endpoint_dropped: Callable[[Endpoint], None] | None = hooks.on_endpoint_dropped
        self.backend_state: Callable[[RevisionKey], tuple[str, str | None]] | None = hooks.backend_state

    def report(self, status: int, message: str) -> None:
        """Log a failed request (502/503/504) as a warning, at most once per REPORT_EVERY per revision."""
        now = time.monotonic()
        if now - self._reported_at < REPORT_EVERY:
            self._unreported += 1
            return
        more = f" (and {self._unreported} more failed requests since the last report)" if self._unreported else ""
        log.warning("%s: %d %s%s", self.key, status, message, more)
        self._reported_at = now
        self._unreported = 0

    def record(self, status: int, duration: float) -> None:
        codes = self.codes
        codes[status] = codes.get(status, 0) + 1
        durations = self.durations
        if durations is None:
            durations = self.durations = Histogram(DURATION_BUCKETS)
        durations.counts[bisect_left(DURATION_BUCKETS, duration)] += 1  # Histogram.observe, inline: once per request
        durations.sum += duration
        durations.count += 1

    def record_cold_start(self, waited: float) -> None:
        if self.cold_starts is None:
            self.cold_starts = Histogram(COLD_START_BUCKETS)
        self.cold_starts.observe(waited)

    def set_share(self, index: int, count: int, also: tuple[tuple[int, int], ...] = ()) -> None:
        """This data plane is number ``index`` of ``count`` sharing the replicas (see router/shares.py and
        Throttler.set_share for ``also``)."""
        self.throttler.set_share(index, count, also)

    def set_endpoints(self, endpoints: EndpointSet) -> None:
        gone = set(self.throttler.trackers) - endpoints
        self.throttler.update_endpoints(endpoints)
        for endpoint in gone:
            if self._ejections is not None:
                self._ejections.forget(endpoint)
            if self.on_endpoint_dropped is not None:
                self.on_endpoint_dropped(endpoint)

    def endpoint_failed(self, endpoint: Endpoint) -> None:
        """A replica refused a connection or dropped a request: out of rotation until it accepts one again."""
        if self._ejections is None:
            self._ejections = Ejections(self.key, self.throttler)
        self._ejections.eject(endpoint)

    def busy(self) -> bool:
        """Requests still in flight or waiting on this revision."""
        throttler = self.throttler
        return bool(throttler.queued or throttler.retired or any(t.in_flight for t in throttler.trackers.values()))

    def close(self) -> None:
        if self._ejections is not None:
            self._ejections.close()
        self._ejections = None
