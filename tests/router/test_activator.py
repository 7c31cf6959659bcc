"""The activator path of the proxy: requests held while a revision has no replica, then released."""

from __future__ import annotations

import asyncio

import httpx

from gateway.config.model import Config, GatewaySettings, ProxySettings, RevisionSpec, ServiceSpec
from gateway.router.revision import RevisionHooks, RevisionRuntime, RevisionSettings
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from gateway.types import Endpoint
from tests.conftest import free_port, wait_until
from tests.router.support import Replica

HOST = "held.default.example.com"


class Held:
    def __init__(self, server: ProxyServer, runtime: RevisionRuntime, pokes: list[int]) -> None:
        self.server = server
        self.runtime = runtime
        self.pokes = pokes
        self.url = f"http://127.0.0.1:{server.sockets[0][1]}"


async def held(
    *, queue_depth: int = 100, activation_timeout: float = 5.0, request_timeout: float = 30.0, concurrency: int = 0
) -> Held:
    spec = ServiceSpec(name="held", namespace="default", default=RevisionSpec(name="default"))
    pokes: list[int] = []
    runtime = RevisionRuntime(
        spec.key("default"),
        RevisionSettings(
            container_concurrency=concurrency,
            queue_depth=queue_depth,
            scalable=True,
            request_timeout=request_timeout,
            activation_timeout=activation_timeout,
        ),
        RevisionHooks(poke=lambda: pokes.append(1)),
    )
    config = Config(gateway=GatewaySettings(), services=(spec,))
    server = ProxyServer(RouteTable.build(config, {spec.key("default"): runtime}), ProxySettings())
    await server.start("127.0.0.1", 0)
    return Held(server, runtime, pokes)


async def test_requests_wait_for_a_replica_and_are_marked_cold(replica: Replica) -> None:
    h = await held()
    try:
        async with httpx.AsyncClient(base_url=h.url, headers={"Host": HOST}, timeout=10) as c:
            pending = [asyncio.create_task(c.post("/p", content=b"body")) for _ in range(5)]
            await wait_until(lambda: h.runtime.throttler.queued == 5, "five requests held")
            assert h.pokes
            assert not any(t.done() for t in pending)
            h.runtime.set_endpoints(frozenset({Endpoint("127.0.0.1", replica.port)}))
            done = await asyncio.gather(*pending)
        assert all(r.status_code == 200 and r.json()["body_len"] == 4 for r in done)
        assert all(r.headers["x-gateway-cold-start"] == "true" for r in done)
        assert h.runtime.cold_starts is not None and h.runtime.cold_starts.count == 5
        assert h.runtime.throttler.queued == 0
    finally:
        await h.server.close()


async def test_queue_full_gives_503_with_retry_after() -> None:
    h = await held(queue_depth=2)
    try:
        async with httpx.AsyncClient(base_url=h.url, headers={"Host": HOST}, timeout=10) as c:
            waiting = [asyncio.create_task(c.get("/")) for _ in range(2)]
            await wait_until(lambda: h.runtime.throttler.queued == 2, "the queue to fill")
            r = await c.get("/")
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json() == {
                "error": "too many requests waiting for this revision",
                "service": "held",
                "revision": "held-default",
            }
            for t in waiting:
                t.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
    finally:
        await h.server.close()


async def test_activation_timeout_gives_504_and_frees_the_queue() -> None:
    h = await held(activation_timeout=0.3)
    try:
        async with httpx.AsyncClient(base_url=h.url, headers={"Host": HOST}, timeout=10) as c:
            r = await c.get("/")
        assert r.status_code == 504
        assert "waiting for a replica" in r.json()["error"]
        await asyncio.sleep(0)
        assert h.runtime.throttler.queued == 0
    finally:
        await h.server.close()


async def test_client_leaving_while_queued_gives_its_place_up(replica: Replica) -> None:
    h = await held(queue_depth=1)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.server.sockets[0][1])
        writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        await writer.drain()
        await wait_until(lambda: h.runtime.throttler.queued == 1, "the request held")
        writer.transport.abort()
        await wait_until(lambda: h.runtime.throttler.queued == 0, "the abandoned place given up")
        h.runtime.set_endpoints(frozenset({Endpoint("127.0.0.1", replica.port)}))
        async with httpx.AsyncClient(base_url=h.url, headers={"Host": HOST}, timeout=10) as c:
            assert (await c.get("/")).status_code == 200
        assert replica.requests == 1  # the abandoned request never reached the replica
        assert all(t.in_flight == 0 for t in h.runtime.throttler.trackers.values())
    finally:
        await h.server.close()


async def test_breaker_releases_a_burst_at_capacity(replica: Replica) -> None:
    h = await held(concurrency=2)
    try:
        async with httpx.AsyncClient(base_url=h.url, headers={"Host": HOST}, timeout=10) as c:
            burst = [asyncio.create_task(c.get("/?sleep=0.05")) for _ in range(12)]
            await wait_until(lambda: h.runtime.throttler.queued == 12, "the burst held")
            h.runtime.set_endpoints(frozenset({Endpoint("127.0.0.1", replica.port)}))
            results = await asyncio.gather(*burst)
        assert all(r.status_code == 200 for r in results)
        assert replica.max_in_flight == 2
    finally:
        await h.server.close()


async def test_a_request_whose_replicas_all_refuse_waits_for_one_that_answers(replica: Replica) -> None:
    # A trial killed the leader of two gateways: its local replicas went with it, the survivor still listed them,
    # and requests that met three refusals in a row got 502 although nothing had been sent and new replicas came.
    h = await held(activation_timeout=10.0)
    gone = [free_port() for _ in range(4)]  # nothing listens: each connect is refused at once
    try:
        h.runtime.set_endpoints(frozenset(Endpoint("127.0.0.1", port) for port in gone))
        async with httpx.AsyncClient(base_url=h.url, headers={"Host": HOST}, timeout=20) as c:
            pending = asyncio.create_task(c.get("/"))
            await wait_until(lambda: h.runtime.throttler.queued == 1, "the request held after the refusals")
            assert not pending.done()
            h.runtime.set_endpoints(frozenset({Endpoint("127.0.0.1", replica.port)}))  # the replacement
            answer = await pending
        assert answer.status_code == 200 and replica.requests == 1
    finally:
        await h.server.close()
