"""What the API server does to a Pod or Deployment before storing it: defaulting, then validation (422).

Only what a controller or a node relies on is defaulted (replicas, strategy, grace period, restart policy)
and checked (names, labels, containers, the selector matching the template); the API server's full schema
validation is the client's or kubernetes-validate's business.
"""

from __future__ import annotations

import re
from typing import Any

from tests.kube.selection import parse_labels, selector_from_match_labels
from tests.kube.store import DEPLOYMENTS, PODS, Key, Obj, api_error

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def default(key: Key, obj: Obj) -> None:
    """Fill in the defaults the API server fills in, so a client reads back what it would read from a cluster."""
    spec = obj.setdefault("spec", {})
    if key[0] == DEPLOYMENTS:
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        pod_spec = (spec.get("template") or {}).get("spec")
        if isinstance(pod_spec, dict):
            _default_pod(pod_spec)
    elif key[0] == PODS:
        _default_pod(spec)


def _default_pod(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")


def validate(key: Key, obj: Obj) -> None:
    """Raise 422 Invalid naming the first field that a real API server would refuse."""
    kind = {DEPLOYMENTS: "Deployment.apps", PODS: "Pod"}.get(key[0])
    if kind is None:
        return
    problems = _metadata(obj.get("metadata", {}))
    if key[0] == DEPLOYMENTS:
        problems += _deployment(obj.get("spec") or {})
    else:
        problems += _containers("spec", (obj.get("spec") or {}).get("containers"))
    if problems:
        raise api_error(422, "Invalid", f'{kind} "{key[2]}" is invalid: {problems[0]}', key)


def _metadata(meta: Obj) -> list[str]:
    name = str(meta.get("name", ""))
    problems = []
    if len(name) > 253 or not _NAME.fullmatch(name):
        problems.append(
            f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        )
    for label, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            problems.append(
                f"metadata.labels: Invalid value: {value!r}: a valid label must be 63 characters or less, alphanumeric, '-', '_' or '.' ({label})"
            )
    return problems


def _deployment(spec: Obj) -> list[str]:
    problems: list[str] = []
    replicas: Any = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        problems.append(f"spec.replicas: Invalid value: {replicas!r}: must be greater than or equal to 0")
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        problems.append("spec.selector: Required value")
    elif not parse_labels(selector_from_match_labels(selector)).matches({"metadata": {"labels": labels}}):
        problems.append(f"spec.template.metadata.labels: Invalid value: {labels!r}: `selector` does not match template `labels`")
    return problems + _containers("spec.template.spec", (template.get("spec") or {}).get("containers"))


def _containers(path: str, containers: Any) -> list[str]:
    if not isinstance(containers, list) or not containers:
        return [f"{path}.containers: Required value"]
    problems = []
    for i, container in enumerate(containers):
        for field in ("name", "image"):
            if not isinstance(container, dict) or not container.get(field):
                problems.append(f"{path}.containers[{i}].{field}: Required value")
    return problems
