"""A watch of our Deployments, so a change made outside the gateway is undone within seconds, not at the
next resync: one watch per namespace in use (`PodWatch` with `resource="deployments"`, so the same rules:
`timeoutSeconds`, backoff, relist on 410, never spinning on an answer that is not a stream).

What an event of a configured revision's Deployment leads to, on the leader:
- its template changed (its digest differs from the one the gateway wrote or first saw) → patched back;
- its digest annotation is not the config's → patched (the config changed, or someone removed it);
- its replicas are not the autoscaler's count → read back and scaled back (as Knative's reconciler does);
- deleted → made again at the autoscaler's count (the replicas it had, if the autoscaler never asked).
Each only marks the revision (not one whose last write the API refused with a 4xx: that waits for the
next wish or the resync): the reconciler reads the Deployment again before it writes, so an event
that lags behind the gateway's own write costs a GET, not a write. A follower takes what it sees (for its
status and for when it leads) and never writes. Events of revisions being removed are left to the
retirement; objects without our label are ignored (an emulator may ignore the selector).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial

from gateway.backends.kube_api import KubeApi
from gateway.backends.kube_deploy import replicas_of
from gateway.backends.kube_manifest import DIGEST_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, Obj, managed_by_us, revision_of
from gateway.backends.kube_reconcile import Reconciler
from gateway.backends.kube_state import KubeRevision, template_digest
from gateway.backends.kube_watch import PodWatch
from gateway.types import RevisionKey

log = logging.getLogger(__name__)


class DeploymentWatch:
    def __init__(
        self,
        api: KubeApi,
        reconciler: Reconciler,
        *,
        answered: Callable[[], None],
        watch_timeout: int,
        min_interval: float,
        backoff: Sequence[float],
    ) -> None:
        self._api = api
        self._reconciler = reconciler
        self._revisions: Mapping[RevisionKey, KubeRevision] = reconciler.revisions
        self._answered = answered
        self._watch_timeout = watch_timeout
        self._min_interval = min_interval
        self._backoff = tuple(backoff)
        self.watches: dict[str, PodWatch] = {}

    def watch(self, namespaces: Iterable[str]) -> None:
        """Watch the Deployments of namespaces not watched yet (nothing waits for the first list)."""
        for namespace in sorted(set(namespaces) - set(self.watches)):
            watch = PodWatch(
                self._api,
                namespace,
                f"{MANAGED_BY_LABEL}={MANAGED_BY}",
                reset=partial(self._reset, namespace),
                event=self._event,
                failure=self._failed,
                answered=self._answered,
                timeout_seconds=self._watch_timeout,
                min_interval=self._min_interval,
                backoff=self._backoff,
                resource="deployments",
            )
            self.watches[namespace] = watch
            watch.start()

    def _failed(self, error: str, outage: bool) -> None:
        if outage:
            self._api.failed(error)

    def _reset(self, namespace: str, items: list[Obj]) -> None:
        """A (re)list: each one as an event; a configured one missing from it was deleted meanwhile."""
        listed = set()
        for obj in items:
            self._event("ADDED", obj)
            listed.add(str((obj.get("metadata") or {}).get("name")))
        for record in self._revisions.values():
            if record.namespace == namespace and record.found == "ours" and record.name not in listed:
                self._deleted(record)

    def _record_of(self, obj: Obj) -> KubeRevision | None:
        """The configured revision whose Deployment `obj` is (ours, by its labels and name); None for any other."""
        key = revision_of(obj)
        record = self._revisions.get(key) if key is not None else None
        if record is None or record.removing_since is not None or record.problem or not managed_by_us(obj):
            return None
        metadata = obj.get("metadata") or {}
        if (metadata.get("name"), metadata.get("namespace", record.namespace)) != (record.name, record.namespace):
            return None
        return record

    def _event(self, kind: str, obj: Obj) -> None:
        record = self._record_of(obj)
        if record is None or record.found == "foreign":
            return  # not a configured revision's, or not ours to change
        if kind == "DELETED":
            self._deleted(record)
            return
        if record.found == "unknown":
            record.observe(obj)  # not looked at yet: the event says what the look would have
        if not self._reconciler.actuating:
            record.observe(obj)  # a follower shows what the leader did
            return
        if record.error:
            return  # the API refused the last write for good: tried again on the next wish or resync, not per event
        self._drift(record, obj)

    def _drift(self, record: KubeRevision, obj: Obj) -> None:
        """On the leader: mark the revision if its Deployment is not what the gateway wrote."""
        template, replicas = template_digest(obj), replicas_of(obj)
        edited = record.template_seen is not None and template != record.template_seen
        if record.template_seen is None:
            record.template_seen = template  # first seen: what runs is taken as the gateway's
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(DIGEST_ANNOTATION)
        expected = record.wanted if record.wanted is not None else record.replicas
        if not edited and annotation == record.digest and replicas == expected and record.found == "ours":
            return
        if edited and not record.drifted:
            log.warning("%s: %s's template was changed outside the gateway; setting it back", record.key, record.what)
            record.drifted = True
        record.stale = True
        self._reconciler.mark(record.key)

    def _deleted(self, record: KubeRevision) -> None:
        if record.found != "ours":
            return
        if self._reconciler.actuating:
            log.warning("%s: %s was deleted outside the gateway; making it again", record.key, record.what)
            if record.wanted is None:
                record.wanted = record.replicas  # the autoscaler never asked: as it was
        record.stale = True
        self._reconciler.mark(record.key)

    async def close(self) -> None:
        await asyncio.gather(*(watch.stop() for watch in self.watches.values()))
        self.watches.clear()
