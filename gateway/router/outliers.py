"""Passive outlier ejection: a replica that refused a connection or dropped a request leaves rotation
until it accepts a TCP connection again, tried with a doubling back-off (0.1 s up to 2 s).

Nothing here runs per request: an ejection starts one task, which ends when the replica is back or
leaves the revision's endpoint set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.router.throttler import Throttler
from gateway.types import Endpoint, RevisionKey

log = logging.getLogger(__name__)

FIRST_DELAY = 0.1  # seconds before the first connection attempt; doubled after each failure
MAX_DELAY = 2.0
CONNECT_TIMEOUT = 1.0


async def accepts_connections(endpoint: Endpoint) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(endpoint.host, endpoint.port), CONNECT_TIMEOUT)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


class Ejections:
    """One revision's ejected replicas, each with the task that waits for it to come back."""

    __slots__ = ("key", "throttler", "_returns", "_sleep", "_accepts")

    def __init__(
        self,
        key: RevisionKey,
        throttler: Throttler,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        accepts: Callable[[Endpoint], Awaitable[bool]] = accepts_connections,
    ) -> None:
        self.key = key
        self.throttler = throttler
        self._returns: dict[Endpoint, asyncio.Task[None]] = {}
        self._sleep = sleep
        self._accepts = accepts

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._returns

    def eject(self, endpoint: Endpoint) -> None:
        """Take a failing replica out of rotation until it accepts connections again (once per failure spell)."""
        if endpoint not in self.throttler.trackers or endpoint in self._returns:
            return
        log.warning("%s: replica %s failed; skipping it until it accepts connections again", self.key, endpoint)
        self.throttler.mark_down(endpoint)
        self._returns[endpoint] = asyncio.get_running_loop().create_task(self._readmit_when_back(endpoint))

    def forget(self, endpoint: Endpoint) -> None:
        """The replica left the endpoint set: stop waiting for it."""
        task = self._returns.pop(endpoint, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        for task in self._returns.values():
            task.cancel()
        self._returns.clear()

    async def _readmit_when_back(self, endpoint: Endpoint) -> None:
        delay = FIRST_DELAY
        await self._sleep(delay)
        while not await self._accepts(endpoint):
            delay = min(delay * 2, MAX_DELAY)
            await self._sleep(delay)
        self._returns.pop(endpoint, None)
        log.info("%s: replica %s answers again", self.key, endpoint)
        self.throttler.mark_up(endpoint)
