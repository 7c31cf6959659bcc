"""The data-plane listener: accepts connections, owns the route table, pools and timeouts."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from gateway.config.model import ProxySettings
from gateway.resources import default_max_connections, fd_limit
from gateway.router.client import ClientConnection
from gateway.router.cycle import CONNECTING, QUEUED, RequestCycle
from gateway.router.listener import Listener, bind
from gateway.router.pools import Pools
from gateway.router.routes import RouteTable
from gateway.router.routing import route_and_build
from gateway.types import ConnectionsView

log = logging.getLogger(__name__)


class ProxyServer:
    """Shared context of every client connection.

    Timeouts are applied by one sweep over the open connections a few times a second instead of a
    timer per request: the request path arms nothing.
    """

    def __init__(self, routes: RouteTable, settings: ProxySettings) -> None:
        self.routes = routes
        self.pools = Pools()
        self.connections: set[ClientConnection] = set()
        self.unrouted: dict[int, int] = {}  # status -> count of requests no revision answered
        self.draining = False
        self.starved = False  # clients wait to be accepted: a connection going idle should make room
        self._listener: Listener | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.configure(settings)

    def configure(self, settings: ProxySettings) -> None:
        """New limits and timeouts (reload); connections read them on their next check."""
        self.settings = settings
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
        self._trusted = [ipaddress.ip_network(cidr) for cidr in settings.trusted_proxies]
        pools = self.pools
        pools.keepalive = settings.upstream_keepalive_timeout
        pools.connect_timeout = settings.connect_timeout
        pools.max_idle_total = max(16, self.max_connections // 4)
        pools.max_response_head = settings.max_response_header_bytes
        pools.buffer_bytes = settings.buffer_bytes
        if self._listener is not None:
            self._listener.limit = self.max_connections
            self._listener.below_limit()

    def trusts(self, peer: bytes) -> bool:
        """Is `peer` (a client's address) one of spec.proxy.trustedProxies? Once per connection."""
        if not self._trusted or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer.decode())
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._trusted)

    def reclaim_idle(self, most: int = 32) -> None:
        """At the connection limit: close the keep-alive connections idle longest (as nginx does).

        O(connections), only when the limit is reached. Closing is asynchronous, so the caller
        stops accepting until the connections are gone and `connection_closed` resumes it.
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
        self.starved = full

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if self._listener is not None:
            self._listener.below_limit()

    def connections_view(self) -> ConnectionsView:
        listener = self._listener
        return ConnectionsView(
            open=len(self.connections),
            limit=self.max_connections,
            limit_reached=listener.limited if listener is not None else 0,
            accept_shortages=listener.shortages if listener is not None else 0,
        )

    def make_cycle(
        self, conn: ClientConnection, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> RequestCycle:
        return route_and_build(self, conn, method, url, headers, keep_alive)

    def swap_routes(self, routes: RouteTable) -> None:
        """Atomic: requests already routed keep the revision they were given."""
        self.routes = routes

    def bind(self, host: str, port: int) -> None:
        """Take the listening sockets (GatewayError naming the address if they cannot be had); accept nothing yet."""
        socks = bind(host, port, backlog=2048)
        self._listener = Listener(
            socks, lambda: ClientConnection(self), lambda: len(self.connections), self.max_connections, self.reclaim_idle
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

    def _sweep_interval(self) -> float:
        s = self.settings
        shortest = min(
            s.header_timeout,
            s.keepalive_timeout,
            s.response_start_timeout,
            s.upstream_keepalive_timeout,
            s.send_timeout,
            s.body_timeout,
        )
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
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.connections):
            if conn.idle():
                conn.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(c.cycle is not None or c.parsing is not None for c in self.connections):
            await asyncio.sleep(0.05)
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
