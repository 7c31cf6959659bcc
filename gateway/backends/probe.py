"""Readiness probes for local replicas: HTTP GET expecting 2xx, or a plain TCP connect."""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.resources import is_local_shortage


class Prober:
    """Probes replicas on 127.0.0.1; one aiohttp session, created inside the running loop."""

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
        """True when the replica on `port` is ready; None when the gateway itself is out of descriptors."""
        if path is None:
            return await self._tcp(port)
        return await self._http(port, path if path.startswith("/") else f"/{path}")

    async def _http(self, port: int, path: str) -> bool | None:
        try:
            async with self._client().get(f"http://{self._host}:{port}{path}", allow_redirects=False) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return None if is_local_shortage(exc) else False

    async def _tcp(self, port: int) -> bool | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self._host, port), self._timeout)
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
