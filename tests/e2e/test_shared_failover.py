"""Two `gateway serve` processes sharing a real redis-server with the local backend: the leader killed
(SIGKILL: no goodbye, its lease and membership expire) and the other takes over within seconds,
scaling from the count it observed, not from scratch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, serve_argv, wait_until
from tests.e2e.test_shared_state import write_config
from tests.shared.redis_server import RedisServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOST = "sleepy.default.example.com"


class Instance:
    def __init__(self, config: Path, state: Path) -> None:
        self.port, self.admin = free_port(), free_port()
        self.proc = subprocess.Popen(
            serve_argv(config, listen=f"127.0.0.1:{self.port}", admin=f"127.0.0.1:{self.admin}", state_dir=state),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    async def doc(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            return None
        try:
            async with httpx.AsyncClient(timeout=2) as c:
                answer: dict[str, Any] = (await c.get(f"http://127.0.0.1:{self.admin}/admin/services")).json()
                return answer
        except httpx.HTTPError:
            return None

    async def revision(self) -> dict[str, Any]:
        doc = await self.doc()
        return doc["services"][0]["revisions"][0] if doc else {}

    async def leads(self) -> bool:
        doc = await self.doc()
        return bool(doc and doc["shared"]["leader"])

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.communicate()[0]


@pytest.fixture
def instances(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Instance, Instance]]:
    config = tmp_path / "gw.yaml"
    write_config(config, redis_server.url, target=2)
    first = Instance(config, tmp_path / "a")
    second = Instance(config, tmp_path / "b")
    try:
        yield first, second
    finally:
        for instance in (first, second):
            instance.stop()


async def test_the_leader_killed_another_takes_over_from_the_observed_count(instances: tuple[Instance, Instance]) -> None:
    first, second = instances
    await wait_until(lambda: _one_leader(first, second), "one leader of the two", within=30)
    leader, follower = (first, second) if await first.leads() else (second, first)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{follower.port}",
        headers={"Host": HOST},
        timeout=60,
        limits=httpx.Limits(max_connections=20),
    ) as client:
        stop = asyncio.Event()
        codes: list[int] = []

        async def worker() -> None:
            while not stop.is_set():
                try:
                    codes.append((await client.get("/work?ms=300")).status_code)
                except httpx.HTTPError:
                    codes.append(0)

        workers = asyncio.gather(*(worker() for _ in range(6)))
        try:
            # 6 in flight through the follower, target 2: the leader runs 3 replicas for load it never sees itself
            await wait_until(lambda: _at_least(leader, "desired", 3), "the leader asking for 3", within=30)
            await wait_until(lambda: _at_least(follower, "ready", 3), "the follower routing to 3", within=30)
            before = (await leader.revision())["desired"]
            leader.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await wait_until(follower.leads, "the follower leading", within=15)
            took = time.monotonic() - killed
            print(f"\nleader killed: the follower led after {took:.2f} s; desired before {before}")
            assert took < 8.0  # the lease's 5 s TTL, then the next heartbeat
            assert (await follower.revision())["desired"] >= before - 1  # warm: not from initial scale or zero
            await wait_until(lambda: _at_least(follower, "ready", 3), "3 replicas of the new leader's own", within=30)
            answered = len(codes)
            await wait_until(lambda: len(codes) >= answered + 20, "20 more answers", within=30)
            assert codes[-20:] == [200] * 20
        finally:
            stop.set()
            await workers


async def _one_leader(first: Instance, second: Instance) -> bool:
    return [await first.leads(), await second.leads()].count(True) == 1


async def _at_least(instance: Instance, field: str, n: int) -> bool:
    return int((await instance.revision()).get(field) or 0) >= n
