"""Two `gateway serve --workers 2` processes sharing a real redis-server: each supervisor is one instance
in the membership with two data planes, so every replica's containerConcurrency is divided four ways and
the load of all four workers drives one decision."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until_blocking
from tests.shared.redis_server import RedisServer
from tests.workers.support import HOST, Served, config, serving

pytestmark = pytest.mark.e2e


def shared(served: Served) -> dict[str, object]:
    state: dict[str, object] = served.services()["shared"]
    return state


async def test_two_supervisors_of_two_workers_divide_each_replica_four_ways(tmp_path: Path, redis_server: RedisServer) -> None:
    text = config(min_scale=0, max_scale=4, container_concurrency=4, extra="").replace(
        "  backend: local\n", f"  backend: local\n  redis: {redis_server.url}\n"
    )
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with ExitStack() as stack:
        first = stack.enter_context(serving(tmp_path / "a", text))
        second = stack.enter_context(serving(tmp_path / "b", text))
        wait_until_blocking(lambda: [shared(first)["leader"], shared(second)["leader"]].count(True) == 1, "one leader", within=20)
        wait_until_blocking(lambda: shared(first)["instances"] == 2 and shared(second)["instances"] == 2, "both in both views")
        shares = sorted(str(shared(served)["share"]) for served in (first, second))
        assert shares == ["[0, 4]", "[2, 4]"]  # each supervisor's two workers are planes offset and offset + 1 of 4

        stop = asyncio.Event()
        codes: list[int] = []

        async def worker(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                codes.append((await client.get("/work?ms=200")).status_code)

        clients = [
            httpx.AsyncClient(base_url=served.url, headers={"Host": HOST}, timeout=60, limits=httpx.Limits(max_connections=8))
            for served in (first, second)
            for _ in range(2)
        ]
        workers = asyncio.gather(*(worker(client) for client in clients for _ in range(4)))
        try:
            leader = first if shared(first)["leader"] else second
            # 16 in flight over four workers, target 4 per replica (containerConcurrency 4 is KServe's target too)
            await asyncio.to_thread(
                wait_until_blocking, lambda: leader.revision()["desired"] >= 4, "4 replicas for all four workers' load", within=40
            )
            await asyncio.to_thread(wait_until_blocking, lambda: len(codes) >= 150, "150 answers", within=60)
        finally:
            stop.set()
            await workers
            for client in clients:
                await client.aclose()
        assert set(codes) == {200}
        async with httpx.AsyncClient(timeout=5) as c:
            peaks = [(await c.get(f"{url}/stats")).json()["max_in_flight"] for url in leader.revision()["endpoints"]]
        assert peaks and max(peaks) <= 4, peaks  # never more than containerConcurrency on a replica, four planes together
