"""The kubernetes backend: one Deployment per revision, scaled through its `scale` subresource, routed
to its ready pods.

- `update` records what each revision's Deployment must be and looks once at what the cluster has
  (so the autoscaler adopts running replicas); one worker task then creates, patches, scales and
  deletes, a few requests at a time, never on the event loop's time: the client's calls run on
  threads (`KubeApi`), and `scale` only records the wish.
- Only Deployments labelled `app.kubernetes.io/managed-by: serving-gateway` are ever touched; a name
  taken by another Deployment is refused, said in the revision's status and the log.
- A namespace watch of our pods gives each revision's ready set (`PodIndex`); one of our Deployments
  undoes changes made outside the gateway within seconds (`kube_drift`), besides the periodic resync.
- While the API is unreachable nothing is forgotten: the last endpoints keep serving, scale wishes
  wait (the autoscaler is told to pause through `adoption`), and when it answers again every
  Deployment is looked at and brought to what is wanted.
- A reload that changes `spec.kubernetes` (`configure`) rebuilds every Deployment; the changed ones are patched.
- `close` leaves the Deployments running: the next gateway adopts them.
- With several gateways only one actuates (`set_actuating`, on by default; the elected leader). The
  others follow: they route to the pods and look at the Deployments as the leader does, record the
  autoscaler's wishes, and send no write. A gateway that starts leading reads every Deployment again,
  then creates, patches, scales and deletes as needed.
- Every Deployment carries this installation's owner label (`spec.kubernetes.owner`); after each start,
  reload and change of leadership the leader deletes those of its own whose revisions left the config
  while it was not looking (`kube_orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from gateway.backends.base import EndpointListener, InFlight, RevisionStatus
from gateway.backends.errors import BackendConfigError
from gateway.backends.kube_api import KubeApi
from gateway.backends.kube_drift import DeploymentWatch
from gateway.backends.kube_endpoints import PodEndpoints
from gateway.backends.kube_manifest import DEFAULT_PORT, desired
from gateway.backends.kube_reconcile import Reconciler
from gateway.backends.kube_slots import covering
from gateway.backends.kube_state import Adoption, KubeRevision, unbuilt
from gateway.backends.kube_watch import BACKOFF
from gateway.config.model import GatewaySettings, RevisionSpec, ServiceSpec
from gateway.types import EndpointSet, RevisionKey

log = logging.getLogger(__name__)

LOOK_BUDGET = 2.0  # a start or reload waits this long in all for the API (pods' first list and the look)
RECONFIGURE_SLICE = 250  # services rebuilt between two turns of the event loop when spec.kubernetes changes
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
        planes: Callable[[], int] = lambda: 1,
    ) -> None:
        self.api = api
        self.settings = settings or GatewaySettings()
        self._in_flight = in_flight
        self._look_budget = look_budget
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
            planes=planes,  # several data planes: the leader numbers the pods (kube_slots.py)
            may_write=lambda: self._reconciler.actuating and self._reconciler.fence(),
            on_planes=self._planes_changed,
        )
        self._planes = planes
        self._wishes: dict[RevisionKey, int] = {}  # the autoscaler's, before `covering` (kube_slots.py)
        self._pods.listen(self._ready_changed)
        self._reconciler = Reconciler(
            api,
            self._revisions,
            busy=self._busy,
            backoff=backoff,
            drain_poll=drain_poll,
            drain_limit=self.settings.activator.request_timeout if drain_limit is None else drain_limit,
            resync_period=resync_period,
            clock=clock,
        )
        self._reconciler.owner = self.settings.kubernetes.owner
        self._deployments = DeploymentWatch(
            api,
            self._reconciler,
            answered=self._answered,
            watch_timeout=watch_timeout,
            min_interval=watch_min_interval,
            backoff=backoff,
        )

    # -- Backend ---------------------------------------------------------------------------------
    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        wanted = {svc.ident for svc in services}
        changed = [svc for svc in services if self._services.get(svc.ident) is not svc]
        removed = [svc for ident, svc in self._services.items() if ident not in wanted]
        await self.update(changed, removed)

    async def update(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> None:
        for svc in removed:
            for rev in svc.revisions():
                self._reconciler.remove(svc.key(rev.name))
            self._services.pop(svc.ident, None)
        fresh: list[KubeRevision] = []
        for svc in changed:
            old = self._services.get(svc.ident)
            if old is not None:  # revisions it no longer has: a canary taken out, a promoted InferenceService's previous one
                keep = {rev.name for rev in svc.revisions()}
                for rev in old.revisions():
                    if rev.name not in keep:
                        self._reconciler.remove(old.key(rev.name))
            for rev in svc.revisions():
                if (record := self._build(svc, rev)) is not None:
                    fresh.append(record)
            self._services[svc.ident] = svc
        namespaces = {record.namespace for record in fresh}
        self._deployments.watch(namespaces)
        # an API that accepts connections and never answers must not hold the start (or a reload) for its
        # request timeouts: past the budget the revisions stay "unknown" and the worker looks at them
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._look_budget):
                await self._pods.watch(namespaces)
                await self._reconciler.look(fresh)
        self._reconciler.start()

    def _build(self, svc: ServiceSpec, rev: RevisionSpec, *, changed_only: bool = False) -> KubeRevision | None:
        """The revision's Deployment as the settings build it, recorded and marked; the record when it is new.
        `changed_only`: a revision whose Deployment comes out the same is left as it is."""
        key = svc.key(rev.name)
        problem = None
        try:
            manifest, digest, port = desired(svc, rev, self.settings)
        except BackendConfigError as exc:
            log.error("%s", exc)
            problem, manifest, digest, port = str(exc), unbuilt(key), "", DEFAULT_PORT
        record = self._revisions.get(key)
        if record is not None and changed_only and (record.digest, record.problem) == (digest, problem):
            return None
        fresh = record is None
        if record is None:
            record = self._revisions[key] = KubeRevision(key, manifest, digest, port)
        else:
            record.manifest, record.digest, record.port, record.removing_since = manifest, digest, port, None
        record.problem = problem
        self._reconciler.mark(record.key)
        return record if fresh else None

    async def configure(self, settings: GatewaySettings) -> None:
        """The settings of a reload (and of the start): a change of `spec.kubernetes` rebuilds every revision's
        Deployment, and those that come out different are patched. O(revisions), a slice at a time.
        Until `applied`, no orphan is deleted: the reload's services are not all in yet."""
        self._reconciler.configured = False
        old, self.settings = self.settings.kubernetes, settings
        if settings.kubernetes == old:
            return
        log.info("kubernetes backend: spec.kubernetes changed; bringing every Deployment to it")
        self._reconciler.owner = settings.kubernetes.owner
        self.api.set_timeout((settings.kubernetes.connect_timeout, settings.kubernetes.request_timeout))
        for i, svc in enumerate(list(self._services.values())):
            if i and i % RECONFIGURE_SLICE == 0:
                await asyncio.sleep(0)  # 10,000 services: the loop serves in between
            for rev in svc.revisions():
                record = self._revisions.get(svc.key(rev.name))
                if record is not None and record.removing_since is None:
                    self._build(svc, rev, changed_only=True)

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        record = self._revisions.get(key)
        if record is None or record.removing_since is not None:
            return
        self._wishes[key] = replicas
        svc = self._services.get((key.namespace, key.service))
        replicas = covering(replicas, svc.scaling if svc is not None else None, self._planes())
        if record.wanted == replicas:
            return
        record.wanted = max(0, replicas)
        if self._reconciler.actuating:
            self._reconciler.mark(key)  # a follower keeps the wish for when it leads

    def applied(self) -> None:
        """A whole configuration is applied (a start or reload): the leader deletes this installation's
        Deployments of revisions it no longer has (`kube_orphans`)."""
        self._reconciler.config_applied()

    @property
    def actuating(self) -> bool:
        """Whether this gateway writes to the API (creates, patches, scales, deletes Deployments)."""
        return self._reconciler.actuating

    def set_fence(self, fence: Callable[[], bool]) -> None:
        """With several gateways: asked right before every write whether the lease is still valid."""
        self._reconciler.fence = fence

    def set_actuating(self, on: bool) -> None:
        """Lead (`on`: every Deployment is read again, then brought to what is wanted) or follow (from now
        on no write is sent: the reconciles in hand are cancelled; watching and looking go on)."""
        if on != self._reconciler.actuating:
            log.info("kubernetes backend: %s", "actuating (leading)" if on else "following: no writes to the API")
        self._reconciler.set_actuating(on)

    def observed_replicas(self, key: RevisionKey) -> int | None:
        """The `spec.replicas` of the revision's Deployment as last seen (or set, when leading); None while
        it is absent or not seen yet. A new leader's autoscaler starts from it."""
        record = self._revisions.get(key)
        return record.replicas if record is not None and record.found == "ours" else None

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
        status = record.status(len(self._pods.endpoints(key)), self.api.health(), actuating=self._reconciler.actuating)
        note = self._pods.unnumbered(key)  # several data planes: ready pods the leader has not numbered yet
        return status if note is None or status.message else dataclasses.replace(status, message=note)

    async def close(self) -> None:
        await self._reconciler.close()
        await asyncio.gather(self._deployments.close(), self._pods.close())
        self.api.close()

    # -- pods ------------------------------------------------------------------------------------
    async def _planes_changed(self) -> None:
        for key, wish in list(self._wishes.items()):
            if key in self._revisions:
                await self.scale(key, wish)  # at least ceil(planes / cc) pods while any is wanted
            else:
                del self._wishes[key]

    def _port_of(self, key: RevisionKey) -> int:
        record = self._revisions.get(key)
        return record.port if record is not None else DEFAULT_PORT

    def _answered(self) -> None:
        self.api.succeeded()
        self._reconciler.answered()

    def _ready_changed(self, key: RevisionKey, endpoints: EndpointSet) -> None:
        """A revision's pods came or went: its Deployment is read back, so replicas changed by someone
        else (`kubectl scale`, another gateway) are set back to what the autoscaler wants within seconds.
        A follower reads it back whatever the wish: the leader's scaling is what it shows and takes over."""
        record = self._revisions.get(key)
        if record is None:
            return
        if not self._reconciler.actuating:
            if record.found != "foreign":
                record.stale = True
                self._reconciler.mark(key)  # a removed one: looked at again, forgotten once the leader deleted it
        elif record.found == "ours" and record.wanted is not None and record.removing_since is None:
            record.stale = True
            self._reconciler.mark(key)

    def _busy(self, record: KubeRevision) -> int:
        if self._in_flight is None:
            return 0
        try:
            return sum(self._in_flight(endpoint) for endpoint in self._pods.endpoints(record.key))
        except Exception:
            log.exception("in-flight count of %s", record.key)
            return 0
