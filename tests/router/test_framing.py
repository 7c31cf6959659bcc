"""Head-size accounting and bad bytes behind good requests (issue 7, items 2 and 3)."""

from __future__ import annotations

import asyncio
import re

import pytest

from gateway.config.model import ProxySettings
from tests.conftest import wait_until
from tests.router.support import Replica, config, start_gateway, static_service

HOST = b"iris.default.example.com"
GOOD = b"GET /first HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"


@pytest.fixture
def proxy_settings() -> ProxySettings:
    return ProxySettings(max_header_bytes=8192)


def statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the gateway closes the connection (which it must, within 5 s)."""
    out = b""
    async with asyncio.timeout(5):
        while chunk := await reader.read(1 << 20):
            out += chunk
    return out


async def read_responses(reader: asyncio.StreamReader, count: int, within: float = 10.0) -> bytes:
    """Read until `count` complete responses of the echo replica (JSON bodies ending in '}') arrived."""
    out = b""
    async with asyncio.timeout(within):
        while out.count(b"HTTP/1.1 ") < count or not out.endswith(b"}"):
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            out += chunk
    return out


async def test_sequential_large_posts_in_one_write_never_431(gw_port: int, replica: Replica) -> None:
    """The head limit counts head bytes only: body bytes in the same read are not header bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    body = b"b" * (2 * 1024 * 1024)
    for i in range(8):
        writer.write(b"POST /up/%d HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s" % (i, HOST, len(body), body))
        raw = await read_responses(reader, 1)
        assert statuses(raw) == [200], raw[:300]
        assert b'"body_len": 2097152' in raw
    writer.close()


@pytest.mark.e2e
async def test_thousands_of_pipelined_requests_in_one_write_are_all_answered(gw_port: int, replica: Replica) -> None:
    count = 4854
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    writer.write(b"".join(b"GET /p/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, HOST) for i in range(count)))
    raw = await read_responses(reader, count, within=60)
    writer.close()
    assert statuses(raw) == [200] * count
    paths = re.findall(rb'"path": "/p/(\d+)"', raw)
    assert [int(p) for p in paths] == list(range(count)), "responses leave in request order"


async def test_a_header_line_that_never_ends_is_431_once_past_the_limit(gw_port: int, replica: Replica) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\nX-Long: ")
    sent = 0
    with pytest.raises((ConnectionError, AssertionError, TimeoutError)):
        while sent < 1024 * 1024:  # far past max_header_bytes (8 KiB)
            writer.write(b"a" * 1024)
            await writer.drain()
            sent += 1024
            if reader.at_eof() or reader._buffer:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0)
        raise AssertionError("the gateway kept reading the header line")
    raw = await read_all(reader)
    writer.close()
    assert statuses(raw) == [431], raw[:300]
    assert sent < 64 * 1024, f"the gateway read {sent} bytes of one header line"
    assert replica.requests == 0


BAD_AFTER_GOOD = {
    "header-without-colon": b"GET /second HTTP/1.1\r\nHost: " + HOST + b"\r\nBad Header\r\n\r\n",
    "chunk-size-negative": b"POST /second HTTP/1.1\r\nHost: "
    + HOST
    + b"\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "chunk-size-3g": b"POST /second HTTP/1.1\r\nHost: " + HOST + b"\r\nTransfer-Encoding: chunked\r\n\r\n3g\r\nabc\r\n0\r\n\r\n",
    "chunk-size-0x3": b"POST /second HTTP/1.1\r\nHost: "
    + HOST
    + b"\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    "chunk-lf-only": b"POST /second HTTP/1.1\r\nHost: " + HOST + b"\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    "chunk-size-17-hex-digits": b"POST /second HTTP/1.1\r\nHost: "
    + HOST
    + b"\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
    "tls-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
}


@pytest.mark.parametrize("later", [False, True], ids=["same-write", "50ms-later"])
@pytest.mark.parametrize("bad", list(BAD_AFTER_GOOD.values()), ids=list(BAD_AFTER_GOOD))
async def test_bad_bytes_after_a_good_request_cost_it_nothing(gw_port: int, replica: Replica, bad: bytes, later: bool) -> None:
    """The accepted request is answered, then 400, then the connection closes (nginx does the same)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    if later:
        writer.write(GOOD)
        await asyncio.sleep(0.05)  # kept: the client's own pace (the bad bytes in a later read) is the scenario
        writer.write(bad)
    else:
        writer.write(GOOD + bad)
    raw = await read_all(reader)
    writer.close()
    assert statuses(raw) == [200, 400], raw[:600]
    assert b'"path": "/first"' in raw
    assert raw.count(b"connection: close") == 1 and raw.rstrip().endswith(b"}")
    if not later:
        assert replica.requests == 1, "the bad request never reached the replica"


@pytest.mark.parametrize("later", [False, True], ids=["same-write", "50ms-later"])
async def test_garbage_after_a_connection_close_request_is_ignored(gw_port: int, replica: Replica, later: bool) -> None:
    first = b"GET /first HTTP/1.1\r\nHost: " + HOST + b"\r\nConnection: close\r\n\r\n"
    garbage = b"\x00\x01\x02 not http at all \r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    if later:
        writer.write(first)
        await asyncio.sleep(0.05)  # kept: the client's own pace (the garbage in a later read) is the scenario
        try:
            writer.write(garbage)
        except ConnectionError:
            pass
    else:
        writer.write(first + garbage)
    raw = await read_all(reader)
    writer.close()
    assert statuses(raw) == [200], raw[:600]
    assert b'"path": "/first"' in raw


async def test_bad_chunk_in_the_body_of_a_request_under_way_is_400(gw_port: int, replica: Replica) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    await asyncio.sleep(0.05)  # kept: the client's own pace (the bad chunk after the body started) is the scenario
    writer.write(b"zz\r\n")
    raw = await read_all(reader)
    writer.close()
    assert statuses(raw) == [400], raw[:600]


async def test_a_chunked_body_complete_before_the_replica_connection_is_terminated_once(tmp_path: object) -> None:
    """Head and whole chunked body in one write, replica connection not yet open: one "0" chunk upstream, not two.

    A second terminator would sit on the pooled connection and be parsed by the replica as the
    start of the next request (the soak caught an aiohttp replica answering it with a 400).
    """
    from tests.router.support import read_response, start_raw

    extra: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        while (size := int((await reader.readuntil(b"\r\n")).strip(), 16)) != 0:
            await reader.readexactly(size + 2)
        assert await reader.readexactly(2) == b"\r\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        try:
            extra.append(await asyncio.wait_for(reader.read(100), 0.3))
        except TimeoutError:
            extra.append(b"")

    raw, port = await start_raw(handler)
    gw, gw_port = await start_gateway(config(static_service("iris", [f"http://127.0.0.1:{port}"])), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: " + HOST + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        out = await read_response(reader)
        assert statuses(out) == [200]
        writer.close()
        await wait_until(lambda: extra, "the replica to finish reading")
        assert extra == [b""], f"the replica got bytes after the request: {extra[0]!r}"
    finally:
        await gw.stop(drain_timeout=1)
        raw.close()
