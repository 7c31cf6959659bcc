"""The `/scale` subresource: a Deployment seen as an autoscaling/v1 Scale, and a Scale's replicas read back."""

from __future__ import annotations

from typing import Any

from tests.kube.selection import selector_from_match_labels
from tests.kube.store import Key, Obj, api_error


def to_scale(deployment: Obj) -> Obj:
    meta = deployment.get("metadata", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": deployment.get("spec", {}).get("replicas", 1)},
        "status": {
            "replicas": deployment.get("status", {}).get("replicas", 0),
            "selector": selector_from_match_labels(deployment.get("spec", {}).get("selector")),
        },
    }


def replicas_of(scale: Obj, key: Key) -> int:
    replicas: Any = scale.get("spec", {}).get("replicas")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise api_error(
            422,
            "Invalid",
            f'Scale.autoscaling "{key[2]}" is invalid: spec.replicas: Invalid value: {replicas!r}: must be a non-negative integer',
            key,
        )
    return replicas
