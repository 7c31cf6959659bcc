"""Two `gateway serve` processes with the kubernetes backend on the test bed, sharing a real redis-server:
exactly one of them writes to the API (creates, scales); both route to the pods; when the leader is
killed the other takes over and is from then on the only one that writes.

Each process's requests carry its own User-Agent (`serving-gateway/VERSION (host; pid N)`), so the
emulator's request log says which gateway sent what.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import __version__
from tests.backends.kube_support import sent_by, writes_by
from tests.conftest import wait_until
from tests.e2e.test_kubernetes import ECHO, GATEWAY, POD_SERVER, Served, echo, ready, serve, stop
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.kube.server import KubeApi
from tests.shared.redis_server import RedisServer

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e

DEPLOYMENT = "/apis/apps/v1/namespaces/default/deployments/" + ECHO


def agent(served: Served) -> str:
    return f"serving-gateway/{__version__} ({socket.gethostname()}; pid {served.proc.pid})"


def deployment_writes(api: KubeApi, served: Served) -> list[tuple[str, str]]:
    return [(method, url) for method, url in writes_by(api, agent(served)) if url.startswith("/apis/apps/")]


async def doc(served: Served) -> dict[str, Any] | None:
    if served.proc.poll() is not None:
        return None
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            answer: dict[str, Any] = (await client.get(f"http://127.0.0.1:{served.admin}/admin/services")).json()
            return answer
    except httpx.HTTPError:
        return None


async def leads(served: Served) -> bool:
    found = await doc(served)
    return bool(found and found["shared"]["leader"])


async def ready_endpoints(served: Served) -> int:
    found = await doc(served)
    return len(found["services"][0]["revisions"][0]["endpoints"]) if found else 0


@pytest.fixture
def pair(cluster: Cluster, kubeconfig: Path, tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Served, Served]]:
    server = tmp_path / "pod_server.py"
    server.write_text(POD_SERVER)
    config = tmp_path / "gateway.yaml"
    shared = GATEWAY.replace("  backend: kubernetes\n", f"  backend: kubernetes\n  redis: {redis_server.url}\n")
    assert shared != GATEWAY
    config.write_text(shared + echo(server))
    first = serve(config, kubeconfig, tmp_path / "a")
    second = serve(config, kubeconfig, tmp_path / "b")
    try:
        yield first, second
    finally:
        for served in (first, second):
            stop(served)


@asynccontextmanager
async def load(served: Served, in_flight: int, ms: int) -> AsyncIterator[list[int]]:
    """`in_flight` requests of `ms` each through `served`, all along; yields the answers' codes (0: no answer)."""
    stop_ = asyncio.Event()
    codes: list[int] = []
    async with served.client() as client:

        async def worker() -> None:
            while not stop_.is_set():
                try:
                    codes.append((await client.get(f"/work?ms={ms}")).status_code)
                except httpx.HTTPError:
                    codes.append(0)

        workers = asyncio.gather(*(worker() for _ in range(in_flight)))
        try:
            yield codes
        finally:
            stop_.set()
            await workers


async def test_one_gateway_writes_the_deployment_and_the_other_takes_over_when_it_dies(
    pair: tuple[Served, Served], cluster: Cluster
) -> None:
    first, second = pair
    for served in pair:
        await wait_until(lambda served=served: ready(served), "both gateways ready", within=30)  # type: ignore[misc]
    await wait_until(lambda: _one_leader(first, second), "one leader of the two", within=30)
    leader, follower = (first, second) if await leads(first) else (second, first)
    await wait_until(lambda: cluster.api.objects("deployments", "default"), "the Deployment made", within=20)

    # containerConcurrency 2, 3 requests in flight through each gateway: the leader scales on all 6
    async with load(leader, 3, 400) as through_leader, load(follower, 3, 400) as through_follower:
        await wait_until(lambda: len(cluster.ready_pods(ECHO)) >= 3, "3 pods for the summed load", within=60)
        await wait_until(lambda: ready_endpoints(follower), "the follower routing to the pods", within=20)
    assert set(through_leader) == {200} and set(through_follower) == {200}
    writes = deployment_writes(cluster.api, leader)
    assert [w for w in writes if w[0] == "POST"] == [("POST", DEPLOYMENT.rsplit("/", 1)[0])]
    assert ("PATCH", f"{DEPLOYMENT}/scale") in writes
    assert deployment_writes(cluster.api, follower) == []
    assert any(url.startswith("/apis/apps/") for _, url in sent_by(cluster.api, agent(follower)))  # it looks, though

    leader.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    await wait_until(lambda: leads(follower), "the follower leading", within=20)
    print(f"\nleader killed: the other led after {time.monotonic() - killed:.2f} s")
    # idle now: the new leader (and it alone) scales the revision to zero
    await wait_until(lambda: not cluster.pods(ECHO), "scaled to zero by the new leader", within=60)
    taken = deployment_writes(cluster.api, follower)
    assert taken and {method for method, _ in taken} == {"PATCH"}
    assert all(url == f"{DEPLOYMENT}/scale" for _, url in taken)
    assert deployment_writes(cluster.api, leader) == writes  # the dead leader wrote nothing more (it could not)


async def _one_leader(first: Served, second: Served) -> bool:
    return [await leads(first), await leads(second)].count(True) == 1


async def test_a_leader_paused_past_its_lease_writes_nothing_when_it_resumes(
    pair: tuple[Served, Served], cluster: Cluster, redis_server: RedisServer
) -> None:
    first, second = pair
    for served in pair:
        await wait_until(lambda served=served: ready(served), "both gateways ready", within=30)  # type: ignore[misc]
    await wait_until(lambda: _one_leader(first, second), "one leader of the two", within=30)
    leader, follower = (first, second) if await leads(first) else (second, first)
    try:
        async with load(follower, 3, 400) as codes:
            await wait_until(lambda: len(cluster.ready_pods(ECHO)) >= 2, "pods for the follower's load", within=60)
            wanted = cluster_replicas(cluster)
            leader.proc.send_signal(signal.SIGSTOP)  # a long pause: no heartbeat, its lease runs out
            await wait_until(lambda: leads(follower), "the follower leading", within=20)
            paused_writes = deployment_writes(cluster.api, leader)
            paused_requests = len(sent_by(cluster.api, agent(leader)))
        # idle: the new leader scales to zero, which the paused one, had it its way, would set back to `wanted`
        await wait_until(lambda: cluster_replicas(cluster) == 0, "scaled to zero by the new leader", within=60)
        # Redis stalls as the old leader wakes: it cannot hear that it lost the lease, and sees the pods gone
        assert redis_server.proc is not None
        redis_server.proc.send_signal(signal.SIGSTOP)
        leader.proc.send_signal(signal.SIGCONT)
        await wait_until(
            lambda: len(sent_by(cluster.api, agent(leader))) > paused_requests, "its looks after the pause", within=10
        )
        await asyncio.sleep(2.0)  # kept: the subject is that nothing is written while it cannot reach Redis
        assert deployment_writes(cluster.api, leader) == paused_writes
    finally:
        leader.proc.send_signal(signal.SIGCONT)
        if redis_server.proc is not None:
            redis_server.proc.send_signal(signal.SIGCONT)
    assert set(codes) == {200} and wanted >= 2
    await wait_until(lambda: _follows(leader), "the resumed one to know it follows", within=20)
    # it woke with a wish of `wanted` and pods gone: it looked, but its fence kept it from any write
    await wait_until(lambda: len(sent_by(cluster.api, agent(leader))) > paused_requests, "its looks after the pause", within=10)
    assert deployment_writes(cluster.api, leader) == paused_writes
    assert cluster_replicas(cluster) == 0 and not cluster.pods(ECHO)


def cluster_replicas(cluster: Cluster) -> int:
    found = cluster.api.objects("deployments", "default")
    return int(found[0]["spec"]["replicas"]) if found else -1


async def _follows(served: Served) -> bool:
    found = await doc(served)
    return bool(found and found["shared"]["holder"] and not found["shared"]["leader"])
