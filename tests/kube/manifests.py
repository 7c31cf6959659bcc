"""Manifests for tests against the test bed: a Deployment whose pods run tests/kube/replica.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.conftest import free_port

REPLICA = str(Path(__file__).with_name("replica.py"))


def replica_deployment(
    name: str,
    *,
    replicas: int = 1,
    labels: dict[str, str] | None = None,
    port: int | None = None,
    probe: dict[str, Any] | None = None,
    command: list[str] | None = None,
    env: list[dict[str, Any]] | None = None,
    grace: int | None = None,
) -> dict[str, Any]:
    """A Deployment of `replicas` pods running the stdlib replica on `port`, Ready when GET /healthz answers.

    The port defaults to one free on this host right now: pods share the host's ports with everything else
    running here, and any process listening on 0.0.0.0:port would keep every pod from binding that port.
    """
    labels = labels or {"app": name}
    port = port or free_port()
    container: dict[str, Any] = {
        "name": "replica",
        "image": "testbed/replica:1",
        "command": command or [sys.executable, REPLICA],
        "ports": [{"containerPort": port}],
        "readinessProbe": probe if probe is not None else {"httpGet": {"path": "/healthz", "port": port}},
    }
    if env:
        container["env"] = env
    spec: dict[str, Any] = {"containers": [container]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
        },
    }
