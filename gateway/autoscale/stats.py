"""Per-revision concurrency and request-rate measurement (KPA.md §1, §2).

The gateway sees every request itself, so it plays both queue-proxy and activator: it keeps the
in-flight count, integrates it over time, and every whole second records that second's
time-weighted average concurrency and its request count into stable- and panic-window averages.

Recording rule, in Knative's terms (the collector records what scrapes and activators report):

* A finished second with any activity (in-flight time or a request) is always recorded.
* An idle second is recorded as 0 while the revision has ready replicas (Knative scrapes idle
  pods and records their zeros); with no replicas nothing is recorded, so after a window of
  silence the window restarts and the first request after it counts in full. Until the scaler
  reports a ready count, idle seconds are recorded once any data has been recorded.
* The first request after a quiet second while no replicas are known to be ready records an
  immediate concurrency of 1 and one request, as Knative's activator does on a revision's first
  request; the next second's figures are reduced by those again. This is what lets a poke from
  zero see data at once.
* A second's figures are stamped with the second in which they are complete (``s + 1``), as
  Knative stamps a report with its arrival time; so a decider reading at any time in second
  ``s + 1`` sees whole windows that end with second ``s``.

Shared across data planes (several gateway instances, or worker processes), each plane's stats keep an
*outbox*: the seconds it recorded itself, which a publisher ships once a second (``take``), and the
deciding instance adds every other plane's seconds to its windows with ``record_remote`` (Knative's
collector adds every activator's and pod's report into the same buckets the same way).

Another plane's newest seconds arrive late (a second of batching and a round trip), so the newest part of
each window would hold only this plane's load. A source's seconds not in yet count as its last reported
second carried forward (``CARRY`` seconds at most, only while the source is live): placeholders put in the
buckets when the windows are read, replaced by the real second when it arrives, and taken out again when it
does not come (the source went idle) or the source left. In steady state the windows then hold exactly
the revision-wide load; a plane with no remote sources never pays for any of this.

Idle stretches are caught up lazily: only the newest window's worth of seconds is written, so one
catch-up costs O(window) and a request that follows another within the same or next second O(1).
"""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Protocol

from gateway.autoscale.window import WindowAverage

Second = tuple[int, float, float]
"""One recorded second: (stamp, average concurrency, requests)."""

CARRY = 2  # seconds a live source's last reported second stands in for its seconds not in yet


class Remote:
    """What one other plane reported for a revision: its newest second and the placeholders standing in after it."""

    __slots__ = ("last", "concurrency", "requests", "carried")

    def __init__(self) -> None:
        self.last = -(1 << 62)  # stamp of its newest reported second
        self.concurrency = 0.0
        self.requests = 0.0
        self.carried: dict[int, tuple[float, float]] = {}  # stamp -> placeholder in the buckets


class StatsSink(Protocol):
    """Where shared stats announce that they have (or will have) seconds to publish."""

    def activate(self, stats: RevisionStats) -> None: ...


def panic_window_seconds(stable_window: float, panic_window_percentage: float) -> float:
    """``max(1, round(stable * pct / 100))`` seconds, rounding halves away from zero like Go."""
    # As Knative: a Duration in whole nanoseconds, then Round(time.Second).
    nanos = int(stable_window * 1e9 * panic_window_percentage / 100.0)
    return float(max(1, (nanos + 500_000_000) // 1_000_000_000))


class RevisionStats:
    """In-flight count and windowed averages of one revision; fed by the data plane."""

    def __init__(self, stable_window: float, panic_window: float) -> None:
        self._stable_window = stable_window
        self._panic_window = panic_window
        self._stable_concurrency = WindowAverage(stable_window)
        self._panic_concurrency = WindowAverage(panic_window)
        self._stable_rate = WindowAverage(stable_window)
        self._panic_rate = WindowAverage(panic_window)
        self._in_flight = 0
        self._sec: int | None = None  # the second being accumulated
        self._mark = 0.0  # when the accumulators were last brought up to date
        self._area = 0.0
        self._used = 0.0
        self._count = 0
        self._owe = False  # an immediate stat was recorded in this second
        self._quiet = True  # the last finished second had no concurrency
        self._has_data = False
        self.has_replicas: bool | None = None  # set by the scaler; None = not known yet
        # Shared across data planes (``share``): the seconds recorded here and not yet published.
        self.outbox: list[Second] | None = None
        self.sink: StatsSink | None = None
        self.listed = False  # the sink knows this revision is active
        self.label: object = None  # what the sink calls this revision
        self._remote: dict[str, Remote] = {}  # other planes that reported with a source name
        self._live: Container[str] = ()  # the sources alive now (carried forward only while in it)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def stable_window(self) -> float:
        return self._stable_window

    @property
    def panic_window(self) -> float:
        return self._panic_window

    def request_in(self, now: float) -> None:
        """A request entered the revision (queued or proxied)."""
        self._advance(now)
        if self._quiet and self.has_replicas is not True:
            self._quiet = False
            self._owe = True
            self._record(now, 1.0, 1.0)
        self._in_flight += 1
        self._count += 1
        if not self.listed and self.sink is not None:
            self.listed = True
            self.sink.activate(self)

    def request_out(self, now: float) -> None:
        """A request left the revision (answered, failed or abandoned)."""
        self._advance(now)
        if self._in_flight > 0:
            self._in_flight -= 1

    def observe(self, now: float, ready: int | None = None) -> None:
        """Record every second finished by ``now``; ``ready`` tells whether idle seconds count."""
        if ready is not None:
            self.has_replicas = ready > 0
        self._advance(now)

    def concurrency(self, now: float) -> tuple[float, float] | None:
        """(stable, panic) average concurrency at ``now``, or None when there is no data."""
        self._advance(now)
        if self._remote:
            self._carry(now)
        if self._stable_concurrency.is_empty(now):
            return None
        return self._stable_concurrency.average(now), self._panic_concurrency.average(now)

    def rps(self, now: float) -> tuple[float, float] | None:
        """(stable, panic) average requests per second at ``now``, or None when there is no data."""
        self._advance(now)
        if self._remote:
            self._carry(now)
        if self._stable_rate.is_empty(now):
            return None
        return self._stable_rate.average(now), self._panic_rate.average(now)

    def share(self, sink: StatsSink, label: object) -> None:
        """Keep an outbox of the seconds recorded here, announced to ``sink`` (once per active stretch)."""
        if self.outbox is None:
            self.outbox = []
        self.sink = sink
        self.label = label
        if self.in_flight and not self.listed:
            self.listed = True
            sink.activate(self)

    def take(self, now: float) -> list[Second]:
        """The seconds recorded here since the last take (finished up to ``now``), idle ones left out.

        ``listed`` turns False once nothing is in flight and nothing is left: the sink drops the revision
        until its next request."""
        self._advance(now)
        out = self.outbox or []
        if self.outbox is not None:
            self.outbox = []
        out = [second for second in out if second[1] or second[2]]
        if self._in_flight == 0 and not self._owe:
            self.listed = False
        return out

    def record_remote(
        self, stamp: float, concurrency: float, requests: float, source: str | None = None, live: Container[str] = ()
    ) -> None:
        """Add another data plane's second (stamped in this plane's clock) to the windows. With a ``source`` (and
        the sources alive now, ``live``), its newest second stands in for the ones not in yet (see above)."""
        self._has_data = True
        if source is None:
            self._windows(stamp, concurrency, requests)
            return
        self._live = live
        remote = self._remote.get(source)
        if remote is None:
            remote = self._remote[source] = Remote()
        sec = math.floor(stamp)
        placeholder = remote.carried.pop(sec, None)
        if placeholder is None:
            self._windows(stamp, concurrency, requests)
        else:
            self._windows(stamp, concurrency - placeholder[0], requests - placeholder[1])
        if sec >= remote.last:
            remote.last, remote.concurrency, remote.requests = sec, concurrency, requests

    def _carry(self, now: float) -> None:
        """Stand in for each live source's seconds not in yet; take placeholders out that no second replaced."""
        newest = math.floor(now)
        for source, remote in list(self._remote.items()):
            live = source in self._live
            if remote.carried and (not live or newest - remote.last > CARRY + 1):
                for stamp, (concurrency, requests) in remote.carried.items():
                    self._windows(stamp, -concurrency, -requests)  # it went idle or left: those seconds were not its
                remote.carried.clear()
            if not live:
                del self._remote[source]
                continue
            if newest - remote.last > CARRY:
                continue
            for stamp in range(remote.last + 1, newest + 1):
                if stamp not in remote.carried:
                    remote.carried[stamp] = (remote.concurrency, remote.requests)
                    self._windows(stamp, remote.concurrency, remote.requests)

    def reconfigure(self, stable_window: float, panic_window: float) -> None:
        """Change the window lengths, keeping recorded data where it is still valid."""
        now = self._mark
        for window, length in (
            (self._stable_concurrency, stable_window),
            (self._stable_rate, stable_window),
            (self._panic_concurrency, panic_window),
            (self._panic_rate, panic_window),
        ):
            window.resize(length, now)
        self._stable_window = stable_window
        self._panic_window = panic_window

    def _advance(self, now: float) -> None:
        sec = math.floor(now)
        current = self._sec
        if current is None:
            self._sec = sec
            self._mark = now
            return
        in_flight = self._in_flight
        if sec <= current:
            dt = now - self._mark
            if dt > 0:
                self._area += in_flight * dt
                self._used += dt
                self._mark = now
            return
        dt = current + 1 - self._mark
        if dt > 0:
            self._area += in_flight * dt
            self._used += dt
        self._finish(current + 1)
        gap = sec - current - 1
        if gap > 0:
            self._fill(current + 2, sec, float(in_flight))
        self._sec = sec
        self._mark = now
        self._used = now - sec
        self._area = in_flight * self._used
        self._count = 0

    def _records_idle(self) -> bool:
        return self.has_replicas is True or (self.has_replicas is None and self._has_data)

    def _finish(self, stamp: int) -> None:
        avg = self._area / self._used if self._used > 0 else 0.0
        count = float(self._count)
        active = self._area > 0 or self._count > 0
        self._quiet = avg == 0
        if self._owe:
            self._owe = False
            avg = max(avg - 1.0, 0.0)
            count = max(count - 1.0, 0.0)
        if active or self._records_idle():
            self._record(stamp, avg, count)

    def _fill(self, first: int, last: int, value: float) -> None:
        """Seconds stamped ``first..last`` passed with ``value`` in flight and no events."""
        self._quiet = value == 0
        if value == 0 and not self._records_idle():
            return
        first = max(first, last - math.ceil(max(self._stable_window, self._panic_window)) + 1)
        for stamp in range(first, last + 1):
            self._record(stamp, value, 0.0)

    def _record(self, stamp: float, concurrency: float, requests: float) -> None:
        self._has_data = True
        if self.outbox is not None:
            self.outbox.append((math.floor(stamp), concurrency, requests))
        self._windows(stamp, concurrency, requests)

    def _windows(self, stamp: float, concurrency: float, requests: float) -> None:
        self._stable_concurrency.record(stamp, concurrency)
        self._panic_concurrency.record(stamp, concurrency)
        self._stable_rate.record(stamp, requests)
        self._panic_rate.record(stamp, requests)
