"""What the kubernetes backend needs of a revision's Deployment beyond the builder (`deployment.py`):
the revision a pod belongs to, and the digest that tells an unchanged Deployment."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from gateway.backends.deployment import (
    DEFAULT_PORT,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAMESPACE_LABEL,
    REVISION_LABEL,
    SERVICE_LABEL,
    build_deployment,
    managed_by_us,
    served_port,
)
from gateway.config.model import GatewaySettings, RevisionSpec, ServiceSpec
from gateway.types import RevisionKey, is_revision_name

__all__ = [
    "DEFAULT_PORT",
    "DIGEST_ANNOTATION",
    "ROLLOUT_ANNOTATION",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "Obj",
    "desired",
    "managed_by_us",
    "revision_of",
]

Obj = dict[str, Any]

DIGEST_ANNOTATION = "serving-gateway/digest"
ROLLOUT_ANNOTATION = "serving-gateway/rollout"  # an InferenceService's rollout record (gateway.rollouts), on each revision


def revision_of(obj: Obj) -> RevisionKey | None:
    """The revision an object (a pod) belongs to, from its labels; None for anything not ours."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    revision = labels.get(REVISION_LABEL)
    service = labels.get(SERVICE_LABEL)
    namespace = labels.get(NAMESPACE_LABEL)
    if not isinstance(revision, str) or not is_revision_name(revision) or not service or not namespace:
        return None
    return RevisionKey(namespace, service, revision)


def desired(spec: ServiceSpec, rev: RevisionSpec, settings: GatewaySettings) -> tuple[Obj, str, int]:
    """The revision's Deployment with no replica count (the autoscaler owns it), stamped with its digest;
    with the digest and the port its pods serve on. BackendConfigError if it cannot be built.

    The digest covers the whole manifest: an equal digest on the cluster's copy means nothing to patch,
    so a restart rolls no pods.
    """
    manifest = copy.deepcopy(build_deployment(spec, rev, settings.kubernetes))
    manifest["spec"].pop("replicas", None)
    if spec.rollout is not None and spec.rollout.record:
        # kept with the Deployments, so a restarted gateway finds which revision was rolled out
        manifest["metadata"].setdefault("annotations", {})[ROLLOUT_ANNOTATION] = spec.rollout.record
    digest = hashlib.blake2b(json.dumps(manifest, sort_keys=True).encode(), digest_size=12).hexdigest()
    manifest["metadata"].setdefault("annotations", {})[DIGEST_ANNOTATION] = digest
    return manifest, digest, served_port(rev)
