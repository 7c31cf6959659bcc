"""The dashboard's memory: per revision, the last 15 minutes of its scale and load, and its scale events.

The autoscaler hands every revision to :meth:`History.sample` on each of its ticks (it already visits every
revision then); nothing here runs on the request path. A sample reads what the control plane and the data
plane already keep: the scaler's figures, the throttler's queue and in-flight counts, the revision's
response-code counters and its duration histogram (rates and p50/p99 come from their deltas).

Cheap by construction: a revision gets a :class:`Track` only once something happens to it (a replica, a
request, a queue); a sample is stored only when it differs from the one before (the page draws values as
steps); a track idle for a whole window is dropped again, so 10,000 revisions at zero cost nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gateway.router.revision import RevisionRuntime
from gateway.types import RevisionKey

WINDOW = 900.0  # seconds of history kept per revision (the page's chart)
RATE_WINDOW = 10.0  # seconds over which the table's rates and latency quantiles are taken
MAX_SAMPLES = 3600  # per revision, whatever the tick interval (a 0.25 s tick changing every time)
MAX_EVENTS = 100  # scale and panic events kept per revision

COLUMNS = ("time", "desired", "ready", "stable", "panic", "panicking", "queued", "in_flight", "rps", "error_rate", "p50", "p99")

Sample = tuple[
    float, int, int, float | None, float | None, bool, int, int, float | None, float | None, float | None, float | None
]
Event = tuple[float, str, str, str]  # (time, kind: scale | panic, what, why)
Snapshot = tuple[float, int, int, tuple[int, ...]]  # (time, requests, errors, duration bucket counts)


class ScalerFigures(Protocol):
    """What a sample reads from a revision's scaler (gateway.autoscale.revision.RevisionScaler)."""

    @property
    def desired(self) -> int: ...
    @property
    def ready(self) -> int: ...
    @property
    def stable(self) -> float | None: ...
    @property
    def panic(self) -> float | None: ...
    @property
    def panicking(self) -> bool: ...


def quantile(q: float, bounds: tuple[float, ...], counts: tuple[int, ...] | list[int]) -> float | None:
    """The q-quantile of a histogram's bucket counts, interpolated linearly within its bucket (as Prometheus'
    histogram_quantile); None without observations. Past the last bound: that bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    running = 0
    lower = 0.0
    for i, n in enumerate(counts):
        if i >= len(bounds):
            return bounds[-1] if bounds else None
        upper = bounds[i]
        if n > 0 and running + n >= rank:
            return lower + (upper - lower) * (rank - running) / n
        running += n
        lower = upper
    return bounds[-1] if bounds else None


class Track:
    """One revision's history: samples (only changes), recent counter snapshots, events."""

    __slots__ = ("samples", "snapshots", "events")

    def __init__(self) -> None:
        self.samples: deque[Sample] = deque(maxlen=MAX_SAMPLES)
        self.snapshots: deque[Snapshot] = deque(maxlen=MAX_SAMPLES)
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)


def _counters(runtime: RevisionRuntime | None) -> tuple[int, int, tuple[int, ...]]:
    """(requests answered, of them 5xx, duration bucket counts): every answer is counted in both the codes and
    the duration histogram (RevisionRuntime.record)."""
    if runtime is None or runtime.durations is None:
        return 0, 0, ()
    durations = runtime.durations
    return durations.count, sum(n for code, n in runtime.codes.items() if code >= 500), tuple(durations.counts)


def _prune(rows: deque[Sample] | deque[Snapshot], before: float) -> None:
    """Drop rows older than `before`, keeping the last of them (the value at the window's start)."""
    while len(rows) >= 2 and rows[1][0] <= before:
        rows.popleft()


class History:
    """Every revision's recent history, fed by the autoscaler's ticks (its ``observer``)."""

    def __init__(
        self,
        runtimes: Mapping[RevisionKey, RevisionRuntime],
        *,
        clock: Callable[[], float] = time.time,
        window: float = WINDOW,
    ) -> None:
        self._runtimes = runtimes
        self._clock = clock
        self.window = window
        self.tracks: dict[RevisionKey, Track] = {}
        # Revisions whose track was dropped after a quiet window: their counters then (a request since makes them
        # active again, and its new track's rates start from these). A small tuple each, only for revisions that
        # once had activity; a revision never tracked starts from zero counts.
        self._resting: dict[RevisionKey, Snapshot] = {}
        self._started = clock()

    # -- the autoscaler's observer -----------------------------------------------------------------
    def sample(self, key: RevisionKey, scaler: ScalerFigures, *, ticked: bool = True) -> None:
        """Called on every tick of every revision: store a sample if anything changed (O(1), no allocation
        for a revision that is and was idle). ``ticked=False``: a revision nothing ticks (static endpoints,
        sampled while the page looks at it), whose counters before its first sample are of unknown age."""
        track = self.tracks.get(key)
        runtime = self._runtimes.get(key)
        if track is None and not scaler.desired and not scaler.ready:  # the idle path, inlined: 20,000 revisions a tick
            if runtime is None:
                return
            durations = runtime.durations
            resting = self._resting.get(key) or (None if ticked else self._first_look(key, runtime))
            if not runtime.throttler.queued and (durations is None or durations.count == (resting[1] if resting else 0)):
                return
        now = self._clock()
        requests, errors, counts = _counters(runtime)
        queued, in_flight = _load(runtime)
        if track is None:
            track = self._new_track(key, now, requests, ticked)
        snapshots = track.snapshots
        last = snapshots[-1] if snapshots else None
        if last is None or last[1] != requests:
            snapshots.append((now, requests, errors, counts))
        rps: float | None = 0.0  # nothing answered since the last change
        error_rate = p50 = p99 = None
        if last is not None and requests != last[1]:
            rps, error_rate, p50, p99 = _rates(last, snapshots[-1], runtime)
        row: Sample = (
            now,
            scaler.desired,
            scaler.ready,
            _round(scaler.stable),
            _round(scaler.panic),
            scaler.panicking,
            queued,
            in_flight,
            rps,
            error_rate,
            p50,
            p99,
        )
        samples = track.samples
        if not samples or samples[-1][1:] != row[1:]:
            samples.append(row)
        before = now - self.window
        _prune(samples, before)
        _prune(snapshots, now - RATE_WINDOW)
        if (
            samples[-1][0] <= before
            and not scaler.desired
            and not scaler.ready
            and not queued
            and not in_flight
            and (not track.events or track.events[-1][0] <= before)
        ):
            del self.tracks[key]  # idle for a whole window: back to costing (almost) nothing
            if requests:
                self._resting[key] = (now, requests, errors, counts)

    def _first_look(self, key: RevisionKey, runtime: RevisionRuntime) -> Snapshot:
        """A revision nothing ticks, idle at its first sample: its counts now, where a later burst's rates start."""
        snapshot = self._resting[key] = (self._clock(), *_counters(runtime))
        return snapshot

    def _new_track(self, key: RevisionKey, now: float, requests: int, ticked: bool) -> Track:
        """The counters already include what woke the revision up: its rates start from the counts it last
        rested at (zero if never tracked and ticked since the start), taken as standing until the rate window's
        start at the latest. Never tracked nor ticked: its rates start at this sample, as nothing says when
        its counts came."""
        track = self.tracks[key] = Track()
        rest = self._resting.pop(key, None) or ((self._started, 0, 0, ()) if ticked else None)
        if rest is not None and rest[1] != requests:
            track.snapshots.append((max(rest[0], now - RATE_WINDOW), rest[1], rest[2], rest[3]))
        return track

    def event(self, key: RevisionKey, kind: str, what: str, why: str) -> None:
        """A scale decision sent to the backend, or a panic mode transition (once each, never per tick)."""
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = Track()
        track.events.append((self._clock(), kind, what, why))

    def forget(self, key: RevisionKey) -> None:
        """The revision is gone (a reload removed it)."""
        self.tracks.pop(key, None)
        self._resting.pop(key, None)

    # -- what the admin side reads ---------------------------------------------------------------
    def recent(self, key: RevisionKey) -> dict[str, float | None]:
        """The table's figures: requests per second, error share and p50/p99 latency over the last RATE_WINDOW s."""
        none: dict[str, float | None] = {"rps": None, "error_rate": None, "p50": None, "p99": None}
        track = self.tracks.get(key)
        runtime = self._runtimes.get(key)
        if track is None or not track.snapshots:
            return none
        now = self._clock()
        requests, errors, counts = _counters(runtime)
        first = track.snapshots[0]
        # the counts stood at first's until the next snapshot: the window starts at most RATE_WINDOW ago
        start: Snapshot = (max(first[0], now - RATE_WINDOW), first[1], first[2], first[3])
        rps, error_rate, p50, p99 = _rates(start, (now, requests, errors, counts), runtime)
        return {"rps": rps, "error_rate": error_rate, "p50": p50, "p99": p99}

    def history(self, key: RevisionKey, since: float | None) -> dict[str, Any]:
        """Samples and events after `since` (a time this returned as `now` before), or the whole window."""
        now = self._clock()
        start = now - self.window
        track = self.tracks.get(key)
        rows: list[list[object]] = []
        events: list[dict[str, object]] = []
        if track is not None:
            for sample in track.samples:
                if since is None:
                    rows.append([max(sample[0], start), *sample[1:]])
                elif sample[0] > since:
                    rows.append(list(sample))
            for t, kind, what, why in track.events:
                if t > start and (since is None or t > since):
                    events.append({"time": t, "kind": kind, "what": what, "why": why})
        return {"now": now, "window": self.window, "columns": list(COLUMNS), "rows": rows, "events": events}


def _load(runtime: RevisionRuntime | None) -> tuple[int, int]:
    if runtime is None:
        return 0, 0
    throttler = runtime.throttler
    return throttler.queued, sum(t.in_flight for t in throttler.trackers.values())


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rates(
    old: Snapshot, new: Snapshot, runtime: RevisionRuntime | None
) -> tuple[float | None, float | None, float | None, float | None]:
    dt = new[0] - old[0]
    done = new[1] - old[1]
    if done == 0:
        return 0.0, None, None, None
    if dt <= 0 or done < 0:
        return None, None, None, None
    rps = round(done / dt, 3)
    error_rate = round((new[2] - old[2]) / done, 4)
    bounds = runtime.durations.bounds if runtime is not None and runtime.durations is not None else ()
    delta = [n - (old[3][i] if i < len(old[3]) else 0) for i, n in enumerate(new[3])]
    p50, p99 = quantile(0.5, bounds, delta), quantile(0.99, bounds, delta)
    return rps, error_rate, None if p50 is None else round(p50, 6), None if p99 is None else round(p99, 6)
