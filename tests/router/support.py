"""Real replicas for data-plane tests: an aiohttp app with many behaviours and a raw-bytes server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import WSMsgType, web

from gateway.app import Gateway
from gateway.config.model import Config, GatewaySettings, ProxySettings, RevisionSpec, ScalingSpec, ServiceSpec


@dataclass
class Replica:
    name: str
    runner: web.AppRunner
    port: int
    peers: set[tuple[str, int]] = field(default_factory=set)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ReplicaHandlers:
    """The replica's endpoints; each request is counted in `replica`."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def track(self, request: web.Request) -> None:
        self.replica.requests += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.replica.peers.add(tuple(peer[:2]))

    async def echo(self, request: web.Request) -> web.StreamResponse:
        """Any path: the request as the replica saw it, as JSON; `?sleep=S` answers after S seconds."""
        self.track(request)
        replica = self.replica
        replica.in_flight += 1
        replica.max_in_flight = max(replica.max_in_flight, replica.in_flight)
        try:
            delay = float(request.query.get("sleep", "0"))
            if delay:
                await asyncio.sleep(delay)
            body = await request.read()
            doc = {
                "replica": replica.name,
                "method": request.method,
                "path": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body_len": len(body),
                "body_head": body[:64].decode("latin-1"),
                "chunked": request.headers.get("Transfer-Encoding", "").lower() == "chunked",
            }
            return web.json_response(doc)
        finally:
            replica.in_flight -= 1

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        self.track(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(int(request.query.get("n", "5"))):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.track(request)
        size = int(request.query.get("size", "1048576"))
        resp = web.StreamResponse(headers={"Content-Length": str(size)})
        await resp.prepare(request)
        block = b"x" * 65536
        sent = 0
        while sent < size:
            n = min(len(block), size - sent)
            await resp.write(block[:n])
            sent += n
        await resp.write_eof()
        return resp

    async def status(self, request: web.Request) -> web.StreamResponse:
        self.track(request)
        code = int(request.match_info["code"])
        if code in (204, 304):
            return web.Response(status=code, headers={"ETag": '"x"'})
        return web.Response(status=code, text=f"status {code}")

    async def headers(self, request: web.Request) -> web.StreamResponse:
        self.track(request)
        return web.Response(
            text="ok",
            headers={"Connection": "keep-alive, X-Secret", "X-Secret": "hop", "Keep-Alive": "timeout=5", "X-Kept": "yes"},
        )

    async def ws(self, request: web.Request) -> web.StreamResponse:
        self.track(request)
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str("echo:" + msg.data)
            elif msg.type == WSMsgType.BINARY:
                await sock.send_bytes(msg.data)
        return sock


def replica_app(replica: Replica) -> web.Application:
    handlers = ReplicaHandlers(replica)
    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/chunked", handlers.chunked)
    app.router.add_get("/stream", handlers.stream)
    app.router.add_route("*", "/status/{code}", handlers.status)
    app.router.add_get("/headers", handlers.headers)
    app.router.add_get("/ws", handlers.ws)
    app.router.add_route("*", "/{tail:.*}", handlers.echo)
    return app


async def start_replica(name: str = "r1") -> Replica:
    replica = Replica(name, None, 0)  # type: ignore[arg-type]
    # Stopping does not wait for handlers still sleeping (a client that left, a response the test timed out).
    runner = web.AppRunner(replica_app(replica), access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    replica.runner = runner
    replica.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return replica


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A replica speaking raw bytes; `close()` ends every handler so no task outlives the test."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


async def start_raw(handler: RawHandler) -> tuple[RawServer, int]:
    raw = RawServer(handler)
    raw.server = await asyncio.start_server(raw._run, "127.0.0.1", 0)
    return raw, raw.server.sockets[0].getsockname()[1]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def static_service(
    name: str,
    default: list[str],
    canary: list[str] | None = None,
    percent: int = 0,
    namespace: str = "default",
    concurrency: int = 0,
) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        namespace=namespace,
        default=RevisionSpec(name="default", endpoints=tuple(default)),
        canary=RevisionSpec(name="canary", endpoints=tuple(canary)) if canary else None,
        canary_percent=percent if canary else 0,
        scaling=ScalingSpec(container_concurrency=concurrency),
        backend="static",
    )


def config(*services: ServiceSpec, proxy: ProxySettings | None = None) -> Config:
    return Config(gateway=GatewaySettings(backend="static", proxy=proxy or ProxySettings()), services=tuple(services))


async def start_gateway(cfg: Config, state_dir: str) -> tuple[Gateway, int]:
    gw = Gateway(cfg, state_dir=state_dir)
    await gw.start(listen="127.0.0.1:0")
    return gw, gw.proxy.sockets[0][1]


async def raw_exchange(port: int, data: bytes, *, open_after: float | None = None) -> bytes:
    """Send raw bytes, read until the gateway closes the connection, within 5 s.

    With `open_after`, a connection the gateway keeps open is allowed too: reading stops after that
    many seconds of silence.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), open_after or 5.0)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError:
        if open_after is None:
            raise AssertionError(f"the gateway kept the connection open; it sent {b''.join(chunks)[:300]!r}") from None
    except ConnectionResetError:
        pass
    writer.close()
    return b"".join(chunks)


def body_json(response: bytes) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(response.split(b"\r\n\r\n", 1)[1]))


async def read_response(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    """One response with a Content-Length body (what the gateway's own errors and the test replicas send)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await asyncio.wait_for(reader.readexactly(length), within)


async def one_response(port: int, data: bytes, within: float = 5.0) -> bytes:
    """Send `data` on a new connection and return the first response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await read_response(reader, within)
    finally:
        writer.close()


def transport_of(writer: asyncio.StreamWriter) -> asyncio.Transport:
    """A stream's transport as the read-write transport it is (a test pauses its reading)."""
    return cast(asyncio.Transport, writer.transport)
