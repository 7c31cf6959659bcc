"""A KServe canary rollout under the kubernetes backend, end to end: `gateway serve` against the test bed.

v1 runs as Deployment `echo-predictor-00001`; the edit to v2 with canaryTrafficPercent 30 adds
`echo-predictor-00002` and splits 70/30; a gateway restarted with an empty state directory finds the
record on the Deployments (the only place it is kept under this backend) and serves the same split with
the same names; promotion deletes v1's Deployment once it is drained.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from gateway.backends.kube_manifest import ROLLOUT_ANNOTATION
from tests.conftest import wait_until
from tests.e2e.test_kubernetes import GATEWAY, POD_SERVER, Served, ready, serve, stop
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e

V1, V2 = "echo-predictor-00001", "echo-predictor-00002"


def echo(server: Path, version: str, percent: int | None) -> str:
    canary = "" if percent is None else f"\n    canaryTrafficPercent: {percent}"
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: echo
spec:
  predictor:
    minReplicas: 1
    maxReplicas: 1{canary}
    containers:
      - name: kserve-container
        image: testbed/echo:{version}
        command: ["{sys.executable}", "{server}"]
        ports: [{{containerPort: 8080}}]
"""


def deployments(cluster: Cluster) -> dict[str, str]:
    """Our Deployments in `default`, each with its rollout record (JSON)."""
    return {
        d["metadata"]["name"]: (d["metadata"].get("annotations") or {}).get(ROLLOUT_ANNOTATION, "")
        for d in cluster.api.objects("deployments", "default")
    }


async def split(served: Served, count: int = 100) -> Counter[str]:
    async with served.client() as client:
        answers = [await client.get("/") for _ in range(count)]
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200]
    return Counter(answer.headers["x-gateway-revision"] for answer in answers)


async def reload(served: Served) -> None:
    async with httpx.AsyncClient() as admin:
        answer = await admin.post(f"http://127.0.0.1:{served.admin}/admin/reload", timeout=30)
    assert answer.status_code == 200, answer.text


async def test_a_rollout_on_deployments_survives_a_restart_and_promotes(
    cluster: Cluster, kubeconfig: Path, tmp_path: Path
) -> None:
    server = tmp_path / "pod_server.py"
    server.write_text(POD_SERVER)
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY + echo(server, "1", None))
    first = serve(config, kubeconfig, tmp_path / "state-1")
    try:
        await wait_until(lambda: ready(first), "the gateway ready", within=30)
        await wait_until(lambda: len(cluster.ready_pods(V1)) == 1, "v1's pod", within=30)
        assert await split(first, 10) == Counter({V1: 10})
        await asyncio.to_thread(config.write_text, GATEWAY + echo(server, "2", 30))
        await reload(first)
        await wait_until(lambda: len(cluster.ready_pods(V2)) == 1, "v2's pod", within=30)
        assert await split(first) == Counter({V1: 70, V2: 30})
        await wait_until(lambda: len(set(deployments(cluster).values())) == 1, "one record on both Deployments")
    finally:
        print(stop(first))
    assert set(deployments(cluster)) == {V1, V2}

    # another state directory: the record can only come from the Deployments
    second = serve(config, kubeconfig, tmp_path / "state-2")
    try:
        await wait_until(lambda: ready(second), "the restarted gateway ready", within=30)
        await wait_until(lambda: _routes_both(second), "both revisions routed to", within=30)
        assert await split(second) == Counter({V1: 70, V2: 30})

        await asyncio.to_thread(config.write_text, GATEWAY + echo(server, "2", None))  # promote
        await reload(second)
        assert await split(second) == Counter({V2: 100})
        await wait_until(lambda: set(deployments(cluster)) == {V2}, "v1's Deployment deleted after its drain", within=30)
        assert len(cluster.ready_pods(V2)) == 1
    finally:
        print(stop(second))


async def _routes_both(served: Served) -> bool:
    async with httpx.AsyncClient() as admin:
        doc = (await admin.get(f"http://127.0.0.1:{served.admin}/admin/services", timeout=5)).json()
    revisions = doc["services"][0]["revisions"]
    return [rev["name"] for rev in revisions] == [V1, V2] and all(rev["ready"] for rev in revisions)
