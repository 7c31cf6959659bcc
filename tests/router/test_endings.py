"""How connections end: the tail of a spliced stream, drain after an early answer, HTTP/1.0 per request."""

from __future__ import annotations

import asyncio

from gateway.config.model import ProxySettings
from gateway.router.cycle import RequestCycle
from gateway.router.headers import read_request_head, read_response_head
from gateway.router.pools import Pools
from gateway.router.revision import RevisionRuntime, RevisionSettings
from gateway.router.routes import RouteTable
from gateway.router.routing import Routed
from gateway.router.state import ProxyState
from gateway.types import RevisionKey
from tests.router.support import Replica, config, read_head, read_response, start_gateway, start_raw, static_service

HOST = b"iris.default.example.com"
TAIL = 240 * 1024


class RecordingClient:
    """The client side as a request cycle sees it (sides.ClientSide), recording what it is asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.written = b""
        self.write_paused = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.calls.append("close")

    def abort(self) -> None:
        self.calls.append("abort")

    def hold_body(self) -> None:
        self.calls.append("hold_body")

    def release_body(self) -> None:
        self.calls.append("release_body")

    def pause_for_replica(self) -> None:
        self.calls.append("pause_for_replica")

    def resume_for_replica(self) -> None:
        self.calls.append("resume_for_replica")

    def start_splice(self) -> bytes:
        self.calls.append("start_splice")
        return b""

    def cycle_done(self, cycle: object) -> None:
        self.calls.append("cycle_done")


def upgrade_cycle(client: RecordingClient) -> RequestCycle:
    key = RevisionKey("default", "iris", "default")
    runtime = RevisionRuntime(key, RevisionSettings(0, 10, False, 300.0, 120.0))
    head = read_request_head([(b"Host", HOST), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")])
    request = Routed(b"GET", b"/ws", head, runtime, True, b"GET /ws HTTP/1.1\r\n\r\n")
    settings = ProxySettings()
    return RequestCycle(request, client, ProxyState(RouteTable({}, {}), settings, Pools(settings)))


def test_a_replica_ending_a_spliced_stream_closes_the_client_gracefully() -> None:
    """After a 101, the replica's close ends the splice: what the gateway still holds for the client must
    reach it (close after the buffer drains), not be thrown away (abort), which would look like a clean end."""
    client = RecordingClient()
    cycle = upgrade_cycle(client)
    cycle.on_response_head(101, b"Switching Protocols", read_response_head([(b"Upgrade", b"websocket")]), False)
    assert cycle.upgraded and client.written.startswith(b"HTTP/1.1 101")
    cycle.on_upstream_raw(b"the last frame")
    cycle.on_upstream_lost(None)
    assert client.calls == ["start_splice", "cycle_done", "close"]
    assert client.written.endswith(b"the last frame")


def test_a_replica_closing_mid_response_still_cuts_the_client_off() -> None:
    """Before the end of a Content-Length body, the replica's close must show as a cut (abort), not an end."""
    client = RecordingClient()
    cycle = upgrade_cycle(client)
    cycle.head = read_request_head([(b"Host", HOST)])  # a plain GET this time
    cycle.on_response_head(200, b"OK", read_response_head([(b"Content-Length", b"10")]), True)
    cycle.on_response_body(b"12345")
    cycle.flush()
    cycle.on_upstream_lost(None)
    assert client.calls == ["cycle_done", "abort"]


async def test_drain_does_not_wait_for_a_connection_lingering_after_an_early_answer(tmp_path: object) -> None:
    """Drain begins while a request is in flight; its replica then answers before reading the body. The
    connection closes lingering (the client may still be sending), but nothing is in flight any more, so
    the drain ends then, not when the 2 s linger is over."""
    answer = asyncio.Event()
    arrived = asyncio.Event()

    async def answers_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        arrived.set()
        await answer.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    raw, port = await start_raw(answers_early)
    gw, gw_port = await start_gateway(config(static_service("iris", [f"http://127.0.0.1:{port}"])), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
        writer.write(b"POST / HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Length: 10\r\n\r\n12345")  # half a body
        await asyncio.wait_for(arrived.wait(), 5)
        drain = asyncio.ensure_future(gw.proxy.drain(30))
        answer.set()
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200")
        # The client keeps its socket open, so the gateway lingers 2 s; the drain must not wait for that.
        await asyncio.wait_for(drain, 1.5)
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)
        raw.close()


async def test_an_http10_request_behind_an_http11_one_does_not_reframe_its_answer(replica: Replica, gw_port: int) -> None:
    """Pipelined: a chunked answer to the HTTP/1.1 request stays chunked and kept alive although the
    request read after it is HTTP/1.0; then the HTTP/1.0 request is answered and the connection closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    writer.write(b"GET /chunked HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\nGET /hello HTTP/1.0\r\nHost: " + HOST + b"\r\n\r\n")
    everything = await asyncio.wait_for(reader.read(), 10)
    first, _, second = everything.partition(b"0\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in first.lower()
    assert b"connection: close" not in first.lower()
    assert second.startswith(b"HTTP/1.1 200") and b"connection: close" in second.lower()
    writer.close()
