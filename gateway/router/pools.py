"""Keep-alive pools of upstream connections, one idle stack per replica."""

from __future__ import annotations

import asyncio
import time

from gateway.config.model import ProxySettings
from gateway.router.upstream import UpstreamConnection
from gateway.types import Endpoint


class Pools:
    """Idle upstream connections per endpoint; LIFO so the warmest connection is reused first.

    Idle connections older than ``keepalive`` are closed by ``sweep()`` (called about once a
    second) and skipped by ``get()``, keeping reuse clear of the replica's own idle timeout.
    At most ``max_idle`` idle connections per replica and ``max_idle_total`` in all: past those a
    returned connection is closed, so idle sockets never eat the descriptors clients need.
    """

    def __init__(self, settings: ProxySettings, max_idle: int = 512, max_idle_total: int = 4096) -> None:
        self.max_idle = max_idle
        self.idle_count = 0
        self._idle: dict[Endpoint, list[UpstreamConnection]] = {}
        self.configure(settings, max_idle_total)

    def configure(self, settings: ProxySettings, max_idle_total: int) -> None:
        """Limits for connections made from now on (a reload); idle ones are swept by the new keepalive."""
        self.keepalive = settings.upstream_keepalive_timeout
        self.connect_timeout = settings.connect_timeout
        self.max_idle_total = max_idle_total
        self.max_response_head = settings.max_response_header_bytes
        self.buffer_bytes = settings.buffer_bytes

    def get(self, endpoint: Endpoint) -> UpstreamConnection | None:
        stack = self._idle.get(endpoint)
        if not stack:
            return None
        deadline = time.monotonic() - self.keepalive
        while stack:
            conn = stack.pop()
            self.idle_count -= 1
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if conn.idle_since < deadline:
                conn.close()
                continue
            return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        stack = self._idle.get(conn.endpoint)
        if stack is None:
            stack = self._idle[conn.endpoint] = []
        if len(stack) >= self.max_idle or self.idle_count >= self.max_idle_total:
            conn.close()
            return
        stack.append(conn)
        self.idle_count += 1

    async def connect(self, endpoint: Endpoint) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: UpstreamConnection(endpoint, self.put, self.max_response_head, self.buffer_bytes),
                endpoint.host,
                endpoint.port,
            ),
            self.connect_timeout,
        )
        return conn

    def sweep(self, now: float) -> None:
        """Close the idle connections older than the keepalive at `now` (time.monotonic()'s scale)."""
        deadline = now - self.keepalive
        for endpoint, stack in list(self._idle.items()):
            keep = []
            for conn in stack:
                if conn.closed or conn.idle_since < deadline:
                    conn.close()
                else:
                    keep.append(conn)
            self.idle_count -= len(stack) - len(keep)
            if keep:
                self._idle[endpoint] = keep
            else:
                del self._idle[endpoint]

    def drop(self, endpoint: Endpoint) -> None:
        """Close the idle connections of a replica that left the ready set."""
        stack = self._idle.pop(endpoint, [])
        self.idle_count -= len(stack)
        for conn in stack:
            conn.close()

    def close(self) -> None:
        for stack in self._idle.values():
            for conn in stack:
                conn.close()
        self._idle.clear()
        self.idle_count = 0
