"""responseStartTimeout runs from the end of the request body; sendTimeout cuts clients that read nothing (issue 7, item 7)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from gateway.config.model import ProxySettings
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from tests.conftest import ManualSleep, wait_until
from tests.router.support import (
    Replica,
    body_json,
    config,
    read_head,
    read_response,
    start_gateway,
    start_raw,
    static_service,
    transport_of,
)

HOST = b"iris.default.example.com"


@pytest.mark.e2e
async def test_a_slow_upload_is_not_a_slow_response(replica: Replica, tmp_path: object) -> None:
    """40 bytes over ~1.2 s with a 0.5 s response-start timeout: the clock starts when the body is in."""
    proxy = ProxySettings(response_start_timeout=0.5)
    gw, port = await start_gateway(config(static_service("iris", [replica.url]), proxy=proxy), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Length: 40\r\n\r\n")
        for _ in range(10):
            await asyncio.sleep(0.12)  # the client's own pace: this is the scenario, not a wait for the gateway
            writer.write(b"abcd")
        out = await read_response(reader)
        assert out.startswith(b"HTTP/1.1 200"), out[:300]
        assert b'"body_len": 40' in out
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)


async def test_the_response_start_timeout_still_applies_once_the_body_is_in(tmp_path: object) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.readexactly(5)
        await reader.read()  # never answers

    raw, port = await start_raw(silent)
    proxy = ProxySettings(response_start_timeout=0.3)
    gw, gw_port = await start_gateway(config(static_service("iris", [f"http://127.0.0.1:{port}"]), proxy=proxy), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
        writer.write(b"POST / HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Length: 5\r\n\r\nhello")
        out = await read_response(reader)
        assert out.startswith(b"HTTP/1.1 504") and "response" in str(body_json(out)["error"])
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)
        raw.close()


async def test_a_client_that_reads_nothing_is_cut_off_and_frees_its_slot(replica: Replica, tmp_path: object) -> None:
    """containerConcurrency 1: a reader that never reads would pin the only slot for the whole request timeout."""
    proxy = ProxySettings(send_timeout=0.5)
    gw, port = await start_gateway(config(static_service("iris", [replica.url], concurrency=1), proxy=proxy), str(tmp_path))
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        transport_of(writer).pause_reading()  # this client reads nothing at all
        writer.write(b"GET /stream?size=67108864 HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n")
        runtime = gw.proxy.routes.services[0].default
        await wait_until(
            lambda: any(t.in_flight for t in runtime.throttler.trackers.values()), "the first request at the replica"
        )
        # A second client waits for the slot, and gets it once the first one is cut off.
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(b"GET /next HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n")
        out = await read_response(r2, within=10)
        assert out.startswith(b"HTTP/1.1 200") and b'"path": "/next"' in out
        transport_of(writer).resume_reading()  # what the first client gets now ends well short of 64 MiB
        received = 0
        try:
            while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert received < 64 * 1024 * 1024
        w2.close()
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)


async def test_a_client_that_stops_sending_its_body_gets_408(replica: Replica, tmp_path: object) -> None:
    """nginx's client_body_timeout: the client's stall is a 408, not the replica's 504."""
    proxy = ProxySettings(body_timeout=0.4)
    gw, port = await start_gateway(config(static_service("iris", [replica.url]), proxy=proxy), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Length: 100\r\n\r\n0123456789")
        out = await read_response(reader)
        assert out.startswith(b"HTTP/1.1 408") and "request body" in str(body_json(out)["error"])
        assert await asyncio.wait_for(reader.read(), 5) == b"", "the connection closes after it"
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)


@pytest.mark.e2e
async def test_a_body_the_gateway_stopped_reading_is_not_the_client_s_delay(tmp_path: object) -> None:
    """A replica that reads slowly pauses the upload (flow control): no 408 for the client meanwhile."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(1.0)  # reads nothing for longer than bodyTimeout: the gateway pauses the upload
        got = 0
        while got < 8 * 1024 * 1024:
            got += len(await reader.read(256 * 1024))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    raw, port = await start_raw(slow)
    proxy = ProxySettings(body_timeout=0.3)
    gw, gw_port = await start_gateway(config(static_service("iris", [f"http://127.0.0.1:{port}"]), proxy=proxy), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Length: 8388608\r\n\r\n" + b"x" * 8388608)
        out = await read_response(reader, within=20)
        assert out.startswith(b"HTTP/1.1 200"), out[:300]
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)
        raw.close()


async def test_header_and_keepalive_timeouts_on_the_sweep_s_clock() -> None:
    """The default headerTimeout (10 s) and keepaliveTimeout (75 s), without waiting for either:
    the sweep runs when the test steps its sleep and reads a clock the test moves forward."""
    shift = 0.0
    sleep = ManualSleep()
    server = ProxyServer(RouteTable({}, {}), ProxySettings(), clock=lambda: time.monotonic() + shift, sleep=sleep)
    await server.start("127.0.0.1", 0)
    port = server.sockets[0][1]
    try:
        half, half_writer = await asyncio.open_connection("127.0.0.1", port)
        half_writer.write(b"GET / HTTP/1.1\r\nHost: nowhere.example.com\r\n")  # the head never ends
        idle, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        idle_writer.write(b"GET / HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\n")
        assert (await read_response(idle)).startswith(b"HTTP/1.1 404")  # answered, then idle on keep-alive
        await wait_until(lambda: len(server.connections) == 2, "both connections accepted")
        await sleep.step()
        assert not half.at_eof() and not idle.at_eof()  # nothing is due yet

        shift = 11.0  # past headerTimeout, not past keepaliveTimeout
        await sleep.step()
        out = await read_response(half)
        assert out.startswith(b"HTTP/1.1 408") and "header" in str(body_json(out)["error"])
        assert not idle.at_eof()

        shift = 76.0  # past keepaliveTimeout: the idle connection is closed, without an answer
        await sleep.step()
        assert await asyncio.wait_for(idle.read(), 5) == b""
        half_writer.close()
        idle_writer.close()
    finally:
        await server.close()
