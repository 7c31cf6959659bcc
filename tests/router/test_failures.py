"""Bad input on the socket, failing replicas and timeouts: a clear answer and nothing corrupted."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.config.model import ProxySettings
from tests.conftest import wait_until
from tests.router.support import (
    Replica,
    body_json,
    config,
    raw_exchange,
    read_head,
    start_gateway,
    start_raw,
    static_service,
)

HOST = "iris.default.example.com"


@pytest.fixture
def proxy_settings() -> ProxySettings:
    return ProxySettings(max_header_bytes=4096)


async def gateway_for(url: str, tmp_path: Path, proxy: ProxySettings | None = None) -> tuple[Gateway, int]:
    return await start_gateway(config(static_service("iris", [url]), proxy=proxy), str(tmp_path))


async def assert_still_serving(port: int) -> None:
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.get(f"http://127.0.0.1:{port}/ok", headers={"Host": HOST})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "request_bytes, status, words",
    [
        (b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: identity\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: abc\r\n\r\n", 400, ""),
        (b"GET / HTTP/1.1\r\nHost: %s\r\nHost: other\r\n\r\n", 400, "Host"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400, ""),
        (b"GET / HTTP/1.1\r\nHost: %s\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431, "header"),
        (b"CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\n\r\n", 400, "CONNECT"),
        (b"CONNECT %s:80 HTTP/1.1\r\nHost: %s\r\n\r\n", 400, "CONNECT"),
    ],
    ids=[
        "cl+te",
        "two-cl",
        "two-equal-cl",
        "te-gzip",
        "te-identity",
        "cl-nan",
        "two-hosts",
        "no-host",
        "tls-garbage",
        "big-header",
        "connect",
        "connect-known-host",
    ],
)
async def test_bad_requests_get_400_and_close(
    gw_port: int, replica: Replica, request_bytes: bytes, status: int, words: str
) -> None:
    data = request_bytes.replace(b"%s", HOST.encode())
    before = replica.requests
    raw = await raw_exchange(gw_port, data + b"GET /smuggled HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 %d" % status), raw[:200]
    assert b"connection: close" in raw.lower()
    assert raw.count(b"HTTP/1.1") == 1, "the connection must close after the error"
    assert words in body_json(raw)["error"]
    assert replica.requests == before
    await assert_still_serving(gw_port)


async def test_huge_header_stream_is_cut_without_buffering_it_all(gw_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nX-Endless: ")
    for _ in range(100):  # the gateway answers, then reads and drops the rest (lingering close): no reset
        writer.write(b"a" * 4096)
        await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 431"), data[:200]
    assert body_json(data)["error"] == "request header too large"
    writer.close()
    await assert_still_serving(gw_port)


async def test_slowloris_gets_408(replica: Replica, tmp_path: Path) -> None:
    gw, port = await gateway_for(replica.url, tmp_path, ProxySettings(header_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: ")
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 408")
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)


async def test_idle_keepalive_connection_is_closed(replica: Replica, tmp_path: Path) -> None:
    gw, port = await gateway_for(replica.url, tmp_path, ProxySettings(keepalive_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        await read_head(reader)
        rest = await asyncio.wait_for(reader.read(), 5)  # body, then EOF once idle too long
        assert rest.endswith(b"}")
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)


async def test_response_start_timeout_gives_504(replica: Replica, tmp_path: Path) -> None:
    gw, port = await gateway_for(replica.url, tmp_path, ProxySettings(response_start_timeout=0.3))
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.get(f"http://127.0.0.1:{port}/slow?sleep=2", headers={"Host": HOST})
        assert r.status_code == 504
        assert r.json()["revision"] == "iris-default"
        await assert_still_serving(port)
    finally:
        await gw.stop(drain_timeout=1)


async def test_replica_dying_before_response_gives_502(tmp_path: Path) -> None:
    async def die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.transport.abort()

    server, port = await start_raw(die)
    gw, gport = await gateway_for(f"http://127.0.0.1:{port}", tmp_path)
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.post(f"http://127.0.0.1:{gport}/", headers={"Host": HOST}, content=b"x")
        assert r.status_code == 502
        assert r.json()["error"].startswith("replica closed the connection")
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


async def test_replica_dying_mid_response_closes_client_cleanly(tmp_path: Path, replica: Replica) -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        await writer.drain()
        writer.transport.abort()

    server, port = await start_raw(half)
    spec = static_service("iris", [f"http://127.0.0.1:{port}"])
    other = static_service("ok", [replica.url])
    gw, gport = await start_gateway(config(spec, other), str(tmp_path))
    try:
        raw = await raw_exchange(gport, f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head, body = raw.split(b"\r\n\r\n", 1)
        assert b"content-length: 1000" in head.lower()
        assert len(body) == 100  # cut short and closed: the client can tell
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.get(f"http://127.0.0.1:{gport}/", headers={"Host": "ok.default.example.com"})
        assert r.status_code == 200
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


async def test_invalid_response_gives_502(tmp_path: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    server, port = await start_raw(garbage)
    gw, gport = await gateway_for(f"http://127.0.0.1:{port}", tmp_path)
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.get(f"http://127.0.0.1:{gport}/", headers={"Host": HOST})
        assert r.status_code == 502
        assert "invalid response" in r.json()["error"]
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


async def test_close_delimited_response_is_rechunked(tmp_path: Path) -> None:
    async def legacy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    server, port = await start_raw(legacy)
    gw, gport = await gateway_for(f"http://127.0.0.1:{port}", tmp_path)
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.get(f"http://127.0.0.1:{gport}/", headers={"Host": HOST})
            assert r.text == "until the end"
            assert r.headers["transfer-encoding"] == "chunked"
        raw = await raw_exchange(gport, f"GET / HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
        assert raw.endswith(b"\r\n\r\nuntil the end")
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


async def test_client_gone_mid_upload_does_not_reuse_dirty_connection(tmp_path: Path) -> None:
    seen: list[bytes] = []
    connections = 0
    cut: list[bytes] = []  # heads of requests whose body ended early (the connection closed)

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = await read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            seen.append(head.split(b"\r\n")[0])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            try:
                await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                cut.append(seen[-1])
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    server, port = await start_raw(record)
    gw, gport = await gateway_for(f"http://127.0.0.1:{port}", tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gport)
        writer.write(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000000\r\n\r\n".encode() + b"x" * 1000)
        await writer.drain()
        await wait_until(lambda: seen == [b"POST /upload HTTP/1.1"], "the upload to reach the replica")
        writer.transport.abort()
        await wait_until(lambda: cut == [b"POST /upload HTTP/1.1"], "the gateway to drop the upload's connection")
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.post(f"http://127.0.0.1:{gport}/next", headers={"Host": HOST}, content=b"abc")
        assert r.status_code == 200 and r.text == "ok"
        assert seen == [b"POST /upload HTTP/1.1", b"POST /next HTTP/1.1"]
        assert connections == 2  # the half-sent upload's connection was dropped, not reused
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


async def test_reused_connection_closed_by_replica_is_retried_for_get(tmp_path: Path) -> None:
    """A keep-alive race: the replica closes an idle connection just as it is reused."""
    count = 0

    async def one_shot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        await read_head(reader)
        count += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % (count % 10))
        await writer.drain()
        # Keep-alive was promised, but the next request on this connection is dropped unanswered.
        try:
            await read_head(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.transport.abort()

    server, port = await start_raw(one_shot)
    gw, gport = await gateway_for(f"http://127.0.0.1:{port}", tmp_path)
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            for _ in range(3):
                r = await c.get(f"http://127.0.0.1:{gport}/", headers={"Host": HOST})
                assert r.status_code == 200
            r = await c.post(f"http://127.0.0.1:{gport}/", headers={"Host": HOST}, content=b"x")
            assert r.status_code == 502  # not idempotent: never replayed
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


async def test_single_static_endpoint_that_dropped_a_request_keeps_serving(tmp_path: Path) -> None:
    """A replica that drops one request is skipped only while another one is up."""
    served = 0

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while True:
            head = await read_head(reader)
            if head.startswith(b"POST /drop"):
                await reader.readexactly(3)
                writer.transport.abort()
                return
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    server, port = await start_raw(flaky)
    gw, gport = await gateway_for(f"http://127.0.0.1:{port}", tmp_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gport}", headers={"Host": HOST}, timeout=5) as c:
            assert (await c.post("/drop", content=b"abc")).status_code == 502
            r = await c.get("/next")
            assert r.status_code == 200 and r.text == "ok"
        assert served == 1
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


async def test_connect_timeout_is_waited_once_per_replica(tmp_path: Path) -> None:
    # A listener whose backlog is full: further SYNs are dropped, so connects hang.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    gw, gport = await gateway_for(f"http://127.0.0.1:{port}", tmp_path, ProxySettings(connect_timeout=0.5))
    try:
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.get(f"http://127.0.0.1:{gport}/", headers={"Host": HOST})
        took = time.monotonic() - started
        assert r.status_code == 504 and "timed out connecting" in r.json()["error"]
        assert took < 1.2, took
    finally:
        await gw.stop(drain_timeout=1)
        for s in fillers:
            s.close()
        full.close()
