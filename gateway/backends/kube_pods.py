"""Which pods serve which revision: the ready set `podIP:port` of every revision, from pod objects.

A pod counts when it carries our labels (checked here, whatever selector the API applied), has an IP,
its Ready condition is True and it has no deletion timestamp (a terminating pod leaves at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gateway.backends.kube_manifest import revision_of
from gateway.types import Endpoint, EndpointSet, RevisionKey

Obj = dict[str, Any]
PortOf = Callable[[RevisionKey], int]


def is_ready(pod: Obj) -> bool:
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_endpoint(pod: Obj, port: int) -> Endpoint | None:
    """The pod's serving address when it is ready, else None."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip or not is_ready(pod):
        return None
    return Endpoint(str(ip), port)


class PodIndex:
    """Ready endpoints per revision, kept from lists (`reset`) and watch events (`apply`)."""

    def __init__(self, port_of: PortOf) -> None:
        self._port_of = port_of
        self._pods: dict[tuple[str, str], tuple[RevisionKey, Endpoint | None]] = {}
        self._ready: dict[RevisionKey, dict[str, Endpoint]] = {}
        self.sets: dict[RevisionKey, EndpointSet] = {}

    def endpoints(self, key: RevisionKey) -> EndpointSet:
        return self.sets.get(key, frozenset())

    def reset(self, namespace: str, pods: Iterable[Obj]) -> set[RevisionKey]:
        """Replace everything known of `namespace` by `pods`; the revisions whose ready set changed."""
        touched: set[RevisionKey] = set()
        for ident in [ident for ident in self._pods if ident[0] == namespace]:
            touched.add(self._drop(ident))
        for pod in pods:
            touched |= self.apply("ADDED", pod, namespace)
        return {key for key in touched if self._refresh(key)}

    def apply(self, kind: str, pod: Obj, namespace: str) -> set[RevisionKey]:
        """One watch event; the revisions whose ready set may have changed (refreshed by the caller via `changed`)."""
        metadata = pod.get("metadata") or {}
        name = metadata.get("name")
        if not name or metadata.get("namespace", namespace) != namespace:
            return set()
        ident = (namespace, str(name))
        touched: set[RevisionKey] = set()
        if ident in self._pods:
            touched.add(self._drop(ident))
        key = revision_of(pod)
        if kind != "DELETED" and key is not None and key.namespace == namespace:
            endpoint = pod_endpoint(pod, self._port_of(key))
            self._pods[ident] = (key, endpoint)
            if endpoint is not None:
                self._ready.setdefault(key, {})[ident[1]] = endpoint
            touched.add(key)
        return touched

    def changed(self, keys: Iterable[RevisionKey]) -> list[RevisionKey]:
        """Of `keys`, those whose ready set differs from the one last published (now updated)."""
        return [key for key in keys if self._refresh(key)]

    def _drop(self, ident: tuple[str, str]) -> RevisionKey:
        key, endpoint = self._pods.pop(ident)
        if endpoint is not None:
            ready = self._ready.get(key)
            if ready is not None:
                ready.pop(ident[1], None)
        return key

    def _refresh(self, key: RevisionKey) -> bool:
        ready = self._ready.get(key)
        current = frozenset(ready.values()) if ready else frozenset()
        if not ready:
            self._ready.pop(key, None)
        if current == self.sets.get(key, frozenset()):
            return False
        if current:
            self.sets[key] = current
        else:
            self.sets.pop(key, None)
        return True
