"""The composition root: the gateway's parts built and wired together; start, reload, drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.admin import services_document
from gateway.autoscale.scaler import Autoscaler
from gateway.backends import BackendContext
from gateway.backends.base import InFlight
from gateway.config import load
from gateway.config.addresses import split_hostport
from gateway.config.model import Config
from gateway.dashboard.history import History
from gateway.reconcile import ApplyReport, Reconciler, Runtimes
from gateway.reloads import Reloader
from gateway.revision_backends import RevisionBackends
from gateway.rollouts.resolver import Rollouts
from gateway.rollouts.stores import RolloutStore
from gateway.router.revision import RevisionHooks
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from gateway.types import Endpoint, EndpointSet, RevisionKey

if TYPE_CHECKING:
    from gateway.shared.instance import SharedState

__all__ = ["ApplyReport", "Gateway", "default_state_dir", "settle_heap"]

log = logging.getLogger(__name__)

SHARED_CLOSE = 5.0  # seconds leaving the membership may take at a stop (Redis slow or away: the lease expires anyway)


def default_state_dir(listen: str | None = None) -> Path:
    """``$XDG_STATE_HOME/serving-gateway`` (or ``~/.local/state/...``), one folder per data-plane address,
    so two gateways on different ports run side by side with default settings."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    root = Path(base) / "serving-gateway"
    if listen is None:
        return root
    host, port = split_hostport(listen, "listen")
    return root / f"{host or '0.0.0.0'}-{port}".replace(":", "_")


def settle_heap() -> None:
    """Move what a start or reload built (long-lived by nature) out of the collector's view.

    With 10,000 services the heap holds about half a million config and runtime objects; a full
    collection scans them all while holding the GIL (0.3 s here), stalling the data plane. (What is
    frozen but unreachable stays: acyclic garbage is freed by reference counting as always, and the
    config and runtime objects have no cycles.)
    """
    gc.freeze()


class Gateway:
    """The composition root: builds the proxy, runtimes, backends, autoscaler, reconciler and reloader and
    connects them; starts, reloads and stops them."""

    serves_data_plane = True  # False: a supervisor of worker processes (gateway/workers/), which serve it

    def __init__(
        self,
        config: Config,
        paths: Sequence[str] = (),
        *,
        state_dir: str | Path | None = None,
        proxy: ProxyServer | None = None,
        in_flight: InFlight | None = None,
        planes: int = 1,
    ) -> None:
        """`proxy` and `in_flight` (requests a replica still serves): a supervisor's, which add up its workers';
        `planes`: the data planes this instance runs (its workers), each with its part of every replica."""
        self.config = config
        self.paths = list(paths)
        self.namespace = config.namespace  # `serve -n`: every reload reads the files with it
        self.state_dir = Path(state_dir or config.gateway.state_dir or default_state_dir(config.gateway.listen))
        self.proxy = proxy or ProxyServer(RouteTable({}, {}), config.gateway.proxy)
        runtimes = Runtimes()
        self.runtimes = runtimes.live
        self.revision_backends = RevisionBackends(
            BackendContext(
                self.state_dir, in_flight=in_flight or runtimes.in_flight, settings=config.gateway, planes=self.data_planes
            ),
            self.runtimes,
        )
        self.backends = self.revision_backends.by_kind
        self.autoscaler = Autoscaler(self.revision_backends, tick_interval=config.gateway.autoscaler.tick_interval)
        self.history = History(self.runtimes)  # the dashboard's (gateway/dashboard/), fed by the autoscaler's ticks
        self.autoscaler.observer = self.history
        # One hooks value for every runtime (bound methods), not closures each (10,000 services, 20,000 runtimes).
        hooks = RevisionHooks(on_endpoint_dropped=self._endpoint_dropped, backend_state=self._backend_state)
        self.reconciler = Reconciler(
            config.gateway,
            runtimes=runtimes,
            backends=self.revision_backends,
            autoscaler=self.autoscaler,
            proxy=self.proxy,
            hooks=hooks,
        )
        self._runtimes = runtimes
        self.rollouts = Rollouts(self.state_dir, kube=self._kube_rollouts, redis=self._redis_rollouts)
        self._autoscaler_task: asyncio.Task[None] | None = None
        self.reloader = Reloader(self)
        self.shared: SharedState | None = None  # several instances, one autoscaler (spec.redis)
        if config.gateway.redis:
            from gateway.shared.instance import SharedState

            self.shared = SharedState(
                config.gateway.redis,
                autoscaler=self.autoscaler,
                backends=self.revision_backends,
                set_share=self.set_planes,
                planes=planes,
            )

    def data_planes(self) -> int:
        """How many data planes divide each replica's concurrency (this instance's and every other's)."""
        return self._runtimes.share[1]

    def set_planes(self, offset: int, total: int, also: tuple[tuple[int, int], ...] = ()) -> None:
        """This instance's data planes are numbers `offset`.. of `total` (the shared state's membership);
        `also`: (offset, total) pairs still in force while the instances renumber."""
        self._runtimes.set_share(offset, total, also)

    def _kube_rollouts(self) -> RolloutStore:
        from gateway.backends.kubernetes import KubernetesBackend
        from gateway.rollouts.kube_store import KubeRolloutStore

        backend = self.revision_backends.get("kubernetes")
        assert isinstance(backend, KubernetesBackend)
        return KubeRolloutStore(backend.api)

    def _redis_rollouts(self) -> RolloutStore:
        from gateway.rollouts.redis_store import RedisRolloutStore

        assert self.config.gateway.redis
        return RedisRolloutStore(self.config.gateway.redis)

    def _endpoint_dropped(self, endpoint: Endpoint) -> None:
        self.proxy.pools.drop(endpoint)

    def _backend_state(self, key: RevisionKey) -> tuple[str, str | None]:
        status = self.revision_backends.status(key)
        return status.state, status.message

    async def apply(self, config: Config) -> ApplyReport:
        """Bring runtimes, backends, autoscaler and the route table to `config`; the table swap is atomic.

        InferenceServices are numbered first (their rollout records read and stored: gateway.rollouts)."""
        config = await self.rollouts.resolve(config)
        self.config, report = await self.reconciler.apply(config)
        return report

    async def start(self, listen: str | None = None) -> None:
        host, port = split_hostport(listen or self.config.gateway.listen, "listen")
        if self.serves_data_plane:
            self.proxy.bind(host, port)  # a busy port is reported before anything else is started
        await self.apply(self.config)
        if self.shared is not None:
            await self.shared.start()  # joined (the others shrank their shares) before a request is admitted
        settle_heap()
        if self.serves_data_plane:
            await self.proxy.start()
        self._autoscaler_task = asyncio.get_running_loop().create_task(self.autoscaler.run())

    async def reload(self) -> tuple[Config, ApplyReport]:
        """Re-read the files (in a worker thread: parsing never stalls the data plane) and apply them.

        A bad config raises ConfigError and changes nothing.
        """
        # No full collection while a reload runs: one scans every object a reload builds (0.1-0.2 s
        # with 10,000 services), holding the GIL, so stalling the data plane. Young collections
        # go on; gc.freeze every few hundred documents keeps what is built out of their way.
        thresholds = gc.get_threshold()
        gc.set_threshold(thresholds[0], thresholds[1], 1 << 30)
        try:
            config = await asyncio.to_thread(
                load, self.paths, every_documents=gc.freeze, previous=dict(self.reconciler.specs), namespace=self.namespace
            )
            report = await self.apply(config)
        finally:
            settle_heap()
            gc.set_threshold(*thresholds)
        return self.config, report

    async def stop(self, drain_timeout: float | None = None) -> None:
        timeout = self.config.gateway.proxy.drain_timeout if drain_timeout is None else drain_timeout
        await self.proxy.drain(timeout)
        if self._autoscaler_task is not None:
            self._autoscaler_task.cancel()
            await asyncio.gather(self._autoscaler_task, return_exceptions=True)
            self._autoscaler_task = None
        if self.shared is not None:
            try:
                async with asyncio.timeout(SHARED_CLOSE):
                    await self.shared.close()  # the lease given up: another instance leads at once
            except TimeoutError:
                log.warning("the shared state did not close within %g s; stopping without it", SHARED_CLOSE)
        await self.rollouts.close()
        await self.revision_backends.close()
        self._runtimes.close()

    # -- kept for callers of the assembled gateway (tests, tools) --------------------------------
    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        return self.revision_backends.ready_endpoints(key)

    def describe(self) -> dict[str, object]:
        """The /admin/services document."""
        return services_document(self)
