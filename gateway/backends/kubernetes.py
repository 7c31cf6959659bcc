"""The kubernetes backend: one Deployment per revision, scaled through its `scale` subresource, routed
to its ready pods.

- `update` records what each revision's Deployment must be and looks once at what the cluster has
  (so the autoscaler adopts running replicas); one worker task then creates, patches, scales and
  deletes, a few requests at a time, never on the event loop's time: the client's calls run on
  threads (`KubeApi`), and `scale` only records the wish.
- Only Deployments labelled `app.kubernetes.io/managed-by: serving-gateway` are ever touched; a name
  taken by another Deployment is refused, said in the revision's status and the log.
- A namespace watch of our pods gives each revision's ready set (`PodIndex`).
- While the API is unreachable nothing is forgotten: the last endpoints keep serving, scale wishes
  wait (the autoscaler is told to pause through `adoption`), and when it answers again every
  Deployment is looked at and brought to what is wanted.
- `close` leaves the Deployments running: the next gateway adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial

from gateway.backends.base import EndpointListener, InFlight, RevisionStatus
from gateway.backends.errors import BackendConfigError
from gateway.backends.kube_api import KubeApi, KubeRequestError, KubeUnavailable
from gateway.backends.kube_deploy import Deployments
from gateway.backends.kube_endpoints import PodEndpoints
from gateway.backends.kube_manifest import DEFAULT_PORT, desired, managed_by_us
from gateway.backends.kube_pods import Obj
from gateway.backends.kube_state import Adoption, KubeRevision, unbuilt
from gateway.backends.kube_watch import BACKOFF
from gateway.config.model import GatewaySettings, ServiceSpec
from gateway.types import EndpointSet, RevisionKey

log = logging.getLogger(__name__)

PARALLEL = 4  # API requests in flight at once (the API's threads)
LOOK_SCHEDULE = (0.5, 1.0)  # the retries of a start's or reload's first look
LOOK_BUDGET = 2.0  # a start or reload waits this long in all for the API (pods' first list and the look)
LISTING_REUSE = 5.0  # seconds a namespace's listing serves new revisions' first look
RESYNC_PERIOD = 300.0  # seconds between two full looks at our Deployments (a hand edit is undone)


class KubernetesBackend:
    def __init__(
        self,
        api: KubeApi,
        settings: GatewaySettings | None = None,
        *,
        in_flight: InFlight | None = None,
        watch_timeout: int = 30,
        watch_min_interval: float = 1.0,
        backoff: Sequence[float] = BACKOFF,
        drain_poll: float = 0.2,
        drain_limit: float | None = None,
        resync_period: float = RESYNC_PERIOD,
        first_list_timeout: float = 5.0,
        look_budget: float = LOOK_BUDGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.settings = settings or GatewaySettings()
        self._deployments = Deployments(api)
        self._in_flight = in_flight
        self._backoff = tuple(backoff)
        self._drain_poll = drain_poll
        self._drain_limit = self.settings.activator.request_timeout if drain_limit is None else drain_limit
        self._resync_period = resync_period
        self._look_budget = look_budget
        self._clock = clock
        self._services: dict[tuple[str, str], ServiceSpec] = {}
        self._revisions: dict[RevisionKey, KubeRevision] = {}
        self._pods = PodEndpoints(
            api,
            self._port_of,
            answered=self._answered,
            watch_timeout=watch_timeout,
            min_interval=watch_min_interval,
            backoff=backoff,
            first_list_timeout=first_list_timeout,
        )
        self._pods.listen(self._ready_changed)
        self._dirty: set[RevisionKey] = set()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._retry_at = 0.0  # after an outage, the worker's next try (clock time)
        self._outages = 0  # outages in a row (the worker's backoff)
        self._tasks: dict[RevisionKey, asyncio.Task[None]] = {}  # reconciles running
        self._failures: dict[RevisionKey, int] = {}  # a revision's failed reconciles in a row (its backoff)
        self._recoveries = api.recoveries
        self._warned: set[RevisionKey] = set()
        self._listed: dict[str, tuple[float, dict[str, Obj]]] = {}  # namespace -> (when, its Deployments)

    # -- Backend ---------------------------------------------------------------------------------
    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        wanted = {svc.ident for svc in services}
        changed = [svc for svc in services if self._services.get(svc.ident) is not svc]
        removed = [svc for ident, svc in self._services.items() if ident not in wanted]
        await self.update(changed, removed)

    async def update(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> None:
        for svc in removed:
            for rev in svc.revisions():
                self._remove(svc.key(rev.name))
            self._services.pop(svc.ident, None)
        fresh: list[KubeRevision] = []
        for svc in changed:
            old = self._services.get(svc.ident)
            if old is not None and old.canary is not None and svc.canary is None:
                self._remove(old.key("canary"))
            for rev in svc.revisions():
                key = svc.key(rev.name)
                problem = None
                try:
                    manifest, digest, port = desired(svc, rev, self.settings)
                except BackendConfigError as exc:
                    log.error("%s", exc)
                    problem, manifest, digest, port = str(exc), unbuilt(key), "", DEFAULT_PORT
                record = self._revisions.get(key)
                if record is None:
                    record = KubeRevision(key, manifest, digest, port)
                    self._revisions[key] = record
                    fresh.append(record)
                else:
                    record.manifest, record.digest, record.port, record.removing_since = manifest, digest, port, None
                record.problem = problem
                self._mark(record.key)
            self._services[svc.ident] = svc
        namespaces = {record.namespace for record in fresh}
        # an API that accepts connections and never answers must not hold the start (or a reload) for its
        # request timeouts: past the budget the revisions stay "unknown" and the worker looks at them
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._look_budget):
                await self._pods.watch(namespaces)
                await self._look(fresh)
        self._start_worker()

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        record = self._revisions.get(key)
        if record is None or record.removing_since is not None or record.wanted == replicas:
            return
        record.wanted = max(0, replicas)
        self._mark(key)

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        return self._pods.endpoints(key)

    def watch(self, listener: EndpointListener) -> None:
        self._pods.listen(listener)

    def adoption(self, key: RevisionKey) -> Adoption:
        """For the autoscaler: the replicas to start from (see KubeRevision.adoption); "unknown", so
        scaling waits, while the API is unreachable."""
        record = self._revisions.get(key)
        if record is None:
            return None
        if not self.api.reachable:
            return "unknown"
        return record.adoption()

    def health(self) -> str | None:
        """None while the API answers, else what is wrong (for /readyz, /admin/services, `gateway status`)."""
        return self.api.health()

    def status(self, key: RevisionKey) -> RevisionStatus:
        record = self._revisions.get(key)
        if record is None:
            return RevisionStatus(0, 0, "unknown", "no such revision")
        return record.status(len(self._pods.endpoints(key)), self.api.health())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for task in (tasks := list(self._tasks.values())):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._pods.close()
        self.api.close()

    # -- pods ------------------------------------------------------------------------------------
    def _port_of(self, key: RevisionKey) -> int:
        record = self._revisions.get(key)
        return record.port if record is not None else DEFAULT_PORT

    def _answered(self) -> None:
        self.api.succeeded()
        if self.api.recoveries != self._recoveries:
            self._retry_at = 0.0
            self._wake.set()

    def _ready_changed(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        """A revision's pods came or went: its Deployment is read back, so replicas changed by someone
        else (`kubectl scale`, another gateway) are set back to what the autoscaler wants within seconds."""
        record = self._revisions.get(key)
        if record is not None and record.found == "ours" and record.wanted is not None and record.removing_since is None:
            record.stale = True
            self._mark(key)

    # -- Deployments -------------------------------------------------------------------------------
    def _mark(self, key: RevisionKey) -> None:
        self._dirty.add(key)
        self._wake.set()

    def _remove(self, key: RevisionKey) -> None:
        record = self._revisions.get(key)
        if record is not None and record.removing_since is None:
            record.removing_since = self._clock()
            self._mark(key)

    async def _look(self, records: Sequence[KubeRevision]) -> None:
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
        found = await self._deployments.list(namespace, schedule=LOOK_SCHEDULE)
        self._listed[namespace] = (self._clock(), found)
        return found

    async def _resync(self) -> None:
        """Look at every Deployment again (after an outage, and every resync period); the worker fixes drift."""
        self._recoveries = self.api.recoveries
        by_namespace: dict[str, list[KubeRevision]] = {}
        for record in self._revisions.values():
            if record.removing_since is None:
                by_namespace.setdefault(record.namespace, []).append(record)
        for namespace, records in sorted(by_namespace.items()):
            found = await self._deployments.list(namespace)
            self._listed[namespace] = (self._clock(), found)
            for record in records:
                record.observe(found.get(record.name))
                self._report(record)
        self._dirty.update(self._revisions)

    def _report(self, record: KubeRevision) -> None:
        if record.found == "foreign" and record.key not in self._warned:
            self._warned.add(record.key)
            log.error("%s: %s", record.key, record.error)

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

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
                if self.api.recoveries != self._recoveries or self._clock() >= next_resync:
                    next_resync = self._clock() + self._resync_period
                    await self._resync()
            except KubeUnavailable as exc:
                self._outage(exc)
                continue
            self._dispatch()

    def _outage(self, exc: KubeUnavailable) -> None:
        log.warning("kubernetes API unavailable (%s); trying again", exc)
        delay = self._backoff[min(self._outages, len(self._backoff) - 1)]
        self._outages += 1
        self._retry_at = self._clock() + delay
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    def _dispatch(self) -> None:
        """Reconcile the marked revisions, PARALLEL at a time, each on its own: a failing one holds no other."""
        loop = asyncio.get_running_loop()
        for key in [key for key in self._dirty if key not in self._tasks][: max(0, PARALLEL - len(self._tasks))]:
            self._dirty.discard(key)
            task = loop.create_task(self._reconcile(key))
            self._tasks[key] = task
            task.add_done_callback(partial(self._done, key))

    def _done(self, key: RevisionKey, task: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)
        self._wake.set()
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            self._outages = 0
            self._failures.pop(key, None)
            return
        if isinstance(exc, KubeUnavailable) and not self.api.reachable:
            self._dirty.add(key)  # an outage: everything waits for the API's return
            self._outage(exc)
            return
        # this object failed (a 5xx about it, or a bug): it alone is tried again, later
        record = self._revisions.get(key)
        if record is not None and record.error != str(exc):
            log.error("%s: %s; trying again", key, exc, exc_info=not isinstance(exc, KubeUnavailable))
            record.error = str(exc)
        self._failures[key] = failures = self._failures.get(key, 0) + 1
        asyncio.get_running_loop().call_later(self._backoff[min(failures, len(self._backoff)) - 1], self._mark, key)

    async def _reconcile(self, key: RevisionKey) -> None:
        record = self._revisions.get(key)
        if record is None:
            return
        try:
            if record.removing_since is not None:
                await self._retire(record)
            else:
                await self._converge(record)
        except KubeRequestError as exc:
            if exc.status == 404 and record.found == "ours":
                record.observe(None)  # deleted behind our back: made again
                self._mark(key)
                return
            if exc.status == 409:
                record.found = "unknown"  # made meanwhile (by us on a retried create, or by someone else)
                self._mark(key)
                return
            if record.error != str(exc):
                log.error("%s: %s", key, exc)
            record.error = str(exc)

    async def _converge(self, record: KubeRevision) -> None:
        if record.problem:
            return  # the config cannot make a Deployment: nothing to send
        if record.found == "unknown" or record.stale:
            record.stale = False
            record.observe(await self._deployments.get(record.namespace, record.name))
            self._report(record)
        if record.found == "foreign":
            return
        if record.found == "absent":
            if (wait := record.creation_wait(self._clock())) > 0:
                asyncio.get_running_loop().call_later(wait, self._mark, record.key)
                return
            replicas, digest = record.wanted or 0, record.digest  # a reload during the create: patched next round
            await self._deployments.create(record.manifest, replicas)
            log.info("%s: created %s with %d replicas", record.key, record.what, replicas)
            record.found, record.replicas, record.applied = "ours", replicas, digest
        elif record.applied != (digest := record.digest):
            await self._deployments.patch_spec(record.manifest)
            log.info("%s: updated %s", record.key, record.what)
            record.applied = digest
        target = record.wanted
        if target is not None and target != record.replicas:
            await self._deployments.scale(record.namespace, record.name, target)
            log.info("%s: scaled %s from %s to %d", record.key, record.what, record.replicas, target)
            record.replicas = target
        record.error = None

    async def _retire(self, record: KubeRevision) -> None:
        """A revision that left the config: its Deployment is deleted once its requests are done."""
        assert record.removing_since is not None
        busy = self._busy(record)
        if busy and self._clock() - record.removing_since < self._drain_limit:
            asyncio.get_running_loop().call_later(self._drain_poll, self._mark, record.key)
            return
        deleted = False
        if record.found != "foreign":
            current = await self._deployments.get(record.namespace, record.name)
            if current is not None and managed_by_us(current):
                await self._deployments.delete(record.namespace, record.name)
                deleted = True
                log.info("%s: deleted %s (left the config%s)", record.key, record.what, ", drained" if not busy else "")
        if record.removing_since is None:  # back in the config meanwhile: made again
            if deleted:
                record.observe(None)
            self._mark(record.key)
            return
        del self._revisions[record.key]
        self._warned.discard(record.key)

    def _busy(self, record: KubeRevision) -> int:
        if self._in_flight is None:
            return 0
        try:
            return sum(self._in_flight(endpoint) for endpoint in self._pods.endpoints(record.key))
        except Exception:
            log.exception("in-flight count of %s", record.key)
            return 0
