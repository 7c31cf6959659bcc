"""The gateway numbers InferenceServices before it applies them, from the state directory's record."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import load
from gateway.rollouts.stores import RolloutError
from tests.config.support import write
from tests.rollouts.test_manifest import isvc

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: local\n---\n"


async def test_a_corrupt_state_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "rollouts.json").write_text("{half a file")
    path = write(tmp_path, "x.yaml", GATEWAY + isvc())
    gw = Gateway(load([path]), [path], state_dir=state)
    with pytest.raises(RolloutError, match=f"the rollout records {state / 'rollouts.json'} are corrupt"):
        await gw.start(listen="127.0.0.1:0")
    await gw.stop(drain_timeout=0)
    assert (state / "rollouts.json").read_text() == "{half a file"


@pytest.mark.e2e
async def test_gateway_serve_refuses_to_start_on_a_corrupt_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "rollouts.json").write_text("[]")
    path = write(tmp_path, "x.yaml", GATEWAY + isvc())
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "serve", "-f", path, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"),
        *("--state-dir", str(state)),
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert f"gateway: cannot start: the rollout records {state / 'rollouts.json'} are corrupt" in err.decode()


def idle_isvc(version: str, percent: int | None) -> str:
    """At zero (minReplicas 0): nothing is started, the runtimes and routes are what is looked at."""
    canary = "" if percent is None else f"    canaryTrafficPercent: {percent}\n"
    return GATEWAY + (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: iris\nspec:\n  predictor:\n"
        f"    minReplicas: 0\n{canary}    containers:\n      - image: m:{version}\n        command: [serve, '{{port}}']\n"
    )


async def test_reloads_number_keep_and_retire_revisions(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", idle_isvc("1", None))
    gw = Gateway(load([path]), [path], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    try:
        (v1,) = gw.config.services
        assert [key.name for key in gw.runtimes] == ["iris-predictor-00001"]
        await gw.reload()
        assert gw.config.services[0] is v1  # unchanged: the very spec object, nothing re-applied

        await asyncio.to_thread(Path(path).write_text, idle_isvc("2", 10))
        _, report = await gw.reload()
        assert report.changed == 1
        assert sorted(key.name for key in gw.runtimes) == ["iris-predictor-00001", "iris-predictor-00002"]
        route = gw.proxy.routes.by_service[("default", "iris")]
        assert (route.default.key.name, route.canary and route.canary.key.name, route.percent) == (
            "iris-predictor-00001",
            "iris-predictor-00002",
            10,
        )
        latest = gw.runtimes[route.canary.key] if route.canary is not None else None

        await asyncio.to_thread(Path(path).write_text, idle_isvc("2", None))  # promote
        await gw.reload()
        assert [key.name for key in gw.runtimes] == ["iris-predictor-00002"]
        (runtime,) = gw.runtimes.values()
        assert runtime is latest  # promotion kept the latest revision's runtime (and so its replicas and scaler)
        assert gw.proxy.routes.by_service[("default", "iris")].canary is None
    finally:
        await gw.stop(drain_timeout=0)
