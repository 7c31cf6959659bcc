"""A KFServing v1alpha2 InferenceService served end to end: its default and canary predictors run as local
replicas and the canaryTrafficPercent split holds."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.config import load

pytestmark = pytest.mark.e2e

REPLICA = Path(__file__).with_name("sleepy_replica.py")


def predictor(image: str) -> str:
    return f"""    predictor:
      minReplicas: 1
      custom:
        container:
          image: {image}
          command: ["{sys.executable}", "{REPLICA}", "{{port}}"]
"""


async def test_the_default_and_canary_predictors_split_the_traffic(tmp_path: Path) -> None:
    cfg = tmp_path / "isvc.yaml"
    cfg.write_text(
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: local\n---\n"
        "apiVersion: serving.kubeflow.org/v1alpha2\nkind: InferenceService\nmetadata:\n  name: flowers\nspec:\n"
        f"  default:\n{predictor('flowers:v1')}  canary:\n{predictor('flowers:v2')}  canaryTrafficPercent: 20\n"
    )
    gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.proxy.sockets[0][1]}", headers={"Host": "flowers.default.example.com"}, timeout=30
        ) as client:
            seen = Counter([(await client.get("/work?ms=1")).headers["x-gateway-revision"] for _ in range(100)])
    finally:
        await gw.stop(drain_timeout=1)
    assert seen == Counter({"flowers-default": 80, "flowers-canary": 20})
