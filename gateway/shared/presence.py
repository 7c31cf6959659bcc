"""Whether the other instances count this one: joined once (readiness), and held while it may have been dropped.

An instance that did not run for longer than the member TTL (SIGSTOP, a stalled VM: by its own clock no
round trip was tried for that long), or whose heartbeat finds its member entry gone, may have been dropped
by the others, who then took its slots of each replica once its share had surely run out. It is ``held``
(its share is nothing, its requests wait in the queue) until they have all seen it back: two beats' time
after its first answered heartbeat. A watchdog timer notices a gap at once: a timer overdue at resume runs
in the event loop's first round, before a request that arrived meanwhile reaches admission (that takes a
task's first step, a round later). Redis unreachable is no gap (round trips are still tried); cut off,
nobody can see it back, so it serves with the share it had (no request fails because Redis is down).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Presence:
    def __init__(self, clock: Callable[[], float], on_hold: Callable[[bool], None] | None) -> None:
        self._clock = clock
        self._on_hold = on_hold
        self.joined = asyncio.Event()  # the membership has seen this instance for a whole round; once, for good
        self.held = False  # may have been dropped from the membership: no slots until the others have seen it back
        self.first_beat: float | None = None  # the first answered heartbeat since it (re)joined
        self.member = False  # a heartbeat was answered: its entry was there (a later one finding it gone: dropped)
        self.last_try: float | None = None  # when the last round trip was tried (answered or not)
        self._watch: asyncio.TimerHandle | None = None

    def watch(self, period: float, member_ttl: float) -> None:
        """Check for a gap every `period` seconds (a timer: it runs even while a round trip waits on Redis)."""
        self.check_gap(member_ttl)
        self._watch = asyncio.get_running_loop().call_later(period, self.watch, period, member_ttl)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def trying(self, member_ttl: float) -> None:
        """A round trip starts now."""
        self.check_gap(member_ttl)
        self.last_try = self._clock()

    def check_gap(self, member_ttl: float) -> None:
        """Hold if no round trip was tried for longer than the member TTL: its entry may have expired meanwhile."""
        now = self._clock()
        if self.last_try is not None and now - self.last_try > member_ttl:
            self.hold(f"no round trip for {now - self.last_try:.1f} s (paused?), over the member TTL of {member_ttl:g} s")
            self.last_try = now  # said once per gap

    def beat(self, now: float, present: bool, interval: float) -> None:
        """A heartbeat sent at `now` was answered; `present`: its member entry was still there."""
        if not present and self.member:
            self.hold("its entry in the membership had expired")
        self.member = True
        if self.first_beat is None:
            self.first_beat = now
            return
        if not self.joined.is_set() and now - self.first_beat >= interval:
            self.joined.set()  # every other instance has made a round trip since this one first showed
        if self.held and now - self.first_beat >= 2 * interval:
            self._set(False)  # two beats' time: every other instance's beat has come since, however their loops drift

    def hold(self, why: str) -> None:
        self.first_beat = None  # seen again once the others have beaten since the next answered heartbeat
        if not self.held:
            log.warning("shared state: %s; the others may have dropped this instance: holding no slots until they see it", why)
            self._set(True)

    def lost(self) -> None:
        """Redis is unreachable: nobody can see this instance back, serve with the share it had."""
        if self.held:
            log.warning("shared state unreachable while rejoining: serving with the share this instance had")
            self._set(False)

    def _set(self, held: bool) -> None:
        self.held = held
        if self._on_hold is not None:
            self._on_hold(held)
