"""The object store behind the emulator: kmock's objects, plus what a real API server stamps on them.

Every write goes through `Store` (HTTP handlers and the pod controller alike), so writes are atomic on the
emulator's event loop (no `await` inside), every change gets the next cluster-wide resourceVersion, and
each change is kept in a bounded history that watches read from.

Stamped (the wrapped emulator): `resourceVersion` from one global counter, `uid`, `creationTimestamp`,
`generation` (bumped when `spec` changes), `kind`/`apiVersion`, and 409 Conflict when a write carries a
stale `metadata.resourceVersion`. Unstamped (plain kmock): none of that; changes the controller makes are
published on kmock's own buses so kmock's watch streams them.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import datetime
import uuid
from dataclasses import dataclass
from typing import Any

import kmock
from kmock import KubernetesError

Key = tuple[kmock.resource, str | None, str]
Obj = dict[str, Any]

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
PODS = kmock.resource("", "v1", "pods")


async def until_set(event: asyncio.Event, seconds: float) -> None:
    """Wait for `event` at most `seconds`.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that arrives as the wait ends,
    and a task that ignores its cancellation hangs the cluster's shutdown.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_error(status: int, reason: str, message: str, key: Key | None = None) -> KubernetesError:
    details: dict[str, Any] = {}
    if key is not None:
        details = {"name": key[2], "kind": key[0].plural}
    return KubernetesError(status=status, reason=reason, message=message, details=details)


def not_found(key: Key) -> KubernetesError:
    return api_error(404, "NotFound", f'{key[0].plural} "{key[2]}" not found', key)


@dataclass(frozen=True)
class Event:
    revision: int
    resource: kmock.resource
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


class Store:
    def __init__(self, emulator: kmock.KubernetesEmulator, *, stamped: bool, history: int = 20_000) -> None:
        self.emulator = emulator
        self.stamped = stamped
        self.revision = 0
        self.history = history
        self.events: list[Event] = []
        self.oldest = 0  # a watch from a resourceVersion older than this gets 410 Gone
        self._changed = asyncio.Event()
        self._publish: asyncio.Queue[tuple[kmock.resource, Obj]] = asyncio.Queue()

    # -- reading -----------------------------------------------------------------------------------
    def get(self, key: Key) -> Obj | None:
        objects = self.emulator.objects
        if key not in objects or objects[key].deleted:
            return None
        return copy.deepcopy(objects[key].raw)

    def items(self, resource: kmock.resource, namespace: str | None = None) -> list[tuple[Key, Obj]]:
        out = []
        for key, obj in list(self.emulator.objects.items()):
            if key[0] == resource and (namespace is None or key[1] == namespace) and not obj.deleted:
                out.append((key, copy.deepcopy(obj.raw)))
        return out

    def events_after(self, revision: int) -> list[Event]:
        start = bisect.bisect_right(self.events, revision, key=lambda e: e.revision)
        return self.events[start:]

    def changed(self) -> asyncio.Event:
        """An event set at the next change (take it before reading, then wait on it)."""
        return self._changed

    def touch(self) -> None:
        """Wake whoever waits for a change (kmock's own handlers changed an object in unwrapped mode)."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- writing -----------------------------------------------------------------------------------
    def create(self, key: Key, obj: Obj) -> Obj:
        if self.get(key) is not None:
            raise api_error(409, "AlreadyExists", f'{key[0].plural} "{key[2]}" already exists', key)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["name"] = key[2]
        if key[1] is not None:
            meta["namespace"] = key[1]
        if self.stamped:
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            info = self.emulator.resources[key[0]]
            obj.setdefault("apiVersion", f"{key[0].group}/{key[0].version}".lstrip("/"))
            obj.setdefault("kind", info.kind or str(key[0].plural).capitalize())
        self._commit(key, "ADDED", obj, None)
        return obj

    def replace(self, key: Key, obj: Obj, *, expect: str | None = None) -> Obj:
        """Store `obj` as the new state of an existing object; 409 if `expect` is not the current version."""
        old = self.get(key)
        if old is None:
            raise not_found(key)
        current = old.get("metadata", {}).get("resourceVersion")
        if self.stamped and expect and expect != current:
            raise api_error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {key[0].plural} "{key[2]}": the object has been modified; '
                f"please apply your changes to the latest version and try again (sent {expect}, current {current})",
                key,
            )
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if self.stamped:
            for field in ("uid", "creationTimestamp", "generation", "resourceVersion", "name", "namespace"):
                if field in old.get("metadata", {}):
                    meta[field] = old["metadata"][field]
            if obj.get("spec") != old.get("spec"):
                meta["generation"] = int(meta.get("generation", 0)) + 1
        if obj == old:
            return old
        self._commit(key, "MODIFIED", obj, old)
        return obj

    def remove(self, key: Key) -> Obj:
        old = self.get(key)
        if old is None:
            raise not_found(key)
        self._commit(key, "DELETED", copy.deepcopy(old), old)
        return self.get_last(key)

    def get_last(self, key: Key) -> Obj:
        return copy.deepcopy(self.emulator.objects[key].last.raw)

    def compact(self) -> None:
        """Forget the history: a watch from any resourceVersion seen so far now gets 410 Gone."""
        self.events.clear()
        self.oldest = self.revision + 1

    def _commit(self, key: Key, kind: str, obj: Obj, old: Obj | None) -> None:
        if self.stamped:
            self.revision += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.revision)
        objects = self.emulator.objects
        if kind == "DELETED":
            objects[key].history.append(obj)
            objects[key].delete()
        elif key in objects:
            objects[key].history.append(obj)
        else:
            objects[key] = obj
        self.events.append(Event(self.revision, key[0], kind, copy.deepcopy(obj), old))
        if len(self.events) > self.history:
            dropped = self.events[: len(self.events) - self.history]
            del self.events[: len(dropped)]
            self.oldest = dropped[-1].revision + 1
        if not self.stamped:
            self._publish.put_nowait((key[0], {"type": kind, "object": copy.deepcopy(obj)}))
        self.touch()

    async def publish_forever(self) -> None:
        """Hand unstamped changes to kmock's watch buses, in order (kmock's bus is async-only)."""
        while True:
            resource, event = await self._publish.get()
            await self.emulator._buses[resource].put(event)
