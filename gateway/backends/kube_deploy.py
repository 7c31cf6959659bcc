"""The Deployment requests the kubernetes backend makes, each through `KubeApi.call`, on plain dicts.

Bodies and answers stay JSON objects (`_preload_content=False`): the client's models would drop what
they do not know and fail on what an API emulator leaves out.

Every write (create, patch, scale, delete) is guarded: the `guard` it is given, else the one these
Deployments were made with, is asked right before each of its attempts (`KubeApi.call`), so a retried
write is never sent once the lease that decided it has ended.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from gateway.backends.kube_api import KubeApi, KubeRequestError
from gateway.backends.kube_manifest import Obj

SCALE_PATCH_OP = "add"  # Knative >= 1.22: [{"op": "add", "path": "/spec/replicas", "value": N}] on /scale


def _json(response: Any) -> Any:
    try:
        return json.loads(response.data or b"null")
    finally:
        response.release_conn()


def replicas_of(deployment: Obj) -> int:
    value = (deployment.get("spec") or {}).get("replicas")
    return int(value) if isinstance(value, int) else 1  # the API's default when unset


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


Guard = Callable[[], bool]


def _always() -> bool:
    return True


def patch_ops(manifest: Obj, current: Obj | None) -> list[Obj]:
    """The JSON patch that brings a Deployment to `manifest` (all but replicas): the template replaced, each of
    our labels and annotations added; a map `current` lacks (when it is known) is added whole."""
    ops: list[Obj] = [{"op": "replace", "path": "/spec/template", "value": manifest["spec"]["template"]}]
    have = (current or {}).get("metadata") or {}
    for field in ("labels", "annotations"):
        ours = manifest["metadata"].get(field) or {}
        if current is not None and not isinstance(have.get(field), dict):
            ops.append({"op": "add", "path": f"/metadata/{field}", "value": dict(ours)})
            continue
        for key, value in ours.items():
            ops.append({"op": "add", "path": f"/metadata/{field}/{_escape(key)}", "value": value})
    return ops


class Deployments:
    def __init__(self, api: KubeApi, guard: Guard = _always) -> None:
        self.api = api
        self.guard = guard  # a write's default guard: whether this gateway may write right now

    async def list(self, namespace: str, *, schedule: Sequence[float] | None = None) -> dict[str, Obj]:
        """Every Deployment of `namespace` by name (ours or not: a name taken by another is found too)."""
        response = await self.api.call(
            f"Deployments in {namespace}",
            self.api.apps.list_namespaced_deployment,
            namespace,
            schedule=schedule,
            _preload_content=False,
        )
        body = _json(response)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise KubeRequestError(200, f"Deployments in {namespace}", "the answer is not a list")
        found: dict[str, Obj] = {}
        for item in items:
            metadata = item.get("metadata") or {} if isinstance(item, dict) else {}
            if metadata.get("name") and metadata.get("namespace", namespace) == namespace:
                found[str(metadata["name"])] = item
        return found

    async def list_labelled(self, namespace: str | None, selector: str) -> Sequence[Obj]:
        """The Deployments with these labels in `namespace` (None: every namespace). The selector is only a hint
        to the API (an emulator may ignore it): the caller filters the labels again."""
        where = "all namespaces" if namespace is None else namespace
        args: tuple[str, ...] = () if namespace is None else (namespace,)
        call = self.api.apps.list_deployment_for_all_namespaces if namespace is None else self.api.apps.list_namespaced_deployment
        response = await self.api.call(f"Deployments in {where}", call, *args, label_selector=selector, _preload_content=False)
        body = _json(response)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise KubeRequestError(200, f"Deployments in {where}", "the answer is not a list")
        return [item for item in items if isinstance(item, dict)]

    async def get(self, namespace: str, name: str) -> Obj | None:
        try:
            response = await self.api.call(
                f"Deployment {namespace}/{name}",
                self.api.apps.read_namespaced_deployment,
                name,
                namespace,
                _preload_content=False,
            )
        except KubeRequestError as exc:
            if exc.status == 404:
                return None
            raise
        body = _json(response)
        return body if isinstance(body, dict) else None

    async def create(self, manifest: Obj, replicas: int, *, guard: Guard | None = None) -> Obj:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        body = {**manifest, "spec": {**manifest["spec"], "replicas": replicas}}
        response = await self.api.call(
            f"Deployment {namespace}/{name}",
            self.api.apps.create_namespaced_deployment,
            namespace,
            body,
            guard=guard or self.guard,
            _preload_content=False,
        )
        created = _json(response)
        return created if isinstance(created, dict) else body

    async def patch_spec(self, manifest: Obj, *, guard: Guard | None = None) -> Obj | None:
        """Bring a Deployment of ours to `manifest` (all but replicas): its template replaced whole, so a
        removed variable or port goes too (a merge patch would keep it), our labels and annotations set.
        Refused 422 (a Deployment without `metadata.labels` or `.annotations`: the JSON patch cannot add a
        key to a map that is not there), it is read and patched once more, the missing maps added whole."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            return await self._patch(manifest, patch_ops(manifest, None), guard)
        except KubeRequestError as exc:
            if exc.status != 422 or (current := await self.get(namespace, name)) is None:
                raise
        return await self._patch(manifest, patch_ops(manifest, current), guard)

    async def _patch(self, manifest: Obj, ops: Sequence[Obj], guard: Guard | None) -> Obj | None:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        response = await self.api.call(
            f"Deployment {namespace}/{name}",
            self.api.apps.patch_namespaced_deployment,
            name,
            namespace,
            ops,
            guard=guard or self.guard,
            _preload_content=False,
        )
        patched = _json(response)
        return patched if isinstance(patched, dict) else None

    async def scale(self, namespace: str, name: str, replicas: int, *, guard: Guard | None = None) -> None:
        """The `scale` subresource, with the JSON patch Knative sends."""
        patch = [{"op": SCALE_PATCH_OP, "path": "/spec/replicas", "value": replicas}]
        response = await self.api.call(
            f"Deployment {namespace}/{name} (scale)",
            self.api.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            patch,
            guard=guard or self.guard,
            _preload_content=False,
        )
        _json(response)  # read to the end: a connection goes back to the pool only with its answer consumed

    async def delete(self, namespace: str, name: str, *, guard: Guard | None = None) -> None:
        try:
            response = await self.api.call(
                f"Deployment {namespace}/{name}",
                self.api.apps.delete_namespaced_deployment,
                name,
                namespace,
                guard=guard or self.guard,
                _preload_content=False,
            )
        except KubeRequestError as exc:
            if exc.status == 404:
                return  # already gone
            raise
        _json(response)  # read to the end: a connection goes back to the pool only with its answer consumed
