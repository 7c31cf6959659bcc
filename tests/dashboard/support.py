"""Gateways for the dashboard tests: configs, an in-process gateway with its admin listener on a loopback
socket (uvicorn, as `gateway serve` runs it), and a `gateway serve` subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

from gateway.admin import admin_server
from gateway.app import Gateway
from gateway.cli import bind_socket
from gateway.config import load
from tests.conftest import free_port, serve_argv, wait_until, wait_until_blocking

REPLICA = Path(__file__).parents[1] / "e2e" / "sleepy_replica.py"


def gateway_head(backend: str = "local", tick: str = "0.25s", window: str = "6s") -> str:
    return f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: {backend}
  proxy:
    drainTimeout: 5s
  autoscaler:
    stableWindow: {window}
    scaleToZeroGracePeriod: 1s
    tickInterval: {tick}
    initialScale: 0
    allowZeroInitialScale: true
"""


def sleepy_service(name: str, namespace: str = "default", *, target: int = 2, max_scale: int = 4, canary: int = 0) -> str:
    command = f'command: ["{sys.executable}", "{REPLICA}", "{{port}}"]'
    canary_part = f"  canaryTrafficPercent: {canary}\n  canary:\n    {command}\n" if canary else ""
    return f"""---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: {name}
  namespace: {namespace}
spec:
{canary_part}  default:
    {command}
  service:
    minScale: 0
    maxScale: {max_scale}
    target: {target}
    targetUtilization: "100"
"""


def static_service(name: str, namespace: str, url: str = "http://127.0.0.1:9") -> str:
    return f"""---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  canaryTrafficPercent: 25
  default: {{endpoints: ['{url}']}}
  canary: {{endpoints: ['{url}']}}
"""


@contextlib.asynccontextmanager
async def admin_of(gw: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway's admin listener served by uvicorn on a loopback port, and a client for it."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = admin_server(gw, "127.0.0.1", port)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await wait_until(lambda: server.started, "the admin listener to start")
            yield client
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def running(text: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(text)
    gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    try:
        yield gw
    finally:
        await gw.stop(drain_timeout=1)


class Served:
    """A `gateway serve` process: its data-plane port and admin URL."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, admin: str) -> None:
        self.proc = proc
        self.port = port
        self.admin = admin

    def get(self, path: str) -> Any:
        return httpx.get(self.admin + path, timeout=10).json()

    def ready(self) -> bool:
        try:
            return httpx.get(self.admin + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.contextmanager
def serve(text: str, tmp_path: Path, *extra: str) -> Iterator[Served]:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(text)
    port, admin = free_port(), free_port()
    argv = [*serve_argv(cfg, listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin}", state_dir=tmp_path / "state"), *extra]
    log = open(tmp_path / "gateway.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    served = Served(proc, port, f"http://127.0.0.1:{admin}")
    try:
        wait_until_blocking(lambda: served.ready() or proc.poll() is not None, "the gateway's /readyz", within=30)
        assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
