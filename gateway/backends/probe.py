"""Readiness probes of replicas and endpoints, for every backend: HTTP GET expecting 2xx, or a plain TCP connect."""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.resources import is_local_shortage
from gateway.types import Endpoint


class Prober:
    """Probes endpoints (local replicas on ``host`` by default); one aiohttp session, created inside the running loop."""

    def __init__(self, *, timeout: float = 1.0, host: str = "127.0.0.1") -> None:
        self._timeout = timeout
        self._host = host
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # force_close: a probe must not reuse a connection to a replica that has since died
            connector = aiohttp.TCPConnector(force_close=True, limit=0, use_dns_cache=False)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout, connect=self._timeout),
                auto_decompress=False,
            )
        return self._session

    async def check(self, port: int, path: str | None) -> bool | None:
        """`probe` of the replica listening on `port` of this prober's host."""
        return await self.probe(Endpoint(self._host, port), path)

    async def probe(self, endpoint: Endpoint, path: str | None) -> bool | None:
        """True when `endpoint` is ready (GET `path` answers 2xx; without a path, it accepts a connection);
        None when the gateway itself is out of descriptors, so no verdict on the endpoint."""
        if path is None:
            return await self._tcp(endpoint)
        return await self._http(endpoint, path if path.startswith("/") else f"/{path}")

    async def _http(self, endpoint: Endpoint, path: str) -> bool | None:
        try:
            async with self._client().get(f"{endpoint.url}{path}", allow_redirects=False) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return None if is_local_shortage(exc) else False

    async def _tcp(self, endpoint: Endpoint) -> bool | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(endpoint.host, endpoint.port), self._timeout)
        except (OSError, TimeoutError) as exc:
            return None if is_local_shortage(exc) else False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
