"""Accelerators on Kubernetes: the extended resource a revision asks for, and the toleration it needs.

`accelerator: nvidia` is `nvidia.com/gpu`; `kunlun` is `GatewayConfig.spec.kubernetes.kunlunResource`
(`baidu.com/xpu`, the Kunlunxin device plugin's name, by default; HAMi and newer plugins use
`kunlunxin.com/xpu`); any other value is a resource name used as it is. The count
(`acceleratorCount`, 1 by default) goes into limits. Extended resources cannot be overcommitted: when
both are set, requests must equal limits, so a count the manifest put in requests only is copied
to limits, and one the manifest put in limits is left alone (explicit resources always win).

NVIDIA's nodes are usually tainted `nvidia.com/gpu` (NoSchedule); there is no standard KunLun taint,
so its key is configurable (`kunlunTolerationKey`, the resource name by default). A resource name
given directly gets the toleration of the accelerator it names, and none if it names neither.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from gateway.config.model import KubernetesSettings, RevisionSpec

NVIDIA_RESOURCE = "nvidia.com/gpu"
NVIDIA_TAINT_KEY = "nvidia.com/gpu"


def accelerator_resource(revision: RevisionSpec, settings: KubernetesSettings) -> str | None:
    """The extended resource name a revision's `accelerator` asks for, None without one."""
    if revision.accelerator == "nvidia":
        return NVIDIA_RESOURCE
    if revision.accelerator == "kunlun":
        return settings.kunlun_resource
    return revision.accelerator


def with_accelerator(resources: Mapping[str, Any], revision: RevisionSpec, settings: KubernetesSettings) -> dict[str, Any]:
    """`resources` (a container's requests and limits) with the revision's accelerator in limits."""
    result: dict[str, Any] = copy.deepcopy(dict(resources))
    name = accelerator_resource(revision, settings)
    if name is None:
        return result
    limits = dict(result.get("limits") or {})
    requests = result.get("requests") or {}
    if name not in limits:
        limits[name] = requests.get(name, str(revision.accelerator_count))
    result["limits"] = limits
    return result


def accelerator_toleration(revision: RevisionSpec, settings: KubernetesSettings) -> dict[str, str] | None:
    """The toleration for the nodes that hold the revision's accelerator, if they have a known taint."""
    name = accelerator_resource(revision, settings)
    if name == NVIDIA_RESOURCE:
        key = NVIDIA_TAINT_KEY
    elif name is not None and name == settings.kunlun_resource:
        key = settings.kunlun_taint_key
    else:
        return None
    return {"key": key, "operator": "Exists", "effect": "NoSchedule"}


def tolerations_with(tolerations: list[dict[str, Any]], added: dict[str, str] | None) -> list[dict[str, Any]]:
    """`tolerations` and `added`, unless one of them already tolerates `added`'s key."""
    if added is None or any(item.get("key") == added["key"] for item in tolerations):
        return tolerations
    return [*tolerations, added]
