"""Two gateway instances sharing one autoscaler through a real redis-server, with the local backend:
the leader runs the replicas, the follower routes to them; load through both is summed; a replica's
containerConcurrency holds across both; Redis going away fails no request."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from gateway.admin import create_admin_app, readiness
from gateway.app import Gateway
from gateway.config import load
from gateway.status import render
from tests.conftest import wait_until
from tests.shared.redis_server import RedisServer

pytestmark = pytest.mark.e2e

REPLICA = Path(__file__).with_name("sleepy_replica.py")
HOST = "sleepy.default.example.com"


def write_config(path: Path, redis_url: str, *, target: int, cc: int = 0, max_scale: int = 0) -> None:
    path.write_text(
        f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  redis: {redis_url}
  autoscaler:
    stableWindow: 6s
    scaleToZeroGracePeriod: 1s
    tickInterval: 0.25s
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: sleepy
spec:
  default:
    command: ["{sys.executable}", "{REPLICA}", "{{port}}"]
  service:
    minScale: 0
    maxScale: {max_scale}
    target: {target}
    targetUtilization: "100"
  containerConcurrency: {cc}
"""
    )


Start = Callable[..., Awaitable[list[tuple[Gateway, httpx.AsyncClient]]]]


@pytest.fixture
async def pair(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Start]:
    started: list[tuple[Gateway, httpx.AsyncClient]] = []

    async def start(**config: Any) -> list[tuple[Gateway, httpx.AsyncClient]]:
        cfg = tmp_path / "gw.yaml"
        write_config(cfg, redis_server.url, **config)
        for name in ("a", "b"):
            gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / name)
            assert gw.shared is not None
            coordinator = gw.shared.coordinator
            coordinator.interval, coordinator.lease_ttl, coordinator.member_ttl = 0.2, 1.0, 1.0
            await gw.start(listen="127.0.0.1:0")
            client = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gw.proxy.sockets[0][1]}",
                headers={"Host": HOST},
                timeout=30,
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
            )
            started.append((gw, client))
        await wait_until(lambda: sum(1 for gw, _ in started if gw.shared and gw.shared.coordinator.leader) == 1, "one leader")
        return list(started)

    yield start
    for gw, client in started:
        await client.aclose()
        try:
            async with asyncio.timeout(30):
                await gw.stop(drain_timeout=2)
        except TimeoutError:
            stuck = "\n".join(f"{task.get_name()}: {task.get_stack(limit=8)}" for task in asyncio.all_tasks())
            raise AssertionError(f"the gateway did not stop within 30 s; tasks:\n{stuck}") from None


def revision(gw: Gateway) -> dict[str, Any]:
    doc = cast(dict[str, Any], gw.describe())
    return cast(dict[str, Any], doc["services"][0]["revisions"][0])


def leader_of(pairs: list[tuple[Gateway, httpx.AsyncClient]]) -> Gateway:
    return next(gw for gw, _ in pairs if gw.shared and gw.shared.coordinator.leader)


@asynccontextmanager
async def under_load(pairs: list[tuple[Gateway, httpx.AsyncClient]], per_client: int, ms: int) -> AsyncIterator[list[int]]:
    """`per_client` requests of `ms` each in flight through every instance, all along; yields the answers' codes."""
    stop = asyncio.Event()
    codes: list[int] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            codes.append((await client.get(f"/work?ms={ms}")).status_code)

    workers = asyncio.gather(*(worker(client) for _, client in pairs for _ in range(per_client)))
    try:
        yield codes
    finally:
        stop.set()
        await workers


async def replica_stats(gw: Gateway) -> list[dict[str, int]]:
    async with httpx.AsyncClient(timeout=5) as c:
        return [(await c.get(f"{url}/stats")).json() for url in revision(gw)["endpoints"]]


async def test_load_through_both_instances_is_summed_by_the_leader(pair: Start) -> None:
    pairs = await pair(target=2)
    async with under_load(pairs, 4, 200) as codes:
        leader = leader_of(pairs)
        follower = next(gw for gw, _ in pairs if gw is not leader)
        # 4 in flight through each instance, target 2 per replica: 8 / 2 = 4 replicas; either alone would ask for 2
        await wait_until(lambda: revision(leader)["desired"] >= 4, "4 replicas wanted by the leader", within=20)
        await wait_until(lambda: revision(follower)["ready"] >= 4, "the follower routing to the leader's 4", within=20)
        assert revision(follower)["backend"] == "local" and "leader" in (revision(follower)["message"] or "")
        assert revision(leader)["desired"] <= 5
    assert set(codes) == {200}


async def test_a_replicas_concurrency_limit_holds_across_both_instances(pair: Start) -> None:
    pairs = await pair(target=2, cc=2, max_scale=2)
    async with under_load(pairs, 6, 150) as codes:
        leader = leader_of(pairs)
        await wait_until(lambda: revision(leader)["ready"] == 2, "2 replicas", within=20)
        assert sorted(gw.shared.coordinator.share for gw, _ in pairs if gw.shared) == [(0, 2), (1, 2)]
        await wait_until(lambda: len(codes) >= 100, "100 answers", within=30)
    stats = await replica_stats(leader_of(pairs))
    assert [s["max_in_flight"] for s in stats] == [2, 2], stats  # filled, never above the limit
    assert set(codes) == {200}


async def test_redis_going_away_fails_no_request_and_the_instances_rejoin(pair: Start, redis_server: RedisServer) -> None:
    pairs = await pair(target=2)
    async with under_load(pairs, 2, 100) as codes:
        leader = leader_of(pairs)
        await wait_until(lambda: all(revision(gw)["ready"] >= 1 for gw, _ in pairs), "replicas on both", within=20)
        redis_server.kill()
        await wait_until(lambda: all(gw.shared and gw.shared.health() for gw, _ in pairs), "the outage seen by both")
        doc = cast(dict[str, Any], leader.describe())
        assert doc["shared"]["reachable"] is False and "unreachable" in doc["shared"]["message"]
        served = len(codes)
        await wait_until(lambda: len(codes) >= served + 50, "50 more answers with Redis away", within=20)
        redis_server.start()
        await wait_until(lambda: all(gw.shared and gw.shared.health() is None for gw, _ in pairs), "both rejoined", within=10)
        await wait_until(lambda: sum(1 for gw, _ in pairs if gw.shared and gw.shared.coordinator.leader) == 1, "one leader")
    assert set(codes) == {200}


async def test_status_readiness_and_metrics_say_who_leads_and_when_redis_is_away(pair: Start, redis_server: RedisServer) -> None:
    pairs = await pair(target=2)
    leader = leader_of(pairs)
    follower = next(gw for gw, _ in pairs if gw is not leader)
    assert leader.shared is not None and follower.shared is not None
    await wait_until(lambda: follower.describe()["shared"]["holder"], "the follower to know who leads")  # type: ignore[index]
    lines = render(cast(dict[str, Any], follower.describe())).splitlines()
    assert lines[0] == (
        f"shared state {redis_server.url}: 2 instances, this one ({follower.shared.coordinator.instance}) "
        f"follower of {leader.shared.coordinator.instance}"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_admin_app(leader)), base_url="http://admin") as admin:
        metrics = (await admin.get("/metrics")).text
        assert "gateway_shared_leader 1.0" in metrics and "gateway_shared_instances 2.0" in metrics
        assert "gateway_shared_state_up 1.0" in metrics and "gateway_shared_data_planes 2.0" in metrics
        redis_server.kill()
        await wait_until(lambda: leader.shared and leader.shared.health(), "the outage seen")
        ready = await admin.get("/readyz")
        assert ready.status_code == 200  # still serving: the outage is said, not a reason to take the gateway out
        assert "unreachable" in ready.text and "scaling paused" in ready.text
        assert "gateway_shared_state_up 0.0" in (await admin.get("/metrics")).text
        # past its lease by its own clock the last leader acts on nothing, and no view calls it the leader any more
        coordinator = leader.shared.coordinator
        await wait_until(lambda: not coordinator.holds(), "the lease over by the leader's clock", within=15)
        assert "gateway_shared_leader 0.0" in (await admin.get("/metrics")).text
    lines = render(cast(dict[str, Any], leader.describe())).splitlines()
    assert lines[0].endswith(
        f"this one ({leader.shared.coordinator.instance}) cut off from Redis (scales nothing until it is back)"
    )
    assert lines[1].startswith("shared state: ")


async def test_an_instance_that_starts_while_redis_is_away_is_not_ready_until_it_has_joined(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, redis_server.url, target=2)
    redis_server.kill()
    gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "a")
    assert gw.shared is not None
    gw.shared.coordinator.interval = 0.2
    try:
        await gw.start(listen="127.0.0.1:0")  # it starts (serving what it can), but says it is not ready
        ready, text = readiness(gw)
        assert not ready and text.startswith(f"not ready: joining the gateways sharing {redis_server.url}")
        redis_server.start()
        await wait_until(lambda: readiness(gw)[0], "ready once it has joined", within=10)
    finally:
        await gw.stop(drain_timeout=1)


async def test_an_instance_stalled_past_its_member_ttl_rejoins_without_overfilling_a_replica(pair: Start) -> None:
    """One instance's round trips stop past the member TTL under load through both (its loop stalled, as far as
    Redis can tell): the other drops it and, a TTL and two beats later, takes its slots; the stalled one holds
    none meanwhile and, back, none until the other has seen it. No replica above 2, no request failed."""
    pairs = await pair(target=2, cc=2, max_scale=2)
    async with under_load(pairs, 6, 150) as codes:
        leader = leader_of(pairs)
        await wait_until(lambda: revision(leader)["ready"] == 2, "2 replicas", within=20)
        await wait_until(lambda: len(codes) >= 40, "load through both", within=20)
        stalled = next(gw for gw, _ in pairs if gw is not leader)
        assert stalled.shared is not None and leader.shared is not None
        coordinator, other = stalled.shared.coordinator, leader.shared.coordinator
        tasks = coordinator._tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await wait_until(lambda: other.share == (0, 1), "the stalled one dropped by the other", within=5)
        # its watchdog sees no round trip for a member TTL: it holds nothing (before the other's hold runs out)
        await wait_until(lambda: coordinator.describe().get("held"), "the stalled one holding nothing", within=2)
        runtimes = leader._runtimes
        await wait_until(lambda: (runtimes.share, runtimes.also) == ((0, 1), ()), "the whole replica to the other", within=5)
        served = len(codes)
        await wait_until(lambda: len(codes) >= served + 20, "20 answers meanwhile", within=10)
        loop = asyncio.get_running_loop()
        coordinator._tasks = [loop.create_task(coordinator._run()), loop.create_task(coordinator._listen())]
        await wait_until(lambda: other.share[1] == 2 and not coordinator.describe()["held"], "rejoined", within=5)
        served = len(codes)
        await wait_until(lambda: len(codes) >= served + 50, "50 more answers through both", within=20)
    stats = await replica_stats(leader)
    assert max(s["max_in_flight"] for s in stats) <= 2, stats
    assert set(codes) == {200}
