"""kmock's `KubernetesEmulator`, wrapped so that it answers like a real API server where a controller relies on it.

Wrapped (the default) adds, over plain kmock: resourceVersion/uid/creationTimestamp/generation, 409 on a
stale resourceVersion, PUT, label and field selectors on list and watch, watch from a resourceVersion
(only later events; 410 Gone once that version has been compacted away), `timeoutSeconds` ending a watch
(with a BOOKMARK first when `allowWatchBookmarks=true`),
`watch=True`/`watch=1`, paths with a trailing slash, lists with `kind`/`apiVersion`/`metadata.resourceVersion`,
the `/scale` subresource as an autoscaling/v1 Scale, `/status` as the only way to write status, and
graceful deletion of pods bound to a node (a deletionTimestamp first; the kubelet removes the object).
Unwrapped (`wrapped=False`) is kmock as it ships. Injected faults (`faults`) answer first in both modes.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import importlib.resources
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock import KubernetesError

from tests.kube import scale, selection
from tests.kube.faults import FaultBook
from tests.kube.store import PODS, Key, Obj, Store, api_error, not_found, now, until_set
from tests.kube.validation import default, validate

WRITES = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
WITH_STATUS = ("deployments", "pods", "replicasets", "services", "namespaces")


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    wrapped: bool = True
    store: Store = attrs.field(init=False)
    faults: FaultBook = attrs.field(init=False, factory=FaultBook)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock's own load_bundled() reads the file with a deprecated importlib call.
        bundled = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
        self.resources.load_data(gzip.decompress(bundled))
        self.store = Store(self, stamped=self.wrapped)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if self.wrapped:
            raw_request = _normalised(raw_request)
        return await super().__call__(raw_request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        fault = self.faults.take(request)
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.delay)
        elif fault is not None:
            return fault.response(self._plain_list(request) if fault.kind == "list" else None)
        if not self.wrapped or request.resource is None or not request.resource.plural:
            try:
                return await super()._handle(request)
            finally:
                if request.action in WRITES:
                    self.store.touch()
        if request.resource not in self.resources:
            raise api_error(404, "NotFound", f"the server could not find the requested resource ({request.url.path})")
        return await self._serve(request)

    async def _serve(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        method, name, sub = request.method.value.upper(), request.name, request.subresource
        if method == "GET" and (name is None or request.action == kmock.action.WATCH):
            if request.action == kmock.action.WATCH:
                return await self._watch(request)
            return aiohttp.web.json_response(self._list(request))
        if method == "POST" and name is None:
            return aiohttp.web.json_response(self._create(request), status=201)
        if name is None or sub not in (None, "status", "scale"):
            raise api_error(405, "MethodNotAllowed", f"the test bed does not serve {method} {request.url.path}")
        key: Key = (request.resource, request.namespace, name)  # type: ignore[assignment]
        handlers: dict[str, Callable[[kmock.Request, Key], Obj]] = {
            "GET": self._fetch,
            "PATCH": self._patch,
            "PUT": self._put,
            "DELETE": self._delete,
        }
        if method not in handlers:
            raise api_error(405, "MethodNotAllowed", f"{method} is not allowed on {request.url.path}")
        return aiohttp.web.json_response(handlers[method](request, key))

    # -- reads -------------------------------------------------------------------------------------
    def _matcher(self, request: kmock.Request) -> selection.Matcher:
        try:
            labels = selection.parse_labels(request.params.get("labelSelector"))
            fields = selection.parse_fields(request.params.get("fieldSelector"))
        except selection.SelectorError as exc:
            raise api_error(400, "BadRequest", str(exc)) from exc
        namespace, name = request.namespace, request.name
        base = selection.matcher(labels, fields)
        return lambda obj: (
            (namespace is None or obj.get("metadata", {}).get("namespace") == namespace)
            and (name is None or obj.get("metadata", {}).get("name") == name)
            and base(obj)
        )

    def _list(self, request: kmock.Request) -> Obj:
        assert request.resource is not None
        match = self._matcher(request)
        items = [obj for _, obj in sorted(self.store.items(request.resource), key=lambda kv: (kv[0][1] or "", kv[0][2]))]
        kind = self.resources[request.resource].kind or str(request.resource.plural).capitalize()
        return {
            "kind": f"{kind}List",
            "apiVersion": f"{request.resource.group}/{request.resource.version}".lstrip("/"),
            "metadata": {"resourceVersion": str(self.store.revision)},
            "items": [obj for obj in items if match(obj)],
        }

    def _plain_list(self, request: kmock.Request) -> Obj:
        """What a server that ignores `?watch` answers: every object of the resource, selectors ignored."""
        items = [obj for key, obj in self.store.items(request.resource)] if request.resource is not None else []
        items = [
            obj for obj in items if request.namespace is None or obj.get("metadata", {}).get("namespace") == request.namespace
        ]
        return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}

    def _fetch(self, request: kmock.Request, key: Key) -> Obj:
        obj = self.store.get(key)
        if obj is None:
            raise not_found(key)
        return scale.to_scale(obj) if request.subresource == "scale" else obj

    async def _watch(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None and request._raw_request is not None
        match = self._matcher(request)
        since, timeout = _watch_params(request)
        response = aiohttp.web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request._raw_request)

        async def send(kind: str, obj: Obj) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        try:
            if since is not None and since < self.store.oldest - 1:
                await send("ERROR", _gone(since, self.store.oldest))
            else:
                if since is None:
                    since = self.store.revision
                    for _, obj in self.store.items(request.resource):
                        if match(obj):
                            await send("ADDED", obj)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout if timeout else math.inf
                if not await self._follow(request, send, match, since, deadline):
                    return response
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    async def _follow(
        self,
        request: kmock.Request,
        send: Callable[[str, Obj], Awaitable[None]],
        match: selection.Matcher,
        cursor: int,
        deadline: float,
    ) -> bool:
        """Stream the changes after `cursor` until `deadline`; False if the client went away first."""
        loop = asyncio.get_running_loop()
        assert request._raw_request is not None
        while True:
            changed = self.store.changed()
            for event in self.store.events_after(cursor):
                cursor = event.revision
                seen = _translate(event.type, event.obj, event.old, match) if event.resource == request.resource else None
                if seen is not None:
                    await send(*seen)
            remaining = deadline - loop.time()
            if remaining <= 0:
                if request.params.get("allowWatchBookmarks") == "true":
                    await send("BOOKMARK", self._bookmark(request, cursor))
                return True
            await until_set(changed, min(remaining, 1.0))
            transport = request._raw_request.transport
            if transport is None or transport.is_closing():
                return False

    def _bookmark(self, request: kmock.Request, revision: int) -> Obj:
        """What a watch that asked for bookmarks gets as it ends: the version to resume from, nothing else."""
        assert request.resource is not None
        return {
            "kind": self.resources[request.resource].kind,
            "apiVersion": f"{request.resource.group}/{request.resource.version}".lstrip("/"),
            "metadata": {"resourceVersion": str(max(revision, self.store.revision))},
        }

    # -- writes ------------------------------------------------------------------------------------
    def _create(self, request: kmock.Request) -> Obj:
        assert request.resource is not None
        body = _body(request, dict)
        meta = body.setdefault("metadata", {})
        if request.namespace and meta.get("namespace", request.namespace) != request.namespace:
            raise api_error(
                400,
                "BadRequest",
                f"the namespace of the provided object ({meta['namespace']}) does not match the namespace sent on the request ({request.namespace})",
            )
        name = meta.get("name") or (meta["generateName"] + _suffix() if meta.get("generateName") else None)
        if not name:
            raise api_error(422, "Invalid", f"{request.resource.plural}: metadata.name or metadata.generateName is required")
        for field in ("resourceVersion", "uid", "creationTimestamp", "generation", "deletionTimestamp"):
            meta.pop(field, None)
        meta["name"] = name
        key: Key = (request.resource, request.namespace or meta.get("namespace"), name)
        default(key, body)
        validate(key, body)
        return self.store.create(key, body)

    def _patch(self, request: kmock.Request, key: Key) -> Obj:
        body = _body(request, (dict, list))
        old = self._fetch(request, key)
        new = _apply(old, body, key)
        expect = new.get("metadata", {}).get("resourceVersion")
        expect = expect if expect != old.get("metadata", {}).get("resourceVersion") else None
        return self._write(request, key, new, expect)

    def _put(self, request: kmock.Request, key: Key) -> Obj:
        new = _body(request, dict)
        return self._write(request, key, new, new.get("metadata", {}).get("resourceVersion"))

    def _write(self, request: kmock.Request, key: Key, new: Obj, expect: str | None) -> Obj:
        """Store `new` as the subresource the request addressed (the whole object, its status, or its scale)."""
        current = self.store.get(key)
        if current is None:
            raise not_found(key)
        if request.subresource == "scale":
            replicas = scale.replicas_of(new, key)
            merged = copy.deepcopy(current)
            merged.setdefault("spec", {})["replicas"] = replicas
            return scale.to_scale(self.store.replace(key, merged, expect=expect))
        if request.subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status", {})
        else:
            merged = new
            if key[0].plural in WITH_STATUS:
                merged["status"] = current.get("status", {})
            merged.setdefault("metadata", {})["name"] = key[2]
            default(key, merged)
            validate(key, merged)
        stored = self.store.replace(key, merged, expect=expect)
        meta = stored.get("metadata", {})
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not _bound_pod(key, stored):
            return self.store.remove(key)
        return stored

    def _delete(self, request: kmock.Request, key: Key) -> Obj:
        obj = self._fetch(request, key)
        options = request.data if isinstance(request.data, dict) else {}
        precondition = (options.get("preconditions") or {}).get("resourceVersion")
        if precondition and precondition != obj.get("metadata", {}).get("resourceVersion"):
            raise api_error(
                409, "Conflict", f'precondition failed for {key[0].plural} "{key[2]}": resourceVersion {precondition}', key
            )
        grace = request.params.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        meta = obj.setdefault("metadata", {})
        graceful = _bound_pod(key, obj) and str(grace) != "0"
        if not meta.get("finalizers") and not graceful:
            return self.store.remove(key)
        if meta.get("deletionTimestamp"):
            return obj
        default = obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        meta.update(deletionTimestamp=now(), deletionGracePeriodSeconds=int(grace if grace is not None else default))
        return self.store.replace(key, obj)


def _bound_pod(key: Key, obj: Obj) -> bool:
    """A pod on a node: deleting it only marks it; the node's kubelet removes it once its containers stop."""
    return key[0] == PODS and bool(obj.get("spec", {}).get("nodeName"))


def _body(request: kmock.Request, kinds: type | tuple[type, ...]) -> Any:
    if not isinstance(request.data, kinds):
        raise api_error(400, "BadRequest", f"the request body must be JSON ({request.method.value} {request.url.path})")
    return copy.deepcopy(request.data)


def _apply(doc: Obj, body: Obj | list[Any], key: Key) -> Obj:
    """A JSON patch (a list) or a merge patch (an object); strategic merge is read as a merge patch."""
    if isinstance(body, list):
        try:
            result: Obj = dict(jsonpatch.apply_patch(doc, body))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
            raise api_error(422, "Invalid", f'{key[0].plural} "{key[2]}": bad JSON patch: {exc}', key) from exc
        return result
    merged: Obj = _merge(doc, body)
    return merged


def _merge(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _translate(kind: str, obj: Obj, old: Obj | None, match: selection.Matcher) -> tuple[str, Obj] | None:
    """What a watcher with this selector sees of one change: an object entering its selection is ADDED, leaving it DELETED."""
    now_in, was_in = match(obj), old is not None and match(old)
    if kind == "DELETED":
        return ("DELETED", obj) if was_in else None
    if now_in:
        return ("MODIFIED" if was_in else "ADDED", obj)
    return ("DELETED", obj) if was_in else None


def _watch_params(request: kmock.Request) -> tuple[int | None, float | None]:
    since_text = request.params.get("resourceVersion") or "0"
    timeout_text = request.params.get("timeoutSeconds")
    try:
        since = None if since_text == "0" else int(since_text)
        timeout = float(timeout_text) if timeout_text else None
    except ValueError as exc:
        raise api_error(400, "BadRequest", f"bad watch parameters: {exc}") from exc
    return since, timeout


def _gone(since: int, oldest: int) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {since} ({oldest - 1})",
        "reason": "Expired",
        "code": 410,
    }


def _suffix() -> str:
    import secrets

    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _normalised(raw: aiohttp.web.BaseRequest) -> aiohttp.web.BaseRequest:
    """`/apis/` as `/apis`, and `watch=True`/`1` as `watch=true` (kmock reads only the exact spelling)."""
    url = raw.rel_url
    path = url.path.rstrip("/") or "/"
    query = dict(url.query)
    watch = query.pop("watch", None)
    if watch is not None and watch.lower() in ("true", "1"):
        query["watch"] = "true"
    fixed = url.with_path(path).with_query(query)
    return raw if fixed == url else raw.clone(rel_url=fixed)


__all__ = ["ApiServer", "KubernetesError"]
