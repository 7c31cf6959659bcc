"""`gateway serve` on the emulated API: orphaned Deployments are deleted at start and after a reload
(SIGHUP, POST /admin/reload), with the owner taken from the GatewayConfig."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest

from tests.backends.kube_support import service
from tests.backends.test_kubernetes_orphans import make, names
from tests.conftest import wait_until
from tests.e2e.test_kubernetes import ROOT, ready, serve, stop
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
kube_client = kube_fixtures.kube_client

pytestmark = pytest.mark.e2e

OWNER = "ml.gw-one"
GATEWAY = """apiVersion: serving-gateway/v1
kind: GatewayConfig
metadata:
  name: gw-one
  namespace: ml
spec:
  backend: kubernetes
  autoscaler:
    initialScale: 0
    allowZeroInitialScale: true
---
"""
IRIS = """apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: iris
spec:
  runtimeVersion: paddle
  default:
    containerImage: testbed/iris
    tag: "1"
    port: 8080
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(GATEWAY + IRIS)
    return path


async def test_orphans_are_deleted_at_start_and_after_a_reload(
    kube_api: KubeApi, kube_client: kubernetes.client.ApiClient, kubeconfig: Path, config: Path, tmp_path: Path
) -> None:
    assert service("gone").key("default").name == "gone-default"
    make(kube_client, "gone", owner=OWNER)  # removed from the config while the gateway was down
    make(kube_client, "kept")  # the default owner: not this installation's
    served = serve(config, kubeconfig, tmp_path / "state")
    try:
        await wait_until(lambda: ready(served), "the gateway ready", within=30)
        await wait_until(lambda: "gone-default" not in names(kube_api), "the orphan deleted at start", within=10)
        await wait_until(lambda: "iris-default" in names(kube_api), "iris made", within=10)
        made = next(d for d in kube_api.objects("deployments") if d["metadata"]["name"] == "iris-default")
        assert made["metadata"]["labels"]["serving-gateway/owner"] == OWNER
        make(kube_client, "left", owner=OWNER)  # made while another gateway led, its revision since removed
        served.proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: "left-default" not in names(kube_api), "the orphan deleted after SIGHUP", within=10)
        make(kube_client, "again", owner=OWNER)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.admin}") as admin:
            assert (await admin.post("/admin/reload")).status_code == 200
        await wait_until(lambda: "again-default" not in names(kube_api), "the orphan deleted after /admin/reload", within=10)
        assert "kept-default" in names(kube_api)
    finally:
        output = stop(served)
    assert "deleted Deployment default/gone-default" in output, output


async def test_a_change_of_spec_kubernetes_is_applied_on_reload(
    kube_api: KubeApi, kubeconfig: Path, config: Path, tmp_path: Path
) -> None:
    served = serve(config, kubeconfig, tmp_path / "state")
    try:
        await wait_until(lambda: ready(served), "the gateway ready", within=30)
        await wait_until(lambda: "iris-default" in names(kube_api), "iris made", within=10)
        assert "imagePullPolicy" not in container(kube_api)
        await asyncio.to_thread(
            config.write_text,
            GATEWAY.replace("  backend: kubernetes\n", "  backend: kubernetes\n  kubernetes: {imagePullPolicy: Always}\n") + IRIS,
        )
        served.proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: container(kube_api).get("imagePullPolicy") == "Always", "patched after SIGHUP", within=10)
        await asyncio.to_thread(config.write_text, GATEWAY + IRIS)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.admin}") as admin:
            answer = await admin.post("/admin/reload")
            assert answer.status_code == 200 and "next start" not in answer.text
        await wait_until(lambda: "imagePullPolicy" not in container(kube_api), "patched back after /admin/reload", within=10)
    finally:
        stop(served)


def container(api: KubeApi) -> dict[str, Any]:
    iris = next(d for d in api.objects("deployments") if d["metadata"]["name"] == "iris-default")
    found: dict[str, Any] = iris["spec"]["template"]["spec"]["containers"][0]
    return found


async def test_a_hung_api_is_said_not_answering_and_holds_no_stop(
    kube_api: KubeApi, kubeconfig: Path, config: Path, tmp_path: Path
) -> None:
    # requests time out after 20 s: "not answering" is said after 10 s, long before any request gives up
    await asyncio.to_thread(
        config.write_text,
        GATEWAY.replace("  backend: kubernetes\n", "  backend: kubernetes\n  kubernetes: {requestTimeout: 20s}\n") + IRIS,
    )
    kube_api.stall(None, r".*", times=100000, seconds=120.0)  # accepts connections, never answers
    served = serve(config, kubeconfig, tmp_path / "state")
    try:
        await wait_until(lambda: ready(served), "the gateway ready, the API hanging", within=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.admin}") as admin:

            async def said() -> bool:
                answer = await admin.get("/readyz")
                return answer.status_code == 200 and "not answering" in answer.text

            await wait_until(said, "/readyz saying the API is not answering", within=20)
            doc = (await admin.get("/admin/services")).json()
            assert doc["backends"]["kubernetes"]["ok"] is False
            assert "not answering" in doc["backends"]["kubernetes"]["message"], doc["backends"]
            assert doc["services"][0]["revisions"][0]["state"] == "unreachable"
        status = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gateway", "status", "--admin", f"127.0.0.1:{served.admin}"),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        printed = (await status.communicate())[0].decode()
        assert status.returncode == 0 and "not answering" in printed and "scaling paused" in printed, printed
        started = time.monotonic()
        served.proc.terminate()
        returncode = await asyncio.to_thread(served.proc.wait, 10)
        assert returncode == 0 and time.monotonic() - started < 5.0  # no request stuck on the API holds the exit
    finally:
        output = stop(served)
    assert "stopped" in output, output
