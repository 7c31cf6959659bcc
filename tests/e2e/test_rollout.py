"""KServe v1beta1 canary rollouts across config changes, end to end: a real `gateway serve` on the local
backend with real replicas, the manifest edited and reloaded as a KServe user edits and re-applies it.

v1 serves; v2 with canaryTrafficPercent 10 gets exactly 10 of each 100 requests; the prev-/latest- tag
hosts pin; a restart mid-rollout keeps the split and the names; 0 rolls back; removing the field promotes
v2 (its replicas are not restarted) and v1's replica is gone once its requests are done, none lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
REPLICA = Path(__file__).with_name("sleepy_replica.py")
HOST = "sleepy.default.example.com"
V1, V2 = "sleepy-predictor-00001", "sleepy-predictor-00002"


def manifest(version: str, percent: int | None) -> str:
    """The InferenceService as a user writes it; `version` goes into the predictor's environment, so v2 is
    a different revision."""
    canary = "" if percent is None else f"\n    canaryTrafficPercent: {percent}"
    return f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: local
  proxy: {{drainTimeout: 5s}}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sleepy
  annotations:
    serving.kserve.io/enable-tag-routing: "true"
spec:
  predictor:
    minReplicas: 1{canary}
    containers:
      - name: kserve-container
        image: sleepy:{version}
        command: ["{sys.executable}", "{REPLICA}", "{{port}}"]
        env: [{{name: VERSION, value: "{version}"}}]
"""


class Served:
    def __init__(self, config: Path, state: Path, extra: tuple[str, ...] = ()) -> None:
        self.config, self.state = config, state
        self.port, self.admin = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "-f", str(config), "--listen", f"127.0.0.1:{self.port}"]
            + ["--admin-listen", f"127.0.0.1:{self.admin}", "--state-dir", str(state), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    async def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the gateway exited: {self.proc.communicate()[0]}")
        try:
            async with httpx.AsyncClient() as admin:
                return (await admin.get(f"http://127.0.0.1:{self.admin}/readyz", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    async def services(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as admin:
            doc = (await admin.get(f"http://127.0.0.1:{self.admin}/admin/services", timeout=5)).json()
        (service,) = doc["services"]
        assert isinstance(service, dict)
        return service

    async def reload(self) -> None:
        async with httpx.AsyncClient() as admin:
            answer = await admin.post(f"http://127.0.0.1:{self.admin}/admin/reload", timeout=30)
        assert answer.status_code == 200, answer.text

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.communicate()[0] if self.proc.stdout else ""


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "isvc.yaml"
    path.write_text(manifest("v1", None))
    yield path


@asynccontextmanager
async def serving(config: Path, state: Path, *extra: str) -> AsyncIterator[tuple[Served, httpx.AsyncClient]]:
    served = Served(config, state, extra)
    try:
        await wait_until(served.ready, "the gateway ready", within=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}", timeout=30) as client:
            yield served, client
    finally:
        print(served.stop())


async def revisions(client: httpx.AsyncClient, count: int = 100, host: str = HOST) -> Counter[str]:
    """Which revision answered each of `count` requests in a row (all must succeed)."""
    seen: Counter[str] = Counter()
    for _ in range(count):
        answer = await client.get("/work", headers={"Host": host})
        assert answer.status_code == 200, answer.text
        seen[answer.headers["x-gateway-revision"]] += 1
    return seen


async def pid_behind(client: httpx.AsyncClient, host: str) -> int:
    answer = await client.get("/work", headers={"Host": host})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["pid"])


async def edit(config: Path, version: str, percent: int | None) -> None:
    await asyncio.to_thread(config.write_text, manifest(version, percent))


async def in_flight(served: Served, name: str, count: int) -> bool:
    return any(rev["name"] == name and rev["in_flight"] == count for rev in (await served.services())["revisions"])


async def gateway_status(served: Served) -> str:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "status", "--admin", f"127.0.0.1:{served.admin}"),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_canary_rollout_across_edits_restart_rollback_and_promotion(config: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with serving(config, state) as (served, client):
        assert await revisions(client) == Counter({V1: 100})
        rollout = (await served.services())["rollout"]
        assert rollout == {
            "ready": True,
            "prev": None,
            "latest": 100,
            "prevRolledOutRevision": None,
            "latestRevision": V1,
            "latestReadyRevision": V1,
        }
        v1_pid = await pid_behind(client, HOST)

        # edit to v2 with a 10 % canary and reload: the rolled-out v1 keeps 90 %
        await edit(config, "v2", 10)
        await served.reload()
        assert await revisions(client) == Counter({V1: 90, V2: 10})
        assert await revisions(client) == Counter({V1: 90, V2: 10})  # any 100 in a row
        rollout = (await served.services())["rollout"]
        assert (rollout["prev"], rollout["latest"], rollout["prevRolledOutRevision"], rollout["latestRevision"]) == (
            90,
            10,
            V1,
            V2,
        )

        # the tag hosts pin a revision
        assert await revisions(client, 20, f"prev-{HOST}") == Counter({V1: 20})
        assert await revisions(client, 20, f"latest-{HOST}") == Counter({V2: 20})
        status = await gateway_status(served)
        assert "PREVROLLEDOUTREVISION" in status
        assert any(
            line.split()[:7] == ["default/sleepy", f"http://{HOST}", "True", "90", "10", V1, V2] for line in status.splitlines()
        )

    # a restart mid-rollout: the same split, the same names
    async with serving(config, state) as (served, client):
        assert await revisions(client) == Counter({V1: 90, V2: 10})
        rollout = (await served.services())["rollout"]
        assert (rollout["prev"], rollout["latest"], rollout["prevRolledOutRevision"], rollout["latestRevision"]) == (
            90,
            10,
            V1,
            V2,
        )

        # 0: everything back to v1; v2 stays reachable by its tag
        await edit(config, "v2", 0)
        await served.reload()
        assert await revisions(client) == Counter({V1: 100})
        assert await revisions(client, 5, f"latest-{HOST}") == Counter({V2: 5})
        v1_pid, v2_pid = await pid_behind(client, f"prev-{HOST}"), await pid_behind(client, f"latest-{HOST}")

        # promote (the field removed) while v1 holds requests: none is lost, v1's replica goes once they are done
        slow = [asyncio.create_task(client.get("/work?ms=1500", headers={"Host": f"prev-{HOST}"})) for _ in range(3)]
        await wait_until(lambda: in_flight(served, V1, 3), "the slow requests held by v1")
        await edit(config, "v2", None)
        await served.reload()
        assert await revisions(client) == Counter({V2: 100})
        assert [answer.status_code for answer in await asyncio.gather(*slow)] == [200, 200, 200]
        assert await pid_behind(client, HOST) == v2_pid  # promotion kept v2's replica: its key did not change
        await wait_until(lambda: not alive(v1_pid), "v1's replica stopped after its requests drained", within=30)
        service = await served.services()
        assert [rev["name"] for rev in service["revisions"]] == [V2]
        assert service["rollout"]["prevRolledOutRevision"] is None and service["rollout"]["latestRevision"] == V2
        assert (await revisions(client, 5, f"latest-{HOST}")) == Counter({V2: 5})


async def test_workers_number_the_revisions_as_their_supervisor(config: Path, tmp_path: Path) -> None:
    """With `--workers 2` each worker builds its routes from the files too: it reads the records the supervisor
    stored, so both name and split the revisions alike (one keep-alive connection: one worker's splitter)."""
    async with serving(config, tmp_path / "state", "--workers", "2") as (served, client):
        assert await revisions(client, 20) == Counter({V1: 20})
        await edit(config, "v2", 10)
        await served.reload()
        assert await revisions(client) == Counter({V1: 90, V2: 10})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}", timeout=30) as other:
            assert await revisions(other) == Counter({V1: 90, V2: 10})
        assert await revisions(client, 10, f"latest-{HOST}") == Counter({V2: 10})
