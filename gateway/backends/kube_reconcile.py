"""The kubernetes backend's worker: one task that brings each revision's Deployment to what is wanted.

Revisions are marked (`mark`) when something about them changed; the worker reconciles the marked
ones, PARALLEL at a time, each on its own (a failing one holds no other, and is tried again on its own
backoff). An outage of the API stops everything until it answers again; then, and every resync period,
every Deployment is looked at again (`resync`), so drift is undone.

Only the actuating gateway writes (`actuating`; with several gateways, the elected leader). A follower looks at
Deployments, records the autoscaler's wishes, keeps a removed revision until the leader deleted its Deployment,
and sends nothing. A change of leadership cancels the reconciles in hand, and one begun under the other mode
writes nothing; every Deployment is read again (`resync`) before a new leader converges. The fence and the
epoch are asked before every attempt of a write, retries included (a guard, kube_api): a fenced write is
abandoned, not a failure, and decided again shortly; one already on the wire ends by its request timeout.
A create or patch refused 422 (invalid) is not sent again until the config changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from functools import partial

from gateway.backends.kube_api import KubeApi, KubeFenced, KubeRequestError, KubeUnavailable
from gateway.backends.kube_deploy import Deployments
from gateway.backends.kube_manifest import managed_by_us
from gateway.backends.kube_orphans import Orphans
from gateway.backends.kube_pods import Obj
from gateway.backends.kube_state import KubeRevision, template_digest
from gateway.types import RevisionKey

log = logging.getLogger(__name__)

PARALLEL = 4  # API requests in flight at once (the API's threads)
LOOK_SCHEDULE = (0.5, 1.0)  # the retries of a start's or reload's first look
LISTING_REUSE = 5.0  # seconds a namespace's listing serves new revisions' first look
FENCE_RETRY = 0.5  # seconds before a write the lease's fence held back is tried again (the lease renewed, or lost)
FOLLOW_POLL = (1.0, 30.0)  # a follower looks again at a Deployment the leader is to make or delete: first, longest wait


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        revisions: dict[RevisionKey, KubeRevision],
        *,
        busy: Callable[[KubeRevision], int],
        backoff: Sequence[float],
        drain_poll: float,
        drain_limit: float,
        resync_period: float,
        clock: Callable[[], float],
    ) -> None:
        self.api = api
        self.deployments = Deployments(api, guard=lambda: self.actuating and self.fence())
        self.revisions = revisions  # the backend's: what each revision's Deployment must be
        self._busy = busy
        self._backoff = tuple(backoff)
        self._drain_poll = drain_poll
        self._drain_limit = drain_limit
        self._resync_period = resync_period
        self._clock = clock
        self.dirty: set[RevisionKey] = set()
        self.tasks: dict[RevisionKey, asyncio.Task[None]] = {}  # reconciles running
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._retry_at = 0.0  # after an outage, the worker's next try (clock time)
        self._outages = 0  # outages in a row (the worker's backoff)
        self._failures: dict[RevisionKey, int] = {}  # a revision's failed reconciles in a row (its backoff)
        self._recoveries = api.recoveries
        self._warned: set[RevisionKey] = set()
        self._listed: dict[str, tuple[float, dict[str, Obj]]] = {}  # namespace -> (when, its Deployments)
        self.actuating = True
        self._epoch = 0  # changes of `actuating` so far: a reconcile begun under another one writes nothing
        self._resync_wanted = False  # every Deployment is read again before the next reconcile
        self._follow_looks: dict[RevisionKey, int] = {}  # a follower's looks in a row at one awaiting the leader
        self._later: dict[RevisionKey, asyncio.TimerHandle] = {}
        self._refused: dict[RevisionKey, str] = {}  # a create or patch refused 422: its digest (sent again once changed)
        # With several gateways: whether the lease this instance leads by is still valid now (by its own clock).
        # Asked before every attempt of every write, so a leader paused past its lease writes nothing when it resumes.
        self.fence: Callable[[], bool] = lambda: True
        self.orphans = Orphans(self.deployments)
        self.owner = "serving-gateway"  # spec.kubernetes.owner: whose orphans the sweep deletes
        self.configured = False  # a whole configuration was applied once: the sweep knows every revision
        self.sweep_wanted = False  # look for orphans (after a start, a reload, a change of leadership)

    def set_actuating(self, on: bool) -> None:
        if on == self.actuating:
            return
        self.actuating = on
        self._epoch += 1
        self._resync_wanted = True
        self.sweep_wanted = on
        if not on:
            for task in self.tasks.values():
                task.cancel()
        self._wake.set()

    def _writes(self, epoch: int, key: RevisionKey | None = None) -> bool:
        """Whether a reconcile begun at `epoch` may write: leadership held since, the lease valid now (held back by
        the fence alone, `key` is tried again shortly)."""
        if not (self.actuating and epoch == self._epoch):
            return False
        if self.fence():
            return True
        if key is not None:
            asyncio.get_running_loop().call_later(FENCE_RETRY, self.mark, key)
        return False

    def mark(self, key: RevisionKey) -> None:
        self.dirty.add(key)
        self._wake.set()

    def remove(self, key: RevisionKey) -> None:
        record = self.revisions.get(key)
        if record is not None and record.removing_since is None:
            record.removing_since = self._clock()
            self.mark(key)

    def config_applied(self) -> None:
        """A whole configuration is applied: the leader looks for orphans."""
        self.configured = self.sweep_wanted = True
        self._wake.set()

    def answered(self) -> None:
        """The API answered (a pod list or watch): after an outage, the worker tries again at once."""
        if self.api.recoveries != self._recoveries:
            self._retry_at = 0.0
            self._wake.set()

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for task in (tasks := list(self.tasks.values())):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()

    # -- looking -----------------------------------------------------------------------------------
    async def look(self, records: Sequence[KubeRevision]) -> None:
        """What the cluster has under each name, one list per namespace; leaves them unknown if the API is down."""
        if not records or not self.api.reachable:
            return
        by_namespace: dict[str, list[KubeRevision]] = {}
        for record in records:
            by_namespace.setdefault(record.namespace, []).append(record)
        for namespace, group in by_namespace.items():
            try:
                found = await self._listing(namespace)
            except KubeUnavailable:
                return  # the worker looks again once the API answers; meanwhile scaling waits
            except KubeRequestError as exc:
                log.error("%s", exc)
                continue  # looked at one by one by the worker
            for record in group:
                record.observe(found.get(record.name))
                self._report(record)

    async def _listing(self, namespace: str) -> dict[str, Obj]:
        """The namespace's Deployments; a listing a few seconds old is reused (a large reload comes in slices)."""
        listed = self._listed.get(namespace)
        if listed is not None and self._clock() - listed[0] < LISTING_REUSE:
            return listed[1]
        found = await self.deployments.list(namespace, schedule=LOOK_SCHEDULE)
        self._listed[namespace] = (self._clock(), found)
        return found

    async def _resync(self) -> None:
        """Look at every Deployment again (after an outage, and every resync period); the worker fixes drift."""
        self._recoveries = self.api.recoveries
        by_namespace: dict[str, list[KubeRevision]] = {}
        for record in self.revisions.values():
            if record.removing_since is None:
                by_namespace.setdefault(record.namespace, []).append(record)
        for namespace, records in sorted(by_namespace.items()):
            found = await self.deployments.list(namespace)
            self._listed[namespace] = (self._clock(), found)
            for record in records:
                record.observe(found.get(record.name))
                self._report(record)
        self.dirty.update(self.revisions)

    def _report(self, record: KubeRevision) -> None:
        if record.found == "foreign" and record.key not in self._warned:
            self._warned.add(record.key)
            log.error("%s: %s", record.key, record.error)

    # -- the worker --------------------------------------------------------------------------------
    async def _run(self) -> None:
        next_resync = self._clock() + self._resync_period
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_resync - self._clock())):
                    await self._wake.wait()
            self._wake.clear()
            if self._clock() < self._retry_at - 0.01:
                continue  # backing off: new wishes wait with the rest (the API's return ends the wait)
            try:
                if self._resync_wanted or self.api.recoveries != self._recoveries or self._clock() >= next_resync:
                    next_resync = self._clock() + self._resync_period
                    epoch = self._epoch
                    await self._resync()
                    if epoch != self._epoch:
                        continue  # leadership changed during the look: look again (it set the wake)
                    self._resync_wanted = False
                if self.sweep_wanted and self.configured and self.actuating:
                    await self._sweep()
            except KubeUnavailable as exc:
                self._outage(exc)
                continue
            self._dispatch()

    async def _sweep(self) -> None:
        """Delete this installation's Deployments whose revisions are not in the config (`kube_orphans`)."""
        epoch, self.sweep_wanted = self._epoch, False
        namespaces = {record.namespace for record in self.revisions.values()} | set(self._listed)
        try:
            await self.orphans.sweep(self.revisions, self.owner, namespaces, lambda: self.configured and self._writes(epoch))
        except KubeFenced:
            self.sweep_wanted = self.actuating  # the lease ended during a delete's retries: again once it is renewed
        except KubeUnavailable:
            self.sweep_wanted = True  # after the outage
            raise
        except KubeRequestError as exc:
            log.error("looking for orphaned Deployments: %s", exc)

    def _outage(self, exc: KubeUnavailable) -> None:
        log.warning("kubernetes API unavailable (%s); trying again", exc)
        delay = self._backoff[min(self._outages, len(self._backoff) - 1)]
        self._outages += 1
        self._retry_at = self._clock() + delay
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    def _dispatch(self) -> None:
        """Reconcile the marked revisions, PARALLEL at a time, each on its own: a failing one holds no other."""
        loop = asyncio.get_running_loop()
        for key in [key for key in self.dirty if key not in self.tasks][: max(0, PARALLEL - len(self.tasks))]:
            self.dirty.discard(key)
            task = loop.create_task(self._reconcile(key, self._epoch))
            self.tasks[key] = task
            task.add_done_callback(partial(self._done, key))

    def _done(self, key: RevisionKey, task: asyncio.Task[None]) -> None:
        self.tasks.pop(key, None)
        self._wake.set()
        if task.cancelled():
            self.dirty.add(key)  # leadership changed (or closing): the resync that follows looks at it again
            return
        exc = task.exception()
        if exc is None:
            self._outages = 0
            self._failures.pop(key, None)
            return
        if isinstance(exc, KubeUnavailable) and not self.api.reachable:
            self.dirty.add(key)  # an outage: everything waits for the API's return
            self._outage(exc)
            return
        # this object failed (a 5xx about it, or a bug): it alone is tried again, later
        record = self.revisions.get(key)
        if record is not None and record.error != str(exc):
            log.error("%s: %s; trying again", key, exc, exc_info=not isinstance(exc, KubeUnavailable))
            record.error = str(exc)
        self._failures[key] = failures = self._failures.get(key, 0) + 1
        asyncio.get_running_loop().call_later(self._backoff[min(failures, len(self._backoff)) - 1], self.mark, key)

    async def _reconcile(self, key: RevisionKey, epoch: int) -> None:
        record = self.revisions.get(key)
        if record is None:
            return
        try:
            await (self._converge(record, epoch) if record.removing_since is None else self._retire(record, epoch))
        except KubeFenced:
            return  # not sent: `_writes` said no and marked it again if still leading (else the resync looks)
        except KubeRequestError as exc:
            if exc.status == 404 and record.found == "ours":
                record.observe(None)  # deleted behind our back: made again
                self.mark(key)
                return
            if exc.status == 409:
                record.found = "unknown"  # made meanwhile (by us on a retried create, or by someone else)
                self.mark(key)
                return
            if exc.status == 422:
                self._refused[key] = record.digest  # invalid: sending it again would only be refused again
            if record.error != str(exc):
                log.error("%s: %s", key, exc)
            record.error = str(exc)

    async def _converge(self, record: KubeRevision, epoch: int) -> None:
        if record.problem:
            return  # the config cannot make a Deployment: nothing to send
        if record.found == "unknown" or record.stale:
            record.stale = False
            record.observe(await self.deployments.get(record.namespace, record.name))
            self._report(record)
        refused = self._refused.get(record.key) == record.digest  # refused 422 (record.error): sent again on a new config
        if record.found == "foreign" or (refused and record.found == "absent"):
            return
        if not self._writes(epoch, record.key):
            self._follow(record)
            return
        if record.found == "absent":
            if (wait := record.creation_wait(self._clock())) > 0:
                asyncio.get_running_loop().call_later(wait, self.mark, record.key)
                return
            replicas, digest = record.wanted or 0, record.digest  # a reload during the create: patched next round
            created = await self.deployments.create(record.manifest, replicas, guard=partial(self._writes, epoch, record.key))
            log.info("%s: created %s with %d replicas", record.key, record.what, replicas)
            record.found, record.replicas, record.applied = "ours", replicas, digest
            record.template_seen, record.drifted = template_digest(created), False
        elif (record.applied != (digest := record.digest) or record.drifted) and not refused:
            patched = await self.deployments.patch_spec(record.manifest, guard=partial(self._writes, epoch, record.key))
            log.info("%s: updated %s", record.key, record.what)
            record.applied, record.drifted, record.template_seen = digest, False, template_digest(patched)
        target = record.wanted
        if target is not None and target != record.replicas:
            if not self._writes(epoch, record.key):
                return  # leadership changed during the create or patch
            await self.deployments.scale(record.namespace, record.name, target, guard=partial(self._writes, epoch, record.key))
            log.info("%s: scaled %s from %s to %d", record.key, record.what, record.replicas, target)
            record.replicas = target
        record.error = None

    def _follow(self, record: KubeRevision) -> None:
        """A follower only looks: one whose Deployment is not there yet is looked at again (the leader makes it)."""
        if record.found == "absent":
            self._look_later(record.key)
        else:
            self._follow_looks.pop(record.key, None)

    async def _retire(self, record: KubeRevision, epoch: int) -> None:
        """A revision that left the config: its Deployment is deleted once its requests are done."""
        assert record.removing_since is not None
        if not self._writes(epoch, record.key):
            await self._follow_retirement(record)
            return
        busy = self._busy(record)
        if busy and self._clock() - record.removing_since < self._drain_limit:
            asyncio.get_running_loop().call_later(self._drain_poll, self.mark, record.key)
            return
        deleted = False
        if record.found != "foreign":
            current = await self.deployments.get(record.namespace, record.name)
            if current is not None and managed_by_us(current):
                if not self._writes(epoch, record.key):
                    self.mark(record.key)  # leadership changed during the look: the follower's way next
                    return
                await self.deployments.delete(record.namespace, record.name, guard=partial(self._writes, epoch, record.key))
                deleted = True
                log.info("%s: deleted %s (left the config%s)", record.key, record.what, ", drained" if not busy else "")
        if record.removing_since is None:  # back in the config meanwhile: made again
            if deleted:
                record.observe(None)
            self.mark(record.key)
            return
        del self.revisions[record.key]
        self._warned.discard(record.key)

    async def _follow_retirement(self, record: KubeRevision) -> None:
        """A follower keeps a removed revision while its Deployment is there (should it lead before the
        leader deleted it, it deletes it itself) and forgets it once it is gone."""
        current = None if record.found == "foreign" else await self.deployments.get(record.namespace, record.name)
        if record.removing_since is None:  # back in the config meanwhile
            record.stale = True
            self.mark(record.key)
            return
        if current is not None and managed_by_us(current):
            self._look_later(record.key)
            return
        del self.revisions[record.key]
        self._warned.discard(record.key)
        self._follow_looks.pop(record.key, None)

    def _look_later(self, key: RevisionKey) -> None:
        """A follower reads the Deployment again in a while, waiting longer each time (the leader may be slow or
        gone): a GET a second at first, one every half minute at most."""
        if key in self._later:
            return
        looks = self._follow_looks.get(key, 0)
        self._follow_looks[key] = looks + 1
        first, longest = FOLLOW_POLL
        self._later[key] = asyncio.get_running_loop().call_later(min(first * 2**looks, longest), self._look_now, key)

    def _look_now(self, key: RevisionKey) -> None:
        self._later.pop(key, None)
        record = self.revisions.get(key)
        if record is not None:
            record.stale = True
            self.mark(key)
