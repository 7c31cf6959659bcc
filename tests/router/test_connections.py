"""Connections are bounded and a local shortage is the gateway's problem (issue 7, item 5).

The descriptor-limit cases run `gateway serve` as a real process under a small RLIMIT_NOFILE; the
replica runs in the test process, out of reach of that limit.
"""

from __future__ import annotations

import asyncio
import re
import resource
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config.model import ProxySettings
from tests.conftest import free_port, serve_argv, wait_until, wait_until_blocking
from tests.router.support import Replica, config, one_response, read_response, start_gateway, static_service

ROOT = Path(__file__).resolve().parents[2]
HOST = b"iris.default.example.com"
REQUEST = b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"


async def test_a_connection_that_sends_nothing_is_closed_after_header_timeout(replica: Replica, tmp_path: Path) -> None:
    proxy = ProxySettings(header_timeout=0.3, keepalive_timeout=75)
    gw, port = await start_gateway(config(static_service("iris", [replica.url]), proxy=proxy), str(tmp_path))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 10)
        assert data == b"", "nothing was asked, so nothing is answered"
        assert time.monotonic() - started < 5, "closed by headerTimeout, not keepaliveTimeout"
        writer.close()
        assert not gw.proxy.connections
    finally:
        await gw.stop(drain_timeout=1)


async def test_at_the_connection_limit_new_clients_wait_and_busy_connections_are_served(replica: Replica, tmp_path: Path) -> None:
    proxy = ProxySettings(max_connections=4, header_timeout=30)
    gw, port = await start_gateway(config(static_service("iris", [replica.url]), proxy=proxy), str(tmp_path))
    silent = []
    try:
        a_reader, a_writer = await asyncio.open_connection("127.0.0.1", port)
        a_writer.write(b"GET /?sleep=0.6 HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n")  # busy while the limit is hit
        for _ in range(3):
            silent.append(await asyncio.open_connection("127.0.0.1", port))
        await wait_until(lambda: len(gw.proxy.connections) == 4, "four connections accepted")
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", port)  # waits in the listen backlog
        b_writer.write(REQUEST)
        with pytest.raises(TimeoutError):
            await read_response(b_reader, within=0.3)
        assert (await read_response(a_reader)).startswith(b"HTTP/1.1 200"), "a busy connection is never reclaimed"
        view = gw.proxy.connections_view()
        assert view.limit == 4 and view.limit_reached >= 1
        # A's connection is now an idle keep-alive one: reclaimed for the waiting client, as nginx does.
        assert (await read_response(b_reader, within=5)).startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(a_reader.read(), 5) == b"", "the idle keep-alive connection was closed"
        a_writer.close()
        b_writer.close()
    finally:
        for _, writer in silent:
            writer.close()
        await gw.stop(drain_timeout=1)


async def test_at_the_connection_limit_a_client_waits_until_a_connection_closes(replica: Replica, tmp_path: Path) -> None:
    proxy = ProxySettings(max_connections=3, header_timeout=30)
    gw, port = await start_gateway(config(static_service("iris", [replica.url]), proxy=proxy), str(tmp_path))
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        await wait_until(lambda: len(gw.proxy.connections) == 3, "three connections accepted")
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", port)
        b_writer.write(REQUEST)
        with pytest.raises(TimeoutError):
            await read_response(b_reader, within=0.3)  # nothing idle to reclaim: it waits
        silent.pop()[1].close()
        assert (await read_response(b_reader, within=5)).startswith(b"HTTP/1.1 200")
        b_writer.close()
    finally:
        for _, writer in silent:
            writer.close()
        await gw.stop(drain_timeout=1)


class Spawned:
    def __init__(self, proc: subprocess.Popen[str], port: int, admin: int) -> None:
        self.proc = proc
        self.port = port
        self.admin = admin

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.communicate(timeout=15)[0]


Spawn = Callable[[str, str, tuple[int, int]], Spawned]


def ready(admin: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    started: list[Spawned] = []

    def run(proxy: str, endpoint: str, nofile: tuple[int, int]) -> Spawned:
        cfg = tmp_path / "gw.yaml"
        cfg.write_text(
            "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n"
            f"  proxy: {proxy}\n---\n"
            "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: iris}\n"
            f"spec:\n  default: {{endpoints: ['{endpoint}']}}\n"
        )
        port, admin = free_port(), free_port()
        proc = subprocess.Popen(
            serve_argv(str(cfg), listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin}", state_dir=str(tmp_path / "state")),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
        )
        spawned = Spawned(proc, port, admin)
        started.append(spawned)
        try:
            wait_until_blocking(lambda: ready(admin) or proc.poll() is not None, "the gateway to be ready", within=20)
        except AssertionError:
            pytest.fail(f"gateway did not become ready: {spawned.output()}")
        if not ready(admin):
            pytest.fail(f"gateway exited: {spawned.output()}")
        return spawned

    yield run
    for spawned in started:
        if spawned.proc.poll() is None:
            spawned.proc.kill()
            spawned.proc.communicate()


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


@pytest.mark.e2e
async def test_silent_connections_cannot_exhaust_descriptors(spawn: Spawn, replica: Replica) -> None:
    """The default limit comes from RLIMIT_NOFILE: 300 silent clients under 256 descriptors harm nobody."""
    gw: Spawned = spawn("{headerTimeout: 1s}", replica.url, (256, 256))
    silent = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(300)]
    try:
        out = await one_response(gw.port, REQUEST, within=15)
        assert out.startswith(b"HTTP/1.1 200"), out[:300]
        async with httpx.AsyncClient() as c:
            text = (await c.get(f"http://127.0.0.1:{gw.admin}/metrics")).text
        assert metric(text, "gateway_client_connections_limit") == (256 - 64) * 4 // 9
        assert metric(text, "gateway_connection_limit_reached_total") >= 1
        assert metric(text, "gateway_accept_errors_total") == 0
    finally:
        for _, writer in silent:
            writer.close()
    log = gw.output()
    assert "Too many open files" not in log and "skipping it" not in log, log[-2000:]


@pytest.mark.e2e
async def test_a_descriptor_shortage_is_503_and_never_marks_the_replica_down(spawn: Spawn, replica: Replica) -> None:
    """maxConnections set far above what 128 descriptors allow: connects to the replica fail with EMFILE."""
    gw: Spawned = spawn("{maxConnections: 1000}", replica.url, (128, 128))

    async def one() -> bytes:
        try:
            return await one_response(
                gw.port, b"GET /?sleep=0.3 HTTP/1.1\r\nHost: " + HOST + b"\r\nConnection: close\r\n\r\n", within=30
            )
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            return repr(exc).encode()

    answers = await asyncio.gather(*(one() for _ in range(150)))
    codes = sorted({a[9:12] for a in answers})
    assert codes == [b"200", b"503"], [a[:200] for a in answers if not a.startswith(b"HTTP/1.1 200")][:5]
    refused = next(a for a in answers if a.startswith(b"HTTP/1.1 503"))
    assert b"the gateway cannot open a connection right now" in refused and b"retry-after" in refused.lower()
    out = await one_response(gw.port, REQUEST, within=5)
    assert out.startswith(b"HTTP/1.1 200")
    log = gw.output()
    assert "skipping it" not in log, log[-2000:]
    assert "spec.proxy.maxConnections is 1000 but the open-file limit (128) leaves room for about 28" in log


@pytest.mark.e2e
def test_serve_raises_the_soft_descriptor_limit_to_the_hard_one(spawn: Spawn, replica: Replica) -> None:
    gw: Spawned = spawn("{}", replica.url, (200, 4096))
    limits = Path(f"/proc/{gw.proc.pid}/limits").read_text()
    assert re.search(r"Max open files\s+4096\s+4096", limits), limits
    text = httpx.get(f"http://127.0.0.1:{gw.admin}/metrics").text
    assert metric(text, "gateway_client_connections_limit") == (4096 - 256) * 4 // 9


async def test_at_the_limit_with_nobody_waiting_keep_alive_clients_are_left_alone(replica: Replica, tmp_path: Path) -> None:
    """Idle connections yield only to a client that waits; four busy keep-alive clients of four slots lose nothing."""
    proxy = ProxySettings(max_connections=4)
    gw, port = await start_gateway(config(static_service("iris", [replica.url]), proxy=proxy), str(tmp_path))

    async def client() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        for _ in range(60):
            writer.write(b"POST / HTTP/1.1\r\nHost: " + HOST + b"\r\nContent-Length: 2\r\n\r\nok")
            out = await read_response(reader)
            assert out.startswith(b"HTTP/1.1 200")
            done += 1
        writer.close()
        return done

    try:
        assert await asyncio.gather(*(client() for _ in range(4))) == [60] * 4
        assert gw.proxy.connections_view().limit_reached == 0
    finally:
        await gw.stop(drain_timeout=1)
