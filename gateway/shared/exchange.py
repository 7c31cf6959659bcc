"""Per-second stats between instances: what this instance recorded goes out, what others recorded comes in.

An instance's seconds are stamped in its own monotonic clock; on the wire they are stamped in Redis's clock
(``stamp + offset``), and the receiver maps them back into its own monotonic clock the same way. Each instance
measures its offset to Redis's clock on every round trip (``ServerClock``: the server time the heartbeat
script read, against the midpoint of the round trip, keeping the sample with the shortest round trip), so
instances whose wall clocks disagree by any amount still add each other's seconds into the same buckets.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Container, Mapping

from gateway.autoscale.stats import RevisionStats, Second
from gateway.shared.keys import decode_key, encode_key
from gateway.types import RevisionKey

Batch = dict[RevisionKey, list[Second]]
MAX_SECONDS = 600  # per revision per entry: anything more is not from a gateway
MAX_CONCURRENCY = 1e6  # a second's average in flight on one instance: above it, not from a gateway
MAX_REQUESTS = 1e7  # requests in one second on one instance
log = logging.getLogger(__name__)

SKEW = 2  # seconds a stamp may be ahead of this clock (clocks a second apart, a second not yet finished here)


class StatsOutbox:
    """The StatsSink of this instance: the revisions with seconds to publish (O(active), never O(revisions))."""

    def __init__(self) -> None:
        self._active: dict[int, RevisionStats] = {}

    def activate(self, stats: RevisionStats) -> None:
        self._active[id(stats)] = stats

    def __len__(self) -> int:
        return len(self._active)

    def collect(self, now: float) -> Batch:
        """Every active revision's finished seconds; revisions gone idle leave the active set."""
        batch: Batch = {}
        for ident, stats in list(self._active.items()):
            seconds = stats.take(now)
            if seconds and isinstance(stats.label, RevisionKey):
                batch[stats.label] = seconds
            if not stats.listed:
                del self._active[ident]
        return batch


SAMPLE_AGE = 30.0  # seconds a shortest-round-trip sample is kept before any newer one may replace it (drift)
STEADY = 0.05  # seconds the offset may wander before it is moved (consecutive seconds stay consecutive)
WALL_OFF = 1.0  # seconds this machine's wall clock may be off Redis's before it is said


class ServerClock:
    """The offset from this process's monotonic clock to Redis's clock, measured on every round trip."""

    def __init__(self, clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self._clock = clock
        self._wall = wall
        self.offset = wall() - clock()  # a guess until the first round trip (stamps go out only after one)
        self.measured = False
        self._best: tuple[float, float, float] | None = None  # (round trip, offset, when)
        self._warned = False

    def sample(self, sent: float, received: float, server: float) -> None:
        """A round trip sent at `sent`, answered at `received` (this clock) carried Redis's time `server` (s)."""
        rtt = max(received - sent, 0.0)
        estimate = server - (sent + received) / 2
        best = self._best
        if best is None or rtt <= best[0] + 0.001 or received - best[2] > SAMPLE_AGE:
            self._best = best = (rtt, estimate, received)
        if not self.measured or abs(best[1] - self.offset) > STEADY:
            self.offset, self.measured = best[1], True
        off = self._wall() - (received + self.offset)
        if abs(off) > WALL_OFF + rtt and not self._warned:
            self._warned = True
            log.warning(
                "this machine's wall clock is %+.1f s off the shared state's (Redis's) clock; stats are stamped in "
                "Redis's clock, so they still add up, but the clocks should be synchronised (NTP)",
                off,
            )


def encode(batch: Batch, offset: float) -> str:
    return json.dumps(
        {
            encode_key(key): [[round(stamp + offset, 3), round(c, 6), n] for stamp, c, n in seconds]
            for key, seconds in batch.items()
        },
        separators=(",", ":"),
    )


def decode(payload: str | bytes, offset: float, now: float | None = None, window: float = 3600.0) -> Batch:
    """The seconds of another instance's entry, stamped in this process's clock; malformed parts are skipped,
    and so is a second stamped more than SKEW seconds after `now` or more than `window` before it (one such
    second would move a window's newest bucket into the future and void every second recorded after it)."""
    try:
        raw = json.loads(payload)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    batch: Batch = {}
    for name, seconds in raw.items():
        key = decode_key(name) if isinstance(name, str) else None
        if key is None or not isinstance(seconds, list):
            continue
        good = [_second(item, offset) for item in seconds[:MAX_SECONDS]]
        batch[key] = [second for second in good if second is not None and _timely(second[0], now, window)]
    return batch


def _timely(stamp: int, now: float | None, window: float) -> bool:
    return now is None or now - window <= stamp <= now + SKEW


def _second(item: object, offset: float) -> Second | None:
    if not isinstance(item, list) or len(item) != 3:
        return None
    stamp, concurrency, requests = item
    numbers = (stamp, concurrency, requests)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0 for x in numbers):
        return None
    if concurrency > MAX_CONCURRENCY or requests > MAX_REQUESTS or stamp > 1e11:
        return None
    return round(stamp - offset), float(concurrency), float(requests)


def ingest(
    batch: Batch,
    stats_of: Mapping[RevisionKey, RevisionStats] | Callable[[RevisionKey], RevisionStats | None],
    source: str | None = None,
    live: Container[str] = (),
) -> int:
    """Add another instance's seconds to this instance's windows; returns how many seconds were added. With the
    `source` instance's name and the instances `live` now, its last second stands in for those not in yet."""
    added = 0
    for key, seconds in batch.items():
        stats = stats_of.get(key) if isinstance(stats_of, Mapping) else stats_of(key)
        if stats is None:
            continue  # a revision this instance does not have (yet): a reload on its way
        for stamp, concurrency, requests in seconds:
            stats.record_remote(stamp, concurrency, requests, source, live)
            added += 1
    return added
