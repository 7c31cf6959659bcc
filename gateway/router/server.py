"""The data-plane listener: accepts connections, owns the route table, pools and timeouts."""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.config.model import ProxySettings
from gateway.router.client import ClientConnection, route_and_build
from gateway.router.cycle import RequestCycle
from gateway.router.pools import Pools
from gateway.router.routes import RouteTable

log = logging.getLogger(__name__)


class ProxyServer:
    """Shared context of every client connection.

    Timeouts are applied by one sweep over the open connections a few times a second instead of a
    timer per request: the request path arms nothing.
    """

    def __init__(self, routes: RouteTable, settings: ProxySettings) -> None:
        self.routes = routes
        self.settings = settings
        self.pools = Pools(keepalive=settings.upstream_keepalive_timeout, connect_timeout=settings.connect_timeout)
        self.connections: set[ClientConnection] = set()
        self.unrouted: dict[int, int] = {}  # status -> count of requests no revision answered
        self.draining = False
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def configure(self, settings: ProxySettings) -> None:
        """New limits and timeouts (reload); connections read them on their next check."""
        self.settings = settings
        self.pools.keepalive = settings.upstream_keepalive_timeout
        self.pools.connect_timeout = settings.connect_timeout

    def make_cycle(
        self, conn: ClientConnection, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> RequestCycle:
        return route_and_build(self, conn, method, url, headers, keep_alive)

    def swap_routes(self, routes: RouteTable) -> None:
        """Atomic: requests already routed keep the revision they were given."""
        self.routes = routes

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self), host or None, port, backlog=2048, reuse_address=True
        )
        self._sweeper = loop.create_task(self._sweep_forever())

    @property
    def sockets(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [s.getsockname()[:2] for s in self._server.sockets]

    def _sweep_interval(self) -> float:
        s = self.settings
        shortest = min(s.header_timeout, s.keepalive_timeout, s.response_start_timeout, s.upstream_keepalive_timeout)
        return max(0.02, min(0.5, shortest / 4))

    async def _sweep_forever(self) -> None:
        last_pool_sweep = 0.0
        while True:
            await asyncio.sleep(self._sweep_interval())
            now = time.monotonic()
            for conn in list(self.connections):
                try:
                    conn.expire(now)
                except Exception:  # never let one connection stop the sweeper
                    log.exception("timeout sweep failed for a connection")
                    conn.abort()
            if now - last_pool_sweep >= 1.0:
                self.pools.sweep()
                last_pool_sweep = now

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish (at most `timeout` s), then close all."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.cycle is None and conn.parsing is None and not conn.in_head:
                conn.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(c.cycle is not None or c.parsing is not None for c in self.connections):
            await asyncio.sleep(0.05)
        await self.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        self.pools.close()
