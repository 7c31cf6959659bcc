"""The data plane's composition: listener, shared state, the open connections, the timeout sweep, drain."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.config.model import ProxySettings
from gateway.resources import default_max_connections, fd_limit
from gateway.router.client import ClientConnection
from gateway.router.listener import Listener, bind
from gateway.router.phases import CONNECTING, QUEUED
from gateway.router.pools import Pools
from gateway.router.routes import RouteTable
from gateway.router.state import ProxyState
from gateway.router.timeouts import expire_connection, sweep_interval
from gateway.types import ConnectionsView

log = logging.getLogger(__name__)


class ProxyServer:
    """Owns what every client connection shares (`ProxyState`) and the connections themselves."""

    def __init__(
        self,
        routes: RouteTable,
        settings: ProxySettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.state = ProxyState(routes, settings, Pools(settings))
        self._clock = clock  # the timeout sweep's time (connections stamp time.monotonic(); tests shift this clock)
        self._sleep = sleep
        self.connections: set[ClientConnection] = set()
        self._listener: Listener | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._quiet: asyncio.Event | None = None  # set when nothing is in flight any more (while draining)
        self.configure(settings)

    @property
    def routes(self) -> RouteTable:
        return self.state.routes

    @property
    def settings(self) -> ProxySettings:
        return self.state.settings

    @property
    def pools(self) -> Pools:
        return self.state.pools

    @property
    def draining(self) -> bool:
        return self.state.draining

    @property
    def unrouted(self) -> dict[int, int]:
        return self.state.unrouted

    def configure(self, settings: ProxySettings) -> None:
        """New limits and timeouts (reload); connections read them on their next check."""
        state = self.state
        state.settings = settings
        allowed = default_max_connections()
        self.max_connections = settings.max_connections or allowed
        if settings.max_connections > allowed:
            log.warning(
                "spec.proxy.maxConnections is %d but the open-file limit (%d) leaves room for about %d client "
                "connections: past that, accepts wait and connects to replicas fail with 503",
                settings.max_connections,
                fd_limit(),
                allowed,
            )
        state.trusted_networks = [ipaddress.ip_network(cidr) for cidr in settings.trusted_proxies]
        state.pools.configure(settings, max_idle_total=max(16, self.max_connections // 4))
        if self._listener is not None:
            self._listener.limit = self.max_connections
            self._listener.below_limit()

    def reclaim_idle(self, most: int = 32) -> None:
        """At the connection limit: close the keep-alive connections idle longest (as nginx does).

        O(connections), only when the limit is reached. Closing is asynchronous, so the caller
        stops accepting until the connections are gone (`_connection_closed` tells the listener, which resumes).
        """
        idle = [
            c
            for c in self.connections
            if not c.closed and c.cycle is None and c.parsing is None and not c.in_head and c.backlog is None
        ]
        idle.sort(key=lambda c: c.idle_since)
        for conn in idle[:most]:
            conn.close()

    def _set_starved(self, full: bool) -> None:
        self.state.starved = full

    def _connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if self._listener is not None:
            self._listener.below_limit()
        if self._quiet is not None:
            self._check_quiet()

    def _check_quiet(self) -> None:
        """While draining: is every request answered? (O(connections), only then.)"""
        if self._quiet is not None and not any(c.cycle is not None or c.parsing is not None for c in self.connections):
            self._quiet.set()

    def connections_view(self) -> ConnectionsView:
        listener = self._listener
        return ConnectionsView(
            open=len(self.connections),
            limit=self.max_connections,
            limit_reached=listener.limited if listener is not None else 0,
            accept_shortages=listener.shortages if listener is not None else 0,
        )

    def swap_routes(self, routes: RouteTable) -> None:
        """Atomic: requests already routed keep the revision they were given."""
        self.state.routes = routes

    def bind(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Take the listening sockets (GatewayError naming the address if they cannot be had); accept nothing yet."""
        socks = bind(host, port, backlog=2048, reuse_port=reuse_port)
        self._listener = Listener(
            socks,
            lambda: ClientConnection(self.state, self.connections.add, self._connection_closed),
            lambda: len(self.connections),
            self.max_connections,
            self.reclaim_idle,
        )
        self._listener.on_full = self._set_starved

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Start accepting (binding first when `host` and `port` are given)."""
        if self._listener is None:
            assert host is not None and port is not None
            self.bind(host, port)
        assert self._listener is not None
        self._listener.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    @property
    def sockets(self) -> list[tuple[str, int]]:
        if self._listener is None:
            return []
        return [s.getsockname()[:2] for s in self._listener.socks if s.fileno() >= 0]

    async def _sweep_forever(self) -> None:
        last_pool_sweep = 0.0
        while True:
            await self._sleep(sweep_interval(self.state.settings))
            now = self._clock()
            for conn in list(self.connections):
                try:
                    expire_connection(conn, now)
                except Exception:  # never let one connection stop the sweeper
                    log.exception("timeout sweep failed for a connection")
                    conn.abort()
            if now - last_pool_sweep >= 1.0:
                self.pools.sweep(now)
                last_pool_sweep = now

    async def drain(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish (at most `grace` s), then close all."""
        self.state.draining = True
        self._quiet = asyncio.Event()
        self.state.on_request_end = self._check_quiet
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.connections):
            if conn.idle():
                conn.close()
        self._check_quiet()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._quiet.wait()
        # Requests still waiting for a replica get a 503 they can retry elsewhere, not a reset.
        answered = False
        for conn in list(self.connections):
            cycle = conn.cycle
            if cycle is not None and cycle.phase in (QUEUED, CONNECTING) and not cycle.response_started and cycle.started:
                cycle.keep_alive = False
                cycle.fail(503, "the gateway is shutting down before a replica could take this request")
                answered = True
        if answered:
            await asyncio.sleep(0.1)  # their answers leave before the connections are cut
        await self.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.connections):
            conn.abort()
        self.pools.close()
