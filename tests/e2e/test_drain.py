"""Scale-down drains: a replica leaving gets no new requests and is stopped only after its own finish."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.backends.local import LocalBackend
from gateway.config import load
from gateway.types import RevisionKey
from tests.conftest import wait_until
from tests.router.support import start_replica

pytestmark = pytest.mark.e2e

REPLICA = Path(__file__).with_name("sleepy_replica.py")


def write(path: Path, replicas: int) -> None:
    # The sleepy replica dies at once on SIGTERM: only a real drain saves its in-flight requests.
    path.write_text(
        f"""apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata: {{name: sleepy}}
spec:
  replicas: {replicas}
  custom:
    spec:
      containers:
      - name: c
        command: ["{sys.executable}", "{REPLICA}", "{{port}}"]
"""
    )


@contextlib.asynccontextmanager
async def serving(cfg: Path, tmp_path: Path, ready: int) -> AsyncIterator[tuple[Gateway, RevisionKey, str]]:
    """A gateway on `cfg` with `ready` replicas of its one revision up; stopped afterwards."""
    gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    key = next(iter(gw.runtimes))
    try:
        await wait_until(lambda: len(gw.ready_endpoints(key)) >= ready, f"{ready} ready replicas", within=20)
        assert len(gw.ready_endpoints(key)) == ready
        yield gw, key, f"http://127.0.0.1:{gw.proxy.sockets[0][1]}"
    finally:
        await gw.stop(drain_timeout=2)


def in_flight(gw: Gateway, key: RevisionKey) -> int:
    return sum(t.in_flight for t in gw.runtimes[key].throttler.trackers.values())


def local_backend(gw: Gateway) -> LocalBackend:
    local = gw.backends["local"]
    assert isinstance(local, LocalBackend)
    return local


async def test_scale_down_waits_for_in_flight_requests(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    write(cfg, 2)
    async with serving(cfg, tmp_path, 2) as (gw, key, base):
        async with httpx.AsyncClient(base_url=base, headers={"Host": "sleepy.default.example.com"}, timeout=20) as c:
            pending = [asyncio.create_task(c.get("/work?ms=4000")) for _ in range(4)]
            await wait_until(lambda: in_flight(gw, key) == 4, "four requests at the replicas")
            write(cfg, 1)
            await gw.reload()
            results = await asyncio.gather(*pending)
            assert [r.status_code for r in results] == [200] * 4
            assert len({r.json()["pid"] for r in results}) == 2  # both replicas were serving
            local = local_backend(gw)
            await wait_until(lambda: len(local.pids(key)) == 1, "the drained replica to stop", within=20)
            assert (await c.get("/work?ms=1")).status_code == 200


async def test_removing_a_service_on_reload_lets_its_requests_finish(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    write(cfg, 1)
    async with serving(cfg, tmp_path, 1) as (gw, key, base):
        async with httpx.AsyncClient(base_url=base, headers={"Host": "sleepy.default.example.com"}, timeout=20) as c:
            pending = asyncio.create_task(c.get("/work?ms=2500"))
            await wait_until(lambda: in_flight(gw, key) == 1, "the request at the replica")
            other = tmp_path / "other.yaml"
            other.write_text(cfg.read_text().replace("name: sleepy", "name: other"))
            gw.paths = [str(other)]
            await gw.reload()
            assert (await c.get("/")).status_code == 404  # the route is gone at once
            r = await pending
            assert r.status_code == 200  # but the request it was serving finished


async def test_moving_a_service_from_local_to_static_keeps_the_static_endpoints(tmp_path: Path) -> None:
    static = await start_replica("static")
    cfg = tmp_path / "gw.yaml"
    write(cfg, 1)
    try:
        async with serving(cfg, tmp_path, 1) as (gw, key, base):
            cfg.write_text(
                "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: sleepy}\n"
                f'spec:\n  backend: static\n  default:\n    endpoints: ["{static.url}"]\n'
            )
            await gw.reload()
            local = local_backend(gw)
            await wait_until(lambda: local.pids(key) == [], "the local replica to stop", within=20)
            async with httpx.AsyncClient(base_url=base, headers={"Host": "sleepy.default.example.com"}, timeout=5) as c:
                r = await c.get("/x")
            assert r.status_code == 200 and r.json()["replica"] == "static"
    finally:
        await static.runner.cleanup()
