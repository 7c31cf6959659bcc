"""Wrong types anywhere give problems with a place, never a Python exception."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gateway.config import ConfigError, load

DOCUMENTS = [
    {
        "apiVersion": "serving-gateway/v1",
        "kind": "GatewayConfig",
        "spec": {
            "domain": "example.com",
            "listen": "0.0.0.0:8080",
            "autoscaler": {"stableWindow": "60s", "targetUtilization": 70},
            "activator": {"queueDepth": 10},
            "proxy": {"maxBodyBytes": "1Mi"},
        },
    },
    {
        "apiVersion": "elasticserving.paddlepaddle.org/v1",
        "kind": "PaddleService",
        "metadata": {"name": "foo", "annotations": {"autoscaling.knative.dev/target": "5"}},
        "spec": {
            "default": {
                "command": ["python", "serve.py"],
                "env": [{"name": "A", "value": "1"}],
                "containerImage": "img",
                "tag": "v1",
                "arg": "run",
                "accelerator": "nvidia",
                "acceleratorCount": 1,
                "nodeSelector": {"a": "b"},
                "tolerations": [{"key": "k"}],
            },
            "canary": {"command": "python serve.py", "env": {"A": "1"}},
            "canaryTrafficPercent": 10,
            "service": {"minScale": 0, "maxScale": 3, "window": "60s", "target": 10},
            "resources": {"requests": {"cpu": "1"}},
        },
    },
    {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "bar"},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "containers": [
                    {
                        "command": ["python"],
                        "args": ["x.py"],
                        "env": [{"name": "A", "value": "1"}],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/ready"}},
                        "resources": {"limits": {"cpu": "1"}},
                    }
                ],
            }
        },
    },
    {
        "apiVersion": "tensorstack.dev/v1beta1",
        "kind": "SimpleMLService",
        "metadata": {"name": "baz"},
        "spec": {
            "replicas": 2,
            "storage": {"s3": {"containerPath": "/m"}},
            "custom": {"spec": {"containers": [{"command": ["python"], "args": ["y.py"]}]}},
            "service": {"ports": [{"port": 7070}]},
        },
    },
]

WRONG = [None, "text", 7, -1, True, [], ["x"], {}, {"k": "v"}]


def _paths(node: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _replace(document: object, path: tuple[object, ...], value: object) -> object:
    changed = copy.deepcopy(document)
    node = changed
    for step in path[:-1]:
        node = node[step]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return changed


def test_the_base_documents_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump_all(DOCUMENTS), encoding="utf-8")
    config = load([str(path)])
    assert len(config.services) == 3


@pytest.mark.parametrize("index", range(len(DOCUMENTS)))
def test_every_field_with_every_wrong_type(tmp_path: Path, index: int) -> None:
    path = tmp_path / "x.yaml"
    for field in _paths(DOCUMENTS[index]):
        for wrong in WRONG:
            document = _replace(DOCUMENTS[index], field, wrong)
            path.write_text(yaml.safe_dump_all([document]), encoding="utf-8")
            try:
                load([str(path)])
            except ConfigError as exc:
                for problem in exc.problems:
                    assert problem.startswith(f"{path}: document 1"), (field, wrong, problem)
                    assert "cannot read this document" not in problem, (field, wrong, problem)
