"""A revision whose replicas cannot start answers 503 at once with why, and recovers (issue 8, B2)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.config import load
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

HOST = "model.default.example.com"
REPLICA = Path(__file__).with_name("sleepy_replica.py")


def write(path: Path, command: list[str]) -> None:
    argv = json.dumps(command)[1:-1]  # JSON is YAML: every quote survives
    path.write_text(
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: local\n"
        "  autoscaler: {initialScale: 0, allowZeroInitialScale: true, tickInterval: 0.25s}\n---\n"
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: model}\n"
        f"spec:\n  default: {{command: [{argv}]}}\n  service: {{minScale: 0}}\n"
    )


Serve = Callable[[list[str]], Awaitable[tuple[Gateway, httpx.AsyncClient, Path]]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    started: list[Gateway] = []
    cfg = tmp_path / "gw.yaml"

    async def start(command: list[str]) -> tuple[Gateway, httpx.AsyncClient, Path]:
        write(cfg, command)
        gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
        await gw.start(listen="127.0.0.1:0")
        started.append(gw)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.proxy.sockets[0][1]}", headers={"Host": HOST}, timeout=30)
        return gw, client, cfg

    yield start
    for gw in started:
        await gw.stop(drain_timeout=1)


async def test_a_missing_program_is_a_503_naming_it_at_once(serve: Serve) -> None:
    gw, client, cfg = await serve(["/usr/bin/tensorflow_model_server", "--port", "{port}"])
    async with client:
        started = time.monotonic()
        r = await client.get("/v1/models/model")
        assert r.status_code == 503 and r.headers["retry-after"]
        assert time.monotonic() - started < 10, "not the 120 s activation timeout"
        error = r.json()["error"]
        assert "crash back-off" in error and "/usr/bin/tensorflow_model_server" in error and "No such file" in error, error
        # Fixed by a reload, the revision serves again.
        write(cfg, [sys.executable, str(REPLICA), "{port}"])
        outcome = await gw.reloader.request("test")
        assert outcome.ok
        r = await client.get("/work")
        assert r.status_code == 200


async def test_a_replica_that_exits_shows_its_exit_and_last_log_line(serve: Serve) -> None:
    code = "import sys; print('loading model'); print('model file not found: /models/iris.onnx', flush=True); sys.exit(3)"
    gw, client, _ = await serve([sys.executable, "-c", code])
    async with client:
        r = await client.get("/")
        assert r.status_code == 503
        error = r.json()["error"]
        assert "3" in error and "model file not found: /models/iris.onnx" in error, error


async def test_a_request_already_waiting_when_the_replica_dies_gets_503_not_504(serve: Serve) -> None:
    code = "import sys, time; time.sleep(0.6); print('out of memory', flush=True); sys.exit(137)"
    gw, client, _ = await serve([sys.executable, "-c", code])
    async with client:
        started = time.monotonic()
        r = await client.get("/")  # waits in the activator while the replica starts, then crashes
        assert r.status_code == 503, r.text
        assert "out of memory" in r.json()["error"]
        assert time.monotonic() - started < 10


async def test_requests_held_at_shutdown_get_503_not_a_reset(serve: Serve) -> None:
    """SIGTERM's drain ends with requests still waiting for a replica that never came: 503, Retry-After."""
    # The replica process (not this test) stays up without ever listening, so the request waits in
    # the activator; the test stops the gateway 0.3 s later, which kills the replica.
    code = "import time; time.sleep(60)"
    gw, client, _ = await serve([sys.executable, "-c", code])
    async with client:
        waiting = asyncio.create_task(client.get("/"))
        runtime = gw.proxy.routes.services[0].default
        await wait_until(lambda: runtime.throttler.queued, "the request to wait in the activator")
        await gw.stop(drain_timeout=0.3)
        r = await waiting
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "shutting down" in r.json()["error"]
