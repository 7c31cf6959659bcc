"""containerConcurrency 1 below the number of data planes, on the emulated cluster with real pod processes: two
`gateway serve` instances sharing a real redis-server, and one `gateway serve --workers 2`. Load through every
plane: no request fails, no pod ever has more than one request at once, and both planes are served by the two
pods the leader numbered 0 and 1 (before, a pod's slot went to the plane its address hashed to: with one pod, or
two whose addresses hashed alike, a plane had no slot and its requests waited for activationTimeout: 504).

Each pod answers `<pod name> <requests in flight on it, this one included>`, counted when the request arrives.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway import slots
from tests.conftest import free_port, serve_argv, wait_until
from tests.e2e.test_kubernetes import ROOT, Served, ready, stop
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.shared.redis_server import RedisServer
from tests.workers.support import Conn, split_connections, worker_pids

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e

HOST = "echo.default.example.com"
ECHO = "echo-predictor-00001"

POD_SERVER = r"""
import asyncio, os

NAME = os.environ.get("POD_NAME", "?")
busy = 0


async def handle(reader, writer):
    global busy
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            seen = 0
            if "ms=" in target:  # a request of the test's (a probe is not counted)
                busy += 1
                seen = busy
                try:
                    await asyncio.sleep(int(target.split("ms=")[1]) / 1000)
                finally:
                    busy -= 1
            body = f"{NAME} {seen}".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(os.environ["PORT"]))
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""


def config(server: Path, redis: str | None = None) -> str:
    shared = f"  redis: {redis}\n" if redis else ""
    return f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: kubernetes
{shared}  activator:
    activationTimeout: 20s
  autoscaler:
    stableWindow: 6s
    scaleToZeroGracePeriod: 1s
    tickInterval: 0.25s
    initialScale: 0
    allowZeroInitialScale: true
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: echo
spec:
  predictor:
    minReplicas: 0
    maxReplicas: 2
    containerConcurrency: 1
    canaryTrafficPercent: 0
    containers:
      - name: kserve-container
        image: testbed/echo:1
        command: ["{sys.executable}", "{server}"]
        ports: [{{containerPort: 8080}}]
"""


def start(config_path: Path, kubeconfig: Path, state: Path, *extra: str) -> Served:
    port, admin = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT)}
    argv = serve_argv(config_path, listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin}", state_dir=state)
    proc = subprocess.Popen([*argv, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    return Served(proc, port, admin)


def pod_numbers(cluster: Cluster) -> dict[str, str | None]:
    return {
        p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(slots.SLOT_ANNOTATION)
        for p in cluster.api.objects("pods", "default")
        if not p["metadata"].get("deletionTimestamp")
    }


class Tally:
    """What one plane's clients got: status codes, and per answer the pod and its requests in flight."""

    def __init__(self) -> None:
        self.codes: Counter[int] = Counter()
        self.pods: Counter[str] = Counter()
        self.most = 0
        self.since: float | None = None  # when both pods were numbered and ready: answers after it count below
        self.after: Counter[str] = Counter()
        self.first: float | None = None  # when the first answer came (time.monotonic)

    def add(self, status: int, body: bytes) -> None:
        self.codes[status] += 1
        if status == 200:
            if self.first is None:
                self.first = time.monotonic()
            name, seen = body.decode().rsplit(" ", 1)
            self.pods[name] += 1
            self.most = max(self.most, int(seen))
            if self.since is not None:
                self.after[name] += 1


async def drive(send: Callable[[], Awaitable[tuple[int, bytes]]], tally: Tally, stop_: asyncio.Event) -> None:
    while not stop_.is_set():
        try:
            status, body = await send()
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError):
            status, body = 0, b""
        tally.add(status, body)


async def run_load(planes: list[list[Callable[[], Awaitable[tuple[int, bytes]]]]], cluster: Cluster) -> list[Tally]:
    """Every plane's senders in a loop until both pods are numbered 0 and 1, ready, and each plane got 5 answers since."""
    tallies = [Tally() for _ in planes]
    stop_ = asyncio.Event()
    tasks = [asyncio.ensure_future(drive(send, tally, stop_)) for tally, senders in zip(tallies, planes) for send in senders]
    started = time.monotonic()
    try:
        await wait_until(
            lambda: sorted(map(str, pod_numbers(cluster).values())) == ["0", "1"] and len(cluster.ready_pods(ECHO)) == 2,
            "two pods, numbered 0 and 1, ready",
            within=60,
        )
        print(f"\ntwo numbered pods ready {time.monotonic() - started:.1f} s after the first request")
        for tally in tallies:
            tally.since = time.monotonic()
        await wait_until(lambda: all(sum(t.after.values()) >= 5 for t in tallies), "5 answers through every plane", within=40)
    finally:
        stop_.set()
        await asyncio.gather(*tasks)
    for i, tally in enumerate(tallies):
        first = f"{tally.first - started:.2f} s" if tally.first is not None else "never"
        print(f"plane {i}: first answer {first} after the first request (from zero), codes {dict(tally.codes)}, ", end="")
        print(f"pods {dict(tally.pods)}, most in flight on a pod {tally.most}")
    return tallies


def check(tallies: list[Tally]) -> None:
    for tally in tallies:
        assert set(tally.codes) == {200}, tally.codes  # no 504: no plane without a slot
        assert tally.most == 1  # containerConcurrency 1 held across the planes
    assert all(tally.after for tally in tallies)


@pytest.fixture
def pod_server(tmp_path: Path) -> Path:
    path = tmp_path / "pod_server.py"
    path.write_text(POD_SERVER)
    return path


@pytest.fixture
def two_gateways(
    cluster: Cluster, kubeconfig: Path, tmp_path: Path, redis_server: RedisServer, pod_server: Path
) -> Iterator[tuple[Served, Served]]:
    path = tmp_path / "gateway.yaml"
    path.write_text(config(pod_server, redis_server.url))
    first = start(path, kubeconfig, tmp_path / "a")
    second = start(path, kubeconfig, tmp_path / "b")
    try:
        yield first, second
    finally:
        for served in (first, second):
            stop(served)


def sender(client: httpx.AsyncClient) -> Callable[[], Awaitable[tuple[int, bytes]]]:
    async def send() -> tuple[int, bytes]:
        answer = await client.get("/work?ms=300")
        return answer.status_code, answer.content

    return send


async def shares(served: Served) -> list[int] | None:
    try:
        async with httpx.AsyncClient(timeout=2) as admin:
            doc = (await admin.get(f"http://127.0.0.1:{served.admin}/admin/services")).json()
    except httpx.HTTPError:
        return None
    share: list[int] = doc["shared"]["share"]
    return share


async def test_two_gateways_with_containerconcurrency_1_both_serve_through_two_numbered_pods(
    two_gateways: tuple[Served, Served], cluster: Cluster
) -> None:
    for served in two_gateways:
        await wait_until(lambda served=served: ready(served), "both gateways ready", within=30)  # type: ignore[misc]
        await wait_until(lambda served=served: _two_planes(served), "both gateways counting 2 planes", within=30)  # type: ignore[misc]
    clients = [served.client() for served in two_gateways]
    try:
        tallies = await run_load([[sender(client), sender(client)] for client in clients], cluster)
    finally:
        for client in clients:
            await client.aclose()
    check(tallies)


async def _two_planes(served: Served) -> bool:
    share = await shares(served)
    return share is not None and share[1] == 2


def conn_sender(conn: Conn) -> Callable[[], Awaitable[tuple[int, bytes]]]:
    async def send() -> tuple[int, bytes]:
        status, _, body = await conn.get("/work?ms=300", host=HOST)
        return status, body

    return send


def workers_of(served: Served) -> list[int]:
    return worker_pids(served.proc.pid)


async def test_two_workers_with_containerconcurrency_1_both_serve_through_two_numbered_pods(
    cluster: Cluster, kubeconfig: Path, tmp_path: Path, pod_server: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config(pod_server))
    served = start(path, kubeconfig, tmp_path / "state", "--workers", "2")
    try:
        await wait_until(lambda: ready(served), "the gateway ready", within=30)
        await wait_until(lambda: len(workers_of(served)) == 2, "two workers")
        by_worker = await split_connections(served.port, workers_of(served), 2)
        try:
            tallies = await run_load([[conn_sender(c) for c in conns] for conns in by_worker.values()], cluster)
        finally:
            for conns in by_worker.values():
                for conn in conns:
                    conn.close()
        check(tallies)
    finally:
        print(stop(served)[-3000:])
