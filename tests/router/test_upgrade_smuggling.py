"""Bytes after an Upgrade request head never reach a replica unless it answered 101 (issue 7, item 1).

The attack: ``GET`` with ``Connection: Upgrade`` immediately followed, in the same write, by a request
for another virtual host. If the gateway writes both upstream and the replica declines the upgrade
(200, keep-alive), the replica parses the second request and its response waits on a pooled
connection for the next, unrelated client.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import load
from tests.conftest import wait_until
from tests.nginx import Nginx
from tests.router import plain_replica
from tests.router.support import (
    body_json,
    config,
    raw_exchange,
    read_head,
    start_gateway,
    start_raw,
    start_replica,
    static_service,
)

WEB = b"web.default.example.com"
ATTACK = (
    b"GET / HTTP/1.1\r\nHost: " + WEB + b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    b"POST /app HTTP/1.1\r\nHost: internal.local\r\nX-Forwarded-For: 6.6.6.6\r\nContent-Length: 10\r\n\r\n"
)
VICTIM = b"GET /my-page HTTP/1.1\r\nHost: " + WEB + b"\r\n\r\n"


async def exchange_until(port: int, data: bytes, responses: int) -> bytes:
    """Send `data`, read until `responses` complete responses arrived or the gateway closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    try:
        while out.count(b"HTTP/1.1 ") < responses or not complete(out):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            out += chunk
    finally:
        writer.close()
    return out


def complete(raw: bytes) -> bool:
    head, sep, body = raw.rpartition(b"HTTP/1.1 ")[2].partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


async def attack_then_victim(port: int) -> tuple[bytes, bytes]:
    attacker = await raw_exchange(port, ATTACK, open_after=2.0)
    victim = await exchange_until(port, VICTIM, 1)
    return attacker, victim


def assert_attack_contained(attacker: bytes, victim: bytes) -> None:
    assert victim.startswith(b"HTTP/1.1 200"), victim[:300]
    assert b"/my-page" in victim and b"/app" not in victim, victim[-300:]
    # The attacker got the answer to its GET; its second request was routed (no service for
    # internal.local: 404) or dropped with the connection, never proxied.
    assert attacker.startswith(b"HTTP/1.1 200"), attacker[:300]
    for response in attacker.split(b"HTTP/1.1 ")[2:]:
        assert response.startswith(b"404") and b"internal.local" in response, response[:300]


async def test_declined_upgrade_python_replica(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []
    server, port = await plain_replica.start(seen.append)
    gw, gw_port = await start_gateway(config(static_service("web", [f"http://127.0.0.1:{port}"])), str(tmp_path))
    try:
        attacker, victim = await attack_then_victim(gw_port)
        assert_attack_contained(attacker, victim)
        assert [(e["method"], e["target"]) for e in seen] == [("GET", "/"), ("GET", "/my-page")], seen
    finally:
        await gw.stop(drain_timeout=1)
        server.close()


@pytest.mark.e2e
async def test_declined_upgrade_nginx(tmp_path: Path) -> None:
    nginx = Nginx(
        tmp_path,
        """
    server {
        listen 127.0.0.1:{port} default_server;
        location / { return 200 "web $uri\\n"; }
    }
    server {
        listen 127.0.0.1:{port};
        server_name internal.local;
        location /app { return 200 "SECRET internal /app for $http_x_forwarded_for\\n"; }
    }
""",
    )
    gw, gw_port = await start_gateway(config(static_service("web", [f"http://127.0.0.1:{nginx.port}"])), str(tmp_path))
    try:
        attacker, victim = await attack_then_victim(gw_port)
        assert victim.startswith(b"HTTP/1.1 200") and victim.endswith(b"web /my-page\n"), victim
        assert b"SECRET" not in attacker + victim
        for response in attacker.split(b"HTTP/1.1 ")[2:]:
            assert response.startswith(b"404"), response[:300]
        # nginx logs a request when its response is done
        await wait_until(lambda: any("/my-page" in line for line in nginx.requests()), "nginx to log the victim")
        logged = nginx.requests()
        assert not any("internal.local" in line or "/app" in line for line in logged), logged
        assert sum("/my-page" in line for line in logged) == 1, logged
    finally:
        await gw.stop(drain_timeout=1)
        nginx.stop()


@pytest.mark.e2e
async def test_declined_upgrade_during_cold_start(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    cfg = tmp_path / "gw.yaml"
    replica = Path(plain_replica.__file__)
    cfg.write_text(
        f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  autoscaler: {{initialScale: 0, allowZeroInitialScale: true}}
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata: {{name: web}}
spec:
  default:
    command: ["{sys.executable}", "{replica}", "{{port}}", "{log}"]
  service: {{minScale: 0}}
"""
    )
    gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    gw_port = gw.proxy.sockets[0][1]
    try:
        assert gw.proxy.routes.services[0].default.throttler.ready == 0
        attacker, victim = await attack_then_victim(gw_port)
        assert b"x-gateway-cold-start: true" in attacker.lower()
        assert_attack_contained(attacker, victim)
        seen = [json.loads(line) for line in log.read_text().splitlines()]
        assert [(e["method"], e["target"]) for e in seen] == [("GET", "/"), ("GET", "/my-page")], seen
    finally:
        await gw.stop(drain_timeout=1)


def ws_frame(text: bytes) -> bytes:
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    return struct.pack("!BB", 0x81, 0x80 | len(text)) + mask + payload


async def test_bytes_sent_before_the_101_reach_the_replica_after_it(tmp_path: Path) -> None:
    """An eager client's first frame, written with the handshake, is delivered once the replica agreed."""
    replica = await start_replica("ws")
    gw, gw_port = await start_gateway(config(static_service("web", [replica.url])), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw_port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: " + WEB + b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" + ws_frame(b"early")
        )
        head = await asyncio.wait_for(read_head(reader), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        frame = await asyncio.wait_for(reader.readexactly(2 + len(b"echo:early")), 5)
        assert frame[2:] == b"echo:early"
        writer.close()
    finally:
        await gw.stop(drain_timeout=1)
        await replica.runner.cleanup()


async def test_101_to_a_request_that_asked_no_upgrade_is_a_502(tmp_path: Path) -> None:
    async def switcher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        await writer.drain()
        await reader.read()

    raw, port = await start_raw(switcher)
    gw, gw_port = await start_gateway(config(static_service("web", [f"http://127.0.0.1:{port}"])), str(tmp_path))
    try:
        out = await raw_exchange(
            gw_port,
            b"GET / HTTP/1.1\r\nHost: " + WEB + b"\r\n\r\nGET /next HTTP/1.1\r\nHost: " + WEB + b"\r\nConnection: close\r\n\r\n",
        )
        responses = out.split(b"HTTP/1.1 ")[1:]
        assert [r[:3] for r in responses] == [b"502", b"502"], out[:600]
        assert "switched protocols" in str(body_json(b"HTTP/1.1 " + responses[0].split(b"HTTP/1.1")[0])["error"])
    finally:
        await gw.stop(drain_timeout=1)
        raw.close()
