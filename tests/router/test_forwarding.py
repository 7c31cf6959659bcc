"""Host validation and the forwarding headers replicas can trust (issue 7, item 6)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from gateway.app import Gateway
from gateway.config.model import ProxySettings
from tests.router.support import (
    Replica,
    body_json,
    config,
    one_response,
    raw_exchange,
    start_gateway,
    static_service,
)

HOST = b"iris.default.example.com"
CLAIMS = (
    b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example.org\r\n"
    b"Forwarded: for=203.0.113.9;proto=https\r\nX-Real-IP: 203.0.113.9\r\nX-Forwarded-For: 203.0.113.9\r\n"
)


async def gateway(replica: Replica, tmp_path: object, trusted: tuple[str, ...] = ()) -> tuple[Gateway, int]:
    return await start_gateway(
        config(static_service("iris", [replica.url]), proxy=ProxySettings(trusted_proxies=trusted)), str(tmp_path)
    )


def seen_headers(response: bytes) -> dict[str, str]:
    assert response.startswith(b"HTTP/1.1 200"), response[:300]
    return cast(dict[str, str], body_json(response)["headers"])


@pytest.mark.parametrize(
    "host",
    [
        b"default-iris.default.example.com:80@evil.com",
        b"default-iris.default.example.com:evil.com/../x",
        b"iris.default.example.com/x",
        b"iris.default.example.com:80:80",
        b"iris.default.example.com:999999",
        b"iris.default.example.com:99999",
        b"user@iris.default.example.com",
        b"iris.default.example.com\\x",
        b"iris default.example.com",
        b"[::1",
    ],
)
async def test_a_host_that_is_not_host_and_port_is_400(replica: Replica, tmp_path: object, host: bytes) -> None:
    gw, port = await gateway(replica, tmp_path)
    try:
        out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400"), out[:300]
        assert "invalid Host header" in str(body_json(out)["error"])
        assert replica.requests == 0
    finally:
        await gw.stop(drain_timeout=1)


@pytest.mark.parametrize(
    "host", [b"iris.default.example.com", b"IRIS.default.example.com.:8080", b"default-iris.default.example.com:"]
)
async def test_valid_hosts_still_route(replica: Replica, tmp_path: object, host: bytes) -> None:
    gw, port = await gateway(replica, tmp_path)
    try:
        out = await one_response(port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert seen_headers(out)["host"] == host.decode()
    finally:
        await gw.stop(drain_timeout=1)


async def test_an_absolute_target_with_userinfo_or_a_bad_authority_is_400(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path)
    try:
        for target in (b"http://x@iris.default.example.com/", b"http://iris.default.example.com:80:80/"):
            out = await raw_exchange(port, b"GET " + target + b" HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 400"), out[:300]
        assert replica.requests == 0
    finally:
        await gw.stop(drain_timeout=1)


async def test_an_untrusted_client_cannot_claim_scheme_host_or_address(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path)
    try:
        out = await one_response(port, b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + CLAIMS + b"\r\n")
        headers = seen_headers(out)
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-host"] == HOST.decode()
        assert "forwarded" not in headers and "x-real-ip" not in headers
        assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"  # appended, as nginx's $proxy_add_x_forwarded_for
    finally:
        await gw.stop(drain_timeout=1)


async def test_a_trusted_proxy_s_forwarding_headers_are_kept(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path, trusted=("10.0.0.0/8", "127.0.0.1/32"))
    try:
        out = await one_response(port, b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + CLAIMS + b"\r\n")
        headers = seen_headers(out)
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-host"] == "shop.example.org"
        assert headers["forwarded"] == "for=203.0.113.9;proto=https"
        assert headers["x-real-ip"] == "203.0.113.9"
        assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        plain = seen_headers(await one_response(port, b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"))
        assert plain["x-forwarded-proto"] == "http" and plain["x-forwarded-host"] == HOST.decode()
    finally:
        await gw.stop(drain_timeout=1)


async def test_a_peer_outside_the_trusted_networks_is_untrusted(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path, trusted=("10.0.0.0/8",))
    try:
        headers = seen_headers(await one_response(port, b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + CLAIMS + b"\r\n"))
        assert headers["x-forwarded-proto"] == "http" and "x-real-ip" not in headers
    finally:
        await gw.stop(drain_timeout=1)


async def test_connection_cannot_strip_host_framing_or_what_the_gateway_sets(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path)
    try:
        out = await one_response(
            port,
            b"POST / HTTP/1.1\r\nHost: " + HOST + b"\r\nConnection: host, content-length, x-forwarded-for, "
            b"x-forwarded-proto, x-forwarded-host, transfer-encoding, x-private\r\nX-Private: 1\r\n"
            b"Content-Length: 5\r\n\r\nhello",
        )
        headers = seen_headers(out)
        assert headers["host"] == HOST.decode()
        assert headers["content-length"] == "5" and b'"body_len": 5' in out
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-host"] == HOST.decode()
        assert "x-private" not in headers
    finally:
        await gw.stop(drain_timeout=1)


async def test_other_forwarding_claims_are_dropped_from_untrusted_clients(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path)
    claims = (
        b"X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\nX-Forwarded-Scheme: https\r\nX-Original-URL: /admin\r\n"
        b"True-Client-IP: 1.2.3.4\r\nX-Client-IP: 1.2.3.4\r\nX_Forwarded_Proto: https\r\nX-Kept: yes\r\n"
    )
    try:
        headers = seen_headers(await one_response(port, b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + claims + b"\r\n"))
        for name in (
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-scheme",
            "x-original-url",
            "true-client-ip",
            "x-client-ip",
        ):
            assert name not in headers, name
        assert not any("_" in name for name in headers), headers
        assert headers["x-kept"] == "yes" and headers["x-forwarded-proto"] == "http"
    finally:
        await gw.stop(drain_timeout=1)


@pytest.mark.parametrize(
    "request_line, status",
    [(b"GET / HTTP/2.0", 505), (b"GET / HTTP/0.9", 505), (b"GET * HTTP/1.1", 400), (b"OPTIONS * HTTP/1.1", 0)],
)
async def test_request_line_versions_and_star(replica: Replica, tmp_path: object, request_line: bytes, status: int) -> None:
    gw, port = await gateway(replica, tmp_path)
    try:
        out = await raw_exchange(port, request_line + b"\r\nHost: " + HOST + b"\r\nConnection: close\r\n\r\n")
        if status:
            assert out.startswith(b"HTTP/1.1 %d" % status), out[:200]
        else:  # OPTIONS * is the replica's to answer
            assert b"x-gateway-revision: iris-default" in out and not out.startswith(b"HTTP/1.1 400"), out[:200]
    finally:
        await gw.stop(drain_timeout=1)


async def test_expect_100_continue_is_ignored_for_http_1_0(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path)
    try:
        out = await raw_exchange(
            port, b"POST / HTTP/1.0\r\nHost: " + HOST + b"\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"
        )
        assert out.startswith(b"HTTP/1.1 200") and b"100 Continue" not in out, out[:200]
    finally:
        await gw.stop(drain_timeout=1)


async def test_every_x_forwarded_style_claim_is_dropped_from_untrusted_clients(replica: Replica, tmp_path: object) -> None:
    gw, port = await gateway(replica, tmp_path)
    claims = (
        b"X-Forwarded-Uri: /admin\r\nX-Forwarded-Method: DELETE\r\nX-Forwarded-Server: x\r\nX-Envoy-External-Address: 1.2.3.4\r\n"
        b"X-Original-Forwarded-For: 1.2.3.4\r\nX-Host: evil.example.com\r\nX_Forwarded_For: 1.2.3.4\r\n"
    )
    try:
        headers = seen_headers(await one_response(port, b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + claims + b"\r\n"))
        leaked = [n for n in headers if n.startswith(("x-forwarded-", "x-envoy-", "x-original-", "x-host", "x_"))]
        assert sorted(leaked) == ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"], headers
        assert headers["x-forwarded-for"] == "127.0.0.1"
    finally:
        await gw.stop(drain_timeout=1)


async def test_an_empty_upgrade_header_is_no_upgrade(tmp_path: object) -> None:
    """Gateway and parser must agree: with an empty Upgrade the request is a plain one, and a 101 is refused."""
    from tests.router.support import read_head, start_raw

    async def switcher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        assert b"upgrade" not in head.lower().split(b"\r\n\r\n")[0].replace(b"connection: close", b""), head
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
        await writer.drain()
        await reader.read()

    raw, port = await start_raw(switcher)
    gw, gw_port = await start_gateway(config(static_service("iris", [f"http://127.0.0.1:{port}"])), str(tmp_path))
    try:
        out = await one_response(gw_port, b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\nConnection: Upgrade\r\nUpgrade: \r\n\r\n")
        assert out.startswith(b"HTTP/1.1 502") and b"switched protocols" in out, out[:300]
    finally:
        await gw.stop(drain_timeout=1)
        raw.close()
