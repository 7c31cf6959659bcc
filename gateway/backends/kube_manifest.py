"""What the kubernetes backend needs of a revision's Deployment: its name, labels, manifest and served port.

The manifest itself comes from the Deployment builder; this module only adds what the backend keeps
in it for itself (the digest that tells an unchanged Deployment, the port its pods serve on).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gateway.config.model import GatewaySettings, RevisionSpec, ServiceSpec
from gateway.types import RevisionKey

Obj = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "serving-gateway"
SERVICE_LABEL = "serving-gateway/service"
NAMESPACE_LABEL = "serving-gateway/namespace"
REVISION_LABEL = "serving-gateway/revision"
DIGEST_ANNOTATION = "serving-gateway/digest"
PORT_ANNOTATION = "serving-gateway/port"
DEFAULT_PORT = 8080


def deployment_name(key: RevisionKey) -> str:
    return key.name


def revision_labels(key: RevisionKey) -> dict[str, str]:
    """The labels every Deployment and pod of a revision carries (and its selector matches)."""
    return {MANAGED_BY: MANAGER, SERVICE_LABEL: key.service, NAMESPACE_LABEL: key.namespace, REVISION_LABEL: key.revision}


def managed_by_us(obj: Obj) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY) == MANAGER)


def revision_of(obj: Obj) -> RevisionKey | None:
    """The revision an object (a pod) belongs to, from its labels; None for anything not ours."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGER:
        return None
    revision = labels.get(REVISION_LABEL)
    service = labels.get(SERVICE_LABEL)
    namespace = labels.get(NAMESPACE_LABEL)
    if revision not in ("default", "canary") or not service or not namespace:
        return None
    return RevisionKey(namespace, service, revision)


def build(spec: ServiceSpec, rev: RevisionSpec, settings: GatewaySettings) -> Obj:
    """The revision's Deployment (placeholder for the Deployment builder, used only until it lands)."""
    key = spec.key(rev.name)
    labels = revision_labels(key)
    port = rev.container_port or DEFAULT_PORT
    container: Obj = {"name": "model", "image": rev.image or "serving-gateway:0.1.0", "ports": [{"containerPort": port}]}
    if rev.container_command:
        container["command"] = list(rev.container_command)
    if rev.args:
        container["args"] = list(rev.args)
    if rev.env:
        container["env"] = [{"name": name, "value": value} for name, value in rev.env]
    probe: Obj = {"httpGet": {"path": rev.readiness_path, "port": port}} if rev.readiness_path else {"tcpSocket": {"port": port}}
    container["readinessProbe"] = {**probe, "periodSeconds": 1}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(key), "namespace": key.namespace, "labels": dict(labels)},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}},
        },
    }


def serving_port(deployment: Obj) -> int:
    """The port the revision's pods serve on: the first container's first port (8080 when it names none)."""
    containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
    ports = containers[0].get("ports") or []
    for entry in ports:
        if isinstance(entry.get("containerPort"), int):
            return int(entry["containerPort"])
    return DEFAULT_PORT


def stamped(deployment: Obj) -> tuple[Obj, str, int]:
    """The Deployment with the backend's annotations added: (manifest, its digest, the served port).

    The digest covers everything but replicas, which the autoscaler owns; an equal digest on the
    cluster's copy means there is nothing to patch (a restart rolls no pods).
    """
    manifest = json.loads(json.dumps(deployment))
    manifest["spec"].pop("replicas", None)
    port = serving_port(manifest)
    template_meta = manifest["spec"]["template"].setdefault("metadata", {})
    template_meta.setdefault("annotations", {})[PORT_ANNOTATION] = str(port)
    digest = hashlib.blake2b(json.dumps(manifest, sort_keys=True).encode(), digest_size=12).hexdigest()
    manifest["metadata"].setdefault("annotations", {})[DIGEST_ANNOTATION] = digest
    return manifest, digest, port
