"""Requests queued for a revision that a reload removes before its first replica starts (they were never sent
upstream): a real `gateway serve` on the local backend re-routes them to their service's current route, or
answers 503 at once when the service is gone. Before, they waited out the 120 s activation timeout for a 504.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until

from .test_rollout import HOST, REPLICA, Served, serving

pytestmark = pytest.mark.e2e

# a replica that never becomes ready (its requests stay queued: the subject); the gateway kills it, nobody waits
NEVER_READY = f'["{sys.executable}", "-c", "import time; time.sleep(600)"]'
FAST = f'["{sys.executable}", "{REPLICA}", "{{port}}"]'
QUEUED = 6


def manifest(version: str, command: str, name: str = "sleepy") -> str:
    return f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  proxy: {{drainTimeout: 5s}}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    minReplicas: 1
    containers:
      - name: kserve-container
        image: sleepy:{version}
        command: {command}
        env: [{{name: VERSION, value: "{version}"}}]
"""


async def queued_at(served: Served, revision: str, count: int) -> bool:
    async with httpx.AsyncClient() as admin:
        doc = (await admin.get(f"http://127.0.0.1:{served.admin}/admin/services", timeout=5)).json()
    return any(rev["name"] == revision and rev["queued"] == count for svc in doc["services"] for rev in svc["revisions"])


async def strand(config: Path, served: Served, client: httpx.AsyncClient) -> list[asyncio.Task[httpx.Response]]:
    """v2 (whose replica never listens) promoted, QUEUED requests waiting for it."""
    await asyncio.to_thread(config.write_text, manifest("v2", NEVER_READY))
    await served.reload()
    waiting = [asyncio.create_task(client.get("/work", headers={"Host": HOST})) for _ in range(QUEUED)]
    await wait_until(lambda: queued_at(served, "sleepy-predictor-00002", QUEUED), "the requests queued at v2", within=20)
    return waiting


async def test_requests_queued_for_a_replaced_revision_go_to_the_new_one(tmp_path: Path) -> None:
    config = tmp_path / "isvc.yaml"
    config.write_text(manifest("v1", FAST))
    async with serving(config, tmp_path / "state") as (served, client):
        waiting = await strand(config, served, client)
        await asyncio.to_thread(config.write_text, manifest("v3", FAST))
        await served.reload()
        answers = await asyncio.wait_for(asyncio.gather(*waiting), 30)  # not the 120 s activation timeout
        assert [a.status_code for a in answers] == [200] * QUEUED, [a.text for a in answers]
        assert {a.headers["x-gateway-revision"] for a in answers} == {"sleepy-predictor-00003"}


async def test_requests_queued_for_a_removed_service_fail_fast_with_503(tmp_path: Path) -> None:
    config = tmp_path / "isvc.yaml"
    config.write_text(manifest("v1", FAST))
    async with serving(config, tmp_path / "state") as (served, client):
        waiting = await strand(config, served, client)
        await asyncio.to_thread(config.write_text, manifest("v1", FAST, name="other"))
        await served.reload()
        answers = await asyncio.wait_for(asyncio.gather(*waiting), 30)
        assert [a.status_code for a in answers] == [503] * QUEUED, [a.text for a in answers]
        assert all("removed by a reload" in a.json()["error"] for a in answers), answers[0].text
