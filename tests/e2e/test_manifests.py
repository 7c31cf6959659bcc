"""The users' own manifests served for real: the shipped model behind each kind, replicas as processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from gateway.app import Gateway
from gateway.backends.local import LocalBackend
from gateway.config import load
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SEED_ROWS = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
Start = Callable[[list[str]], Awaitable[tuple[Gateway, str]]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[Gateway] = []

    async def start(paths: list[str]) -> tuple[Gateway, str]:
        gw = Gateway(load(paths), paths, state_dir=tmp_path / "state")
        await gw.start(listen="127.0.0.1:0")
        started.append(gw)
        return gw, f"http://127.0.0.1:{gw.proxy.sockets[0][1]}"

    yield start
    for gw in started:
        await gw.stop(drain_timeout=2)


def revision(gw: Gateway) -> dict[str, Any]:
    """The first revision's entry in the /admin/services document."""
    doc = cast(dict[str, Any], gw.describe())
    return cast(dict[str, Any], doc["services"][0]["revisions"][0])


async def predict(base: str, host: str, model: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.post(f"{base}/v1/models/{model}:predict", json=SEED_ROWS, headers={"Host": host})


async def test_demo_answers_the_kserve_quick_start_from_zero(serve: Start) -> None:
    gw, base = await serve([str(ROOT / "config/demo.yaml")])
    rev = revision(gw)
    assert rev["ready"] == 0 and rev["desired"] == 0
    started = time.monotonic()
    r = await predict(base, "iris.default.example.com", "iris")
    cold = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    assert r.headers["x-gateway-cold-start"] == "true"
    assert cold < 20
    async with httpx.AsyncClient(timeout=10) as c:
        v2 = await c.post(
            f"{base}/v2/models/iris/infer",
            headers={"Host": "iris.default.example.com"},
            json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.8, 2.8, 4.8, 1.4]}]},
        )
    assert v2.status_code == 200
    label = next(o for o in v2.json()["outputs"] if o["name"] == "label")
    assert label["datatype"] == "INT64" and label["data"] == [1]


async def test_inference_service_serves_its_onnx_storage_uri(serve: Start) -> None:
    _, base = await serve([str(ROOT / "config/examples/inferenceservice-iris.yaml")])
    r = await predict(base, "iris.default.example.com", "iris")
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}


async def test_simple_ml_service_runs_its_fixed_replicas(serve: Start) -> None:
    gw, base = await serve([str(ROOT / "config/examples/simplemlservice.yaml")])
    r = await predict(base, "iris-fixed.default.example.com", "iris-fixed")
    assert r.status_code == 200 and r.json() == {"predictions": [1, 1]}
    await wait_until(lambda: revision(gw)["ready"] == 2, "both fixed replicas ready", within=20)
    assert revision(gw)["desired"] == 2


async def test_replica_killed_under_steady_traffic_costs_at_most_its_request(serve: Start, tmp_path: Path) -> None:
    replica = ROOT / "tests/e2e/sleepy_replica.py"
    cfg = tmp_path / "kill.yaml"
    cfg.write_text(
        f"""apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata: {{name: sleepy}}
spec:
  default:
    command: ["{sys.executable}", "{replica}", "{{port}}"]
  service: {{minScale: 2, maxScale: 2, target: 1}}
"""
    )
    gw, base = await serve([str(cfg)])
    host = {"Host": "sleepy.default.example.com"}
    key = next(iter(gw.runtimes))
    local = gw.backends["local"]
    assert isinstance(local, LocalBackend)
    await wait_until(lambda: len(local.ready_endpoints(key)) == 2, "two ready replicas", within=20)
    statuses: list[int] = []
    errors: list[str] = []
    stop = asyncio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers=host, timeout=30) as c:
            while not stop.is_set():
                r = await c.post("/work?ms=40", content=b"payload")
                statuses.append(r.status_code)
                if r.status_code != 200:
                    errors.append(r.text)

    clients = [asyncio.create_task(client()) for _ in range(3)]
    await wait_until(lambda: len(statuses) >= 10, "steady traffic")
    victim = local.pids(key)[0]
    async with httpx.AsyncClient(timeout=5) as c:
        by_pid = {(await c.get(f"{e.url}/stats")).json()["pid"]: e for e in local.ready_endpoints(key)}
    tracker = gw.runtimes[key].throttler.trackers[by_pid[victim]]
    # Frozen first, so that the kill finds it holding a request (cc 1: exactly one) and never between two.
    os.kill(victim, signal.SIGSTOP)
    await wait_until(lambda: tracker.in_flight == 1, "a request held by the frozen replica")
    held = len(statuses)
    await wait_until(lambda: len(statuses) >= held + 5, "the other replica serving meanwhile")
    os.kill(victim, signal.SIGKILL)
    killed = len(statuses)
    await wait_until(lambda: len(statuses) >= killed + 30, "30 more answers after the kill", within=20)
    stop.set()
    await asyncio.gather(*clients)
    failures = [s for s in statuses if s != 200]
    assert failures == [502], errors  # the victim's one request, sent and unanswered: never replayed


async def test_revision_that_cannot_start_answers_503_at_once_with_the_reason(serve: Start) -> None:
    _, base = await serve([str(ROOT / "config/examples/paddleservice-sample.yaml")])
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.post(
            f"{base}/image/prediction",
            headers={"Host": "paddleservice-sample.paddleservice-system.example.com"},
            json={"feed": [{"image": "daisy.jpg"}], "fetch": ["score"]},
        )
    assert time.monotonic() - started < 2
    assert r.status_code == 503
    assert "the local backend runs commands, not container images" in r.json()["error"]


async def test_crash_looping_revision_answers_503_at_once_with_the_crash_reason(serve: Start, tmp_path: Path) -> None:
    """Issue 8: a revision in crash back-off answers 503 now, not 504 when the activation timeout ends."""
    cfg = tmp_path / "crash.yaml"
    cfg.write_text(
        """apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  activator: {activationTimeout: 100s}
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata: {name: crashy}
spec:
  default:
    command: "echo model file missing >&2; exit 3"
"""
    )
    _, base = await serve([str(cfg)])
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(f"{base}/", headers={"Host": "crashy.default.example.com"})
    assert r.status_code == 503 and r.headers["retry-after"]
    error = r.json()["error"]
    assert "crash back-off" in error and "code 3" in error and "model file missing" in error
