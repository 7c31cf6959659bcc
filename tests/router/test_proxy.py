"""The data plane end to end: real replicas, real sockets, the real gateway."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.router.support import (
    Replica,
    body_json,
    config,
    raw_exchange,
    start_gateway,
    start_replica,
    static_service,
)

HOST = "iris.default.example.com"


@pytest.fixture
async def client(gw_port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}", headers={"Host": HOST}, timeout=10) as c:
        yield c


async def test_get_reaches_replica_with_forwarded_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models/iris?x=1")
    assert r.status_code == 200
    doc = r.json()
    assert doc["path"] == "/v1/models/iris?x=1"
    assert doc["headers"]["host"] == HOST
    assert doc["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert doc["headers"]["x-forwarded-proto"] == "http"
    assert doc["headers"]["x-forwarded-host"] == HOST
    assert r.headers["x-gateway-revision"] == "iris-default"


async def test_existing_forwarded_for_is_appended(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"})
    doc = r.json()
    assert doc["headers"]["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    # No trustedProxies: a client's claim of https is replaced (tests/router/test_forwarding.py)
    assert doc["headers"]["x-forwarded-proto"] == "http"


async def test_host_port_and_case_are_ignored(gw_port: int) -> None:
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.get(f"http://127.0.0.1:{gw_port}/", headers={"Host": "IRIS.Default.EXAMPLE.com:8080"})
    assert r.status_code == 200
    assert r.headers["x-gateway-revision"] == "iris-default"


@pytest.mark.parametrize("host", ["nope.default.example.com", "127.0.0.1", "127.0.0.1:80", "iris.other.example.com"])
async def test_unknown_host_is_404_json_and_never_proxied(gw_port: int, replica: Replica, host: str) -> None:
    before = replica.requests
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.get(f"http://127.0.0.1:{gw_port}/", headers={"Host": host})
    assert r.status_code == 404
    doc = r.json()
    assert doc["error"] == f"no service for host {host!r}"
    assert doc["service"] is None and doc["revision"] is None
    assert replica.requests == before


async def test_open_proxy_absolute_uri_is_not_forwarded(gw_port: int, replica: Replica) -> None:
    before = replica.requests
    resp = await raw_exchange(
        gw_port,
        f"GET http://127.0.0.1:{replica.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{replica.port}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert resp.startswith(b"HTTP/1.1 404")
    assert replica.requests == before


async def test_post_body_and_chunked_upload(client: httpx.AsyncClient) -> None:
    r = await client.post("/predict", content=b"a" * 100_000)
    assert r.json()["body_len"] == 100_000

    async def gen() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"b" * 10_000

    r = await client.post("/predict", content=gen())
    doc = r.json()
    assert doc["body_len"] == 100_000
    assert doc["chunked"] is True


async def test_chunked_response_is_relayed(client: httpx.AsyncClient) -> None:
    r = await client.get("/chunked?n=4")
    assert r.text == "part0;part1;part2;part3;"
    assert r.headers["transfer-encoding"] == "chunked"


async def test_large_response_streams_intact(client: httpx.AsyncClient) -> None:
    r = await client.get("/stream?size=5000000")
    assert len(r.content) == 5_000_000
    assert r.headers["content-length"] == "5000000"


async def test_head_204_304_have_no_body(client: httpx.AsyncClient, gw_port: int) -> None:
    r = await client.head("/stream?size=1000")
    assert r.status_code == 200 and r.headers["content-length"] == "1000" and r.content == b""
    for code in (204, 304):
        r = await client.get(f"/status/{code}")
        assert r.status_code == code and r.content == b""
    # The same connection keeps working after HEAD: no body bytes were expected from the replica.
    r = await client.get("/after-head")
    assert r.json()["path"] == "/after-head"
    raw = await raw_exchange(
        gw_port,
        f"HEAD /stream?size=7 HTTP/1.1\r\nHost: {HOST}\r\n\r\nGET /x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert raw.count(b"HTTP/1.1 200") == 2
    assert raw.split(b"\r\n\r\n", 1)[1].startswith(b"HTTP/1.1 200")


async def test_hop_by_hop_headers_are_stripped(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/",
        headers={
            "Connection": "keep-alive, X-Drop",
            "X-Drop": "1",
            "Keep-Alive": "timeout=1",
            "Proxy-Authorization": "x",
            "TE": "trailers",
        },
    )
    seen = r.json()["headers"]
    for name in ("x-drop", "keep-alive", "proxy-authorization", "te"):
        assert name not in seen
    r = await client.get("/headers")
    assert "x-secret" not in r.headers and "keep-alive" not in r.headers
    assert r.headers["x-kept"] == "yes"


async def test_upstream_connections_are_reused(client: httpx.AsyncClient, replica: Replica) -> None:
    for _ in range(20):
        assert (await client.get("/")).status_code == 200
    assert len(replica.peers) == 1


async def test_pipelined_requests_answered_in_order(gw_port: int) -> None:
    reqs = b"".join(
        f"GET /p{i}?sleep={0.05 if i == 0 else 0} HTTP/1.1\r\nHost: {HOST}\r\n{'Connection: close' if i == 4 else 'X-N: 1'}\r\n\r\n".encode()
        for i in range(5)
    )
    raw = await raw_exchange(gw_port, reqs)
    paths = re.findall(rb'"path": "(/p\d)', raw)
    assert paths == [b"/p0", b"/p1", b"/p2", b"/p3", b"/p4"]
    assert raw.count(b"HTTP/1.1 200") == 5


async def test_expect_100_continue(gw_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    writer.write(f"POST /up HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n".encode())
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"hello")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
    doc = json.loads(await reader.readexactly(length))
    assert doc["body_len"] == 5 and "expect" not in doc["headers"]
    writer.close()


async def test_expect_with_oversized_body_gets_413_without_100(replica: Replica, tmp_path: object) -> None:
    from gateway.config.model import ProxySettings

    gw, port = await start_gateway(
        config(static_service("iris", [replica.url]), proxy=ProxySettings(max_body_bytes=10)), str(tmp_path)
    )
    try:
        raw = await raw_exchange(
            port, f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        assert raw.startswith(b"HTTP/1.1 413")
        assert b"100 Continue" not in raw
        assert body_json(raw)["service"] == "iris"
        chunked = (
            f"POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        )
        raw = await raw_exchange(port, chunked.encode())
        assert raw.startswith(b"HTTP/1.1 413")
    finally:
        await gw.stop(drain_timeout=1)


async def test_websocket_is_spliced(gw_port: int) -> None:
    import websockets

    async with websockets.connect(f"ws://{HOST}/ws", host="127.0.0.1", port=gw_port) as ws:
        await ws.send("hi")
        assert await ws.recv() == "echo:hi"
        await ws.send(b"\x00\x01" * 50_000)
        assert await ws.recv() == b"\x00\x01" * 50_000


async def test_knative_serving_tag_pins_revision(tmp_path: object) -> None:
    a, b = await start_replica("a"), await start_replica("b")
    gw, port = await start_gateway(config(static_service("iris", [a.url], [b.url], percent=30)), str(tmp_path))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            for tag, want in (("canary", "b"), ("default", "a"), ("CANARY", "b")):
                for _ in range(5):
                    r = await c.get("/", headers={"Host": HOST, "Knative-Serving-Tag": tag})
                    assert r.json()["replica"] == want
            r = await c.get("/", headers={"Host": f"canary-{HOST}"})
            assert r.json()["replica"] == "b" and r.headers["x-gateway-revision"] == "iris-canary"
            r = await c.get("/", headers={"Host": f"default-{HOST}"})
            assert r.json()["replica"] == "a"
            # An unknown tag falls back to the normal split: exactly 30 of 100.
            got = [
                (await c.get("/", headers={"Host": HOST, "Knative-Serving-Tag": "nope"})).json()["replica"] for _ in range(100)
            ]
            assert 29 <= got.count("b") <= 31
    finally:
        await gw.stop(drain_timeout=1)
        await a.runner.cleanup()
        await b.runner.cleanup()


async def test_static_round_robin_skips_refusing_endpoint(tmp_path: object) -> None:
    a, b = await start_replica("a"), await start_replica("b")
    dead = "http://127.0.0.1:1"  # nothing listens on port 1
    gw, port = await start_gateway(config(static_service("iris", [a.url, dead, b.url])), str(tmp_path))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": HOST}, timeout=5) as c:
            got = [(await c.get("/")).json()["replica"] for _ in range(30)]
        assert set(got) == {"a", "b"}
        assert abs(got.count("a") - got.count("b")) <= 2
    finally:
        await gw.stop(drain_timeout=1)
        await a.runner.cleanup()
        await b.runner.cleanup()


async def test_all_endpoints_refusing_gives_502(tmp_path: object) -> None:
    gw, port = await start_gateway(config(static_service("iris", ["http://127.0.0.1:1"])), str(tmp_path))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": HOST}, timeout=5) as c:
            for _ in range(3):
                r = await c.get("/")
                assert r.status_code == 502
                assert r.json()["revision"] == "iris-default"
                assert r.headers["x-gateway-revision"] == "iris-default"
    finally:
        await gw.stop(drain_timeout=1)


async def test_slow_reader_then_keepalive_reuse(gw_port: int, replica: Replica) -> None:
    """Flow control pauses the replica's connection for a slow client; the pool must not keep it paused."""
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", gw_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    size = 8 * 1024 * 1024
    writer.write(f"GET /stream?size={size} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"content-length: 8388608" in head.lower()
    got = 0
    while got < size:
        chunk = await asyncio.wait_for(reader.read(32768), 5)
        assert chunk
        got += len(chunk)
        await asyncio.sleep(0.001)
    assert got == size
    for _ in range(3):
        writer.write(f"GET /again HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
        assert json.loads(await reader.readexactly(length))["path"] == "/again"
    async with httpx.AsyncClient(timeout=5) as c:
        assert (await c.get(f"http://127.0.0.1:{gw_port}/other", headers={"Host": HOST})).status_code == 200
    writer.close()


async def test_absolute_form_target_is_routed_by_its_authority_and_forwarded_as_a_path(gw_port: int) -> None:
    raw = await raw_exchange(
        gw_port,
        f"GET http://{HOST}/v1/models?x=1 HTTP/1.1\r\nHost: something.else\r\nConnection: close\r\n\r\n".encode(),
    )
    assert raw.startswith(b"HTTP/1.1 200")
    doc = body_json(raw)
    assert doc["path"] == "/v1/models?x=1"
    assert doc["headers"]["host"] == HOST
    raw = await raw_exchange(gw_port, f"GET ftp://{HOST}/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    assert raw.startswith(b"HTTP/1.1 400")
