"""Scale from zero and back with the local backend: real replica processes, real time (short windows).

The decider, window and scaler are covered with injected clocks in tests/autoscale; here the
whole chain runs: data plane → stats → scaler → local backend → ready endpoints → activator.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.config import load

REPLICA = Path(__file__).with_name("sleepy_replica.py")
HOST = "sleepy.default.example.com"


def write_config(path: Path, *, target: int, max_scale: int = 0, util: int = 100, window: str = "6s") -> None:
    path.write_text(
        f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  autoscaler:
    stableWindow: {window}
    scaleToZeroGracePeriod: 1s
    tickInterval: 0.25s
    initialScale: 0
    allowZeroInitialScale: true
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
    targetUtilization: "{util}"
"""
    )


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[object]:
    started: list[tuple[Gateway, httpx.AsyncClient]] = []

    async def start(**kw: int | str) -> tuple[Gateway, httpx.AsyncClient]:
        cfg = tmp_path / "gw.yaml"
        write_config(cfg, **kw)  # type: ignore[arg-type]
        gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
        await gw.start(listen="127.0.0.1:0")
        client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.proxy.sockets[0][1]}",
            headers={"Host": HOST},
            timeout=30,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )
        started.append((gw, client))
        return gw, client

    yield start
    for gw, client in started:
        await client.aclose()
        await gw.stop(drain_timeout=2)


def revision(gw: Gateway) -> dict[str, object]:
    return gw.describe()["services"][0]["revisions"][0]  # type: ignore[index,return-value]


async def wait_for(cond: object, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():  # type: ignore[operator]
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def replica_stats(gw: Gateway) -> list[dict[str, int]]:
    out = []
    async with httpx.AsyncClient(timeout=5) as c:
        for url in revision(gw)["endpoints"]:  # type: ignore[union-attr]
            out.append((await c.get(f"{url}/stats")).json())
    return out


async def test_one_request_at_zero_is_a_cold_start_and_the_revision_returns_to_zero(make: object) -> None:
    gw, client = await make(target=10)  # type: ignore[operator]
    assert revision(gw)["ready"] == 0 and revision(gw)["desired"] == 0
    r = await client.get("/work?ms=10")
    assert r.status_code == 200
    assert r.headers["x-gateway-cold-start"] == "true"
    assert revision(gw)["ready"] == 1
    r = await client.get("/work?ms=10")
    assert "x-gateway-cold-start" not in r.headers
    # Stable window (6 s) of zeros, then Knative's inactive transition and 1 s grace.
    took = await wait_for(lambda: revision(gw)["ready"] == 0 and revision(gw)["desired"] == 0, 20, "scale to zero")
    assert took >= 5.0, "scaled to zero before the stable window had passed"
    r = await client.get("/work?ms=10")
    assert r.status_code == 200 and r.headers["x-gateway-cold-start"] == "true"


async def test_burst_at_zero_is_spread_at_capacity_and_respects_max_scale(make: object) -> None:
    gw, client = await make(target=5, max_scale=3)  # type: ignore[operator]
    results = await asyncio.gather(*(client.get("/work?ms=100") for _ in range(60)))
    assert [r.status_code for r in results] == [200] * 60
    assert sum(1 for r in results if r.headers.get("x-gateway-cold-start") == "true") >= 1
    stats = await replica_stats(gw)
    assert 1 <= len(stats) <= 3
    assert max(s["max_in_flight"] for s in stats) <= 5, stats
    assert sum(s["served"] for s in stats) == 60
    assert revision(gw)["desired"] <= 3


async def test_steady_load_settles_near_concurrency_over_target(make: object) -> None:
    gw, client = await make(target=3)  # type: ignore[operator]
    concurrency = 9
    stop = asyncio.Event()
    errors: list[int] = []

    async def worker() -> None:
        while not stop.is_set():
            r = await client.get("/work?ms=50")
            if r.status_code != 200:
                errors.append(r.status_code)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        want = math.ceil(concurrency / 3)
        await wait_for(lambda: revision(gw)["ready"] >= want, 20, f"{want} ready replicas")
        await asyncio.sleep(3)
        rev = revision(gw)
        assert want <= rev["desired"] <= want + 1, rev  # type: ignore[operator]
        assert rev["stable"] is not None and 6 <= rev["stable"] <= concurrency + 0.5, rev  # type: ignore[operator]
        stats = await replica_stats(gw)
        assert max(s["max_in_flight"] for s in stats) <= 3
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert errors == []
