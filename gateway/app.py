"""The whole gateway in one object: config → runtimes, route table, backends, listeners, reload, drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.settings import RevisionScaling
from gateway.backends import create_backend
from gateway.backends.base import Backend, RevisionStatus
from gateway.config import load
from gateway.config.addresses import split_hostport
from gateway.config.model import BackendKind, Config, GatewaySettings, ServiceSpec
from gateway.metrics import RevisionView
from gateway.reloads import Reloader
from gateway.router.revision import RevisionRuntime
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from gateway.types import Endpoint, EndpointSet, RevisionKey

log = logging.getLogger(__name__)

YIELD_EVERY = 250  # services applied between two turns of the event loop during a large reload


def default_state_dir(listen: str | None = None) -> Path:
    """``$XDG_STATE_HOME/serving-gateway`` (or ``~/.local/state/...``), one folder per data-plane address,
    so two gateways on different ports run side by side with default settings."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    root = Path(base) / "serving-gateway"
    if listen is None:
        return root
    host, port = split_hostport(listen, "listen")
    return root / f"{host or '0.0.0.0'}-{port}".replace(":", "_")


@dataclass
class ApplyReport:
    """What a configuration change did, for the log and the reload's answer."""

    added: int
    changed: int
    removed: int
    total: int
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.total} services: {self.added} added, {self.changed} changed, {self.removed} removed"


def settle_heap() -> None:
    """Move what a start or reload built (long-lived by nature) out of the collector's view.

    With 10,000 services the heap holds about half a million config and runtime objects; a full
    collection scans them all while holding the GIL (0.3 s here), stalling the data plane. (What is
    frozen but unreachable stays: acyclic garbage is freed by reference counting as always, and the
    config and runtime objects have no cycles.)
    """
    gc.freeze()


class Gateway:
    def __init__(self, config: Config, paths: Sequence[str] = (), *, state_dir: str | Path | None = None) -> None:
        self.config = config
        self.paths = list(paths)
        self.state_dir = Path(state_dir or config.gateway.state_dir or default_state_dir(config.gateway.listen))
        self.runtimes: dict[RevisionKey, RevisionRuntime] = {}
        self.backends: dict[BackendKind, Backend] = {}
        self.revision_backend: dict[RevisionKey, BackendKind] = {}
        self.services: dict[RevisionKey, ServiceSpec] = {}
        self.proxy = ProxyServer(RouteTable({}, {}), config.gateway.proxy)
        self._specs: dict[tuple[str, str], ServiceSpec] = {}  # as applied, by (namespace, name)
        # One bound method for every runtime, not one closure each (10,000 services, 20,000 runtimes).
        self._state_of = self._backend_state
        self._on_dropped = self._dropped
        self._applied = False
        self.autoscaler = Autoscaler(self, tick_interval=config.gateway.autoscaler.tick_interval)
        self._autoscaler_task: asyncio.Task[None] | None = None
        self.reloader = Reloader(self)
        self._retired: list[RevisionRuntime] = []

    # -- building -------------------------------------------------------------------------------
    def _backend_for(self, kind: BackendKind) -> Backend:
        backend = self.backends.get(kind)
        if backend is None:
            options = {"in_flight": self._in_flight} if kind == "local" else {}
            backend = create_backend(kind, state_dir=str(self.state_dir), **options)
            backend.watch(lambda key, endpoints: self._endpoints_changed(kind, key, endpoints))
            self.backends[kind] = backend
        return backend

    def _in_flight(self, endpoint: Endpoint) -> int:
        """For the local backend's drain (control plane, so a scan over revisions is fine).

        Revisions removed by a reload still count until their last request has finished.
        """
        self._retired = [rt for rt in self._retired if rt.busy()]
        runtimes = [*self.runtimes.values(), *self._retired]
        return sum(rt.throttler.in_flight(endpoint) for rt in runtimes)

    def _endpoints_changed(self, kind: BackendKind, key: RevisionKey, endpoints: EndpointSet) -> None:
        rt = self.runtimes.get(key)
        # A revision that moved to another backend still hears from the old one while it drains.
        if rt is not None and self.revision_backend.get(key) == kind:
            rt.set_endpoints(endpoints)

    def _dropped(self, endpoint: Endpoint) -> None:
        self.proxy.pools.drop(endpoint)

    async def apply(self, config: Config) -> ApplyReport:
        """Bring runtimes, backends and the route table to `config`; the table swap is atomic.

        Work is O(changed services): a service whose digest is unchanged keeps its very spec
        object, runtime, route and backend state, and is not looked at again. A change of the
        gateway-wide settings that services depend on (domain, backend, autoscaler, activator)
        re-applies every service.
        """
        settings = config.gateway
        old = self.config.gateway
        full = not self._applied or (settings.domain, settings.backend, settings.autoscaler, settings.activator) != (
            old.domain,
            old.backend,
            old.autoscaler,
            old.activator,
        )
        previous = self._specs
        specs: dict[tuple[str, str], ServiceSpec] = {}
        changed: list[ServiceSpec] = []
        for i, spec in enumerate(config.services):
            if i and i % (YIELD_EVERY * 4) == 0:
                await asyncio.sleep(0)
            was = previous.get(spec.ident)
            if was is not None and not full and was.digest == spec.digest and was.digest:
                spec = was  # unchanged: the same object, so every later comparison is by identity
            else:
                changed.append(spec)
            specs[spec.ident] = spec
        removed = [spec for ident, spec in previous.items() if ident not in specs]
        if len(changed) < len(config.services):
            config = replace(config, services=tuple(specs.values()))
        report = ApplyReport(
            added=sum(1 for spec in changed if spec.ident not in previous),
            changed=sum(1 for spec in changed if spec.ident in previous),
            removed=len(removed),
            total=len(specs),
        )
        gone_keys = [spec.key(rev.name) for spec in removed for rev in spec.revisions()]
        for spec in changed:
            was = previous.get(spec.ident)
            if was is not None and was.canary is not None and spec.canary is None:
                gone_keys.append(was.key("canary"))
        await self._apply_services(settings, changed, removed)
        # Built a chunk at a time (the loop serves in between), swapped whole.
        routes = RouteTable({}, {}, settings.domain.lower()) if full else self.proxy.routes.updated([], removed, self.runtimes)
        for start in range(0, len(changed), YIELD_EVERY):
            routes = routes.updated(changed[start : start + YIELD_EVERY], [], self.runtimes)
            await asyncio.sleep(0)
        self.proxy.swap_routes(routes)
        for key in gone_keys:
            gone = self.runtimes.pop(key, None)
            if gone is not None:
                gone.close()
                self._retired.append(gone)
            self.services.pop(key, None)
            self.revision_backend.pop(key, None)
            self.autoscaler.remove(key)
        if settings.proxy != old.proxy:
            self.proxy.configure(settings.proxy)
        report.warnings.extend(self._restart_only_changes(old, settings))
        self.config = config
        self._specs = specs
        self._applied = True
        await self._configure_scaling(settings, changed)
        return report

    async def _apply_services(self, settings: GatewaySettings, changed: list[ServiceSpec], removed: list[ServiceSpec]) -> None:
        """Runtimes and backends of the changed services; the removed ones leave their backends."""
        changed_by_kind: dict[BackendKind, list[ServiceSpec]] = {}
        removed_by_kind: dict[BackendKind, list[ServiceSpec]] = {}
        for spec in removed:
            kind = self.revision_backend.get(spec.key("default"))
            if kind is not None:
                removed_by_kind.setdefault(kind, []).append(spec)
        for i, spec in enumerate(changed):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a reload that changes 10,000 services lets requests through
            kind = spec.backend or settings.backend
            old_kind = self.revision_backend.get(spec.key("default"))
            if old_kind is not None and old_kind != kind:
                removed_by_kind.setdefault(old_kind, []).append(self._specs[spec.ident])
            changed_by_kind.setdefault(kind, []).append(spec)
            timeout = spec.timeout or settings.activator.request_timeout
            cc = spec.scaling.container_concurrency
            for rev in spec.revisions():
                key = spec.key(rev.name)
                rt = self.runtimes.get(key)
                if rt is None:
                    rt = RevisionRuntime(
                        key,
                        container_concurrency=cc,
                        queue_depth=settings.activator.queue_depth,
                        scalable=kind != "static",
                        request_timeout=timeout,
                        activation_timeout=settings.activator.activation_timeout,
                    )
                    rt.on_endpoint_dropped = self._on_dropped
                    rt.backend_state = self._state_of
                    self.runtimes[key] = rt
                else:
                    rt.throttler.set_concurrency(cc)
                    rt.throttler.queue_depth = settings.activator.queue_depth
                    rt.scalable = kind != "static"
                    rt.request_timeout = timeout
                    rt.activation_timeout = settings.activator.activation_timeout
                self.services[key] = spec
                self.revision_backend[key] = kind
        for kind in set(changed_by_kind) | set(removed_by_kind):
            backend = self._backend_for(kind) if kind in changed_by_kind else self.backends[kind]
            if removed_by_kind.get(kind):
                await backend.update([], removed_by_kind[kind])
            specs = changed_by_kind.get(kind, [])
            for start in range(0, len(specs), YIELD_EVERY):
                await backend.update(specs[start : start + YIELD_EVERY], [])
                await asyncio.sleep(0)
        for kind, specs in changed_by_kind.items():
            backend = self.backends[kind]
            for i, spec in enumerate(specs):
                if i and i % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                for rev in spec.revisions():
                    key = spec.key(rev.name)
                    self.runtimes[key].set_endpoints(backend.ready_endpoints(key))

    def _restart_only_changes(self, old: GatewaySettings, new: GatewaySettings) -> list[str]:
        warnings = []
        for what, before, after in (
            ("listen", old.listen, new.listen),
            ("adminListen", old.admin_listen, new.admin_listen),
            ("stateDir", old.state_dir, new.state_dir),
        ):
            if self._applied and before != after:
                warnings.append(f"spec.{what} changed from {before} to {after}: takes effect on the next start, not on reload")
        return warnings

    async def _configure_scaling(self, settings: GatewaySettings, changed: list[ServiceSpec]) -> None:
        """Every revision a backend can scale gets a KPA scaler; the data plane feeds its stats. O(changed)."""
        defaults = settings.autoscaler
        for i, spec in enumerate(changed):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            for rev in spec.revisions():
                key = spec.key(rev.name)
                rt = self.runtimes[key]
                if self.revision_backend[key] != "static":
                    self.autoscaler.set(key, RevisionScaling.resolve(defaults, spec.scaling))
                    rt.stats = self.autoscaler.stats(key)
                    rt.poke = self._poker(key)
                else:
                    self.autoscaler.remove(key)
                    rt.stats = None
                    rt.poke = None

    def _backend_state(self, key: RevisionKey) -> tuple[str, str | None]:
        st = self.status(key)
        return st.state, st.message

    def _poker(self, key: RevisionKey) -> Callable[[], None]:
        autoscaler = self.autoscaler
        return lambda: autoscaler.poke(key)

    # -- the autoscaler's view of the backends (ScalingBackend) ----------------------------------
    async def scale(self, key: RevisionKey, replicas: int) -> None:
        kind = self.revision_backend.get(key)
        if kind is not None:
            await self.backends[kind].scale(key, replicas)

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        kind = self.revision_backend.get(key)
        if kind is None or kind not in self.backends:
            return frozenset()
        return self.backends[kind].ready_endpoints(key)

    # -- running --------------------------------------------------------------------------------
    async def start(self, listen: str | None = None) -> None:
        host, port = split_hostport(listen or self.config.gateway.listen, "listen")
        self.proxy.bind(host, port)  # a busy port is reported before anything else is started
        await self.apply(self.config)
        settle_heap()
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
            config = await asyncio.to_thread(load, self.paths, every_documents=gc.freeze, previous=dict(self._specs))
            report = await self.apply(config)
        finally:
            settle_heap()
            gc.set_threshold(*thresholds)
        return config, report

    async def stop(self, drain_timeout: float | None = None) -> None:
        timeout = self.config.gateway.proxy.drain_timeout if drain_timeout is None else drain_timeout
        await self.proxy.drain(timeout)
        if self._autoscaler_task is not None:
            self._autoscaler_task.cancel()
            await asyncio.gather(self._autoscaler_task, return_exceptions=True)
            self._autoscaler_task = None
        for backend in self.backends.values():
            await backend.close()
        for rt in self.runtimes.values():
            rt.close()

    # -- views ----------------------------------------------------------------------------------
    def status(self, key: RevisionKey) -> RevisionStatus:
        kind = self.revision_backend.get(key)
        if kind is None or kind not in self.backends:
            return RevisionStatus(desired=0, ready=0)
        return self.backends[kind].status(key)

    def scaling(self, key: RevisionKey) -> tuple[int, float | None, float | None, bool]:
        """(desired, stable, panic, panicking): from the autoscaler, or the backend for static."""
        if key in self.autoscaler:
            st = self.autoscaler.status(key)
            return st.desired, st.stable, st.panic, st.panicking
        return self.status(key).desired, None, None, False

    def views(self) -> list[RevisionView]:
        out = []
        for key, rt in self.runtimes.items():
            desired, stable, panic, panicking = self.scaling(key)
            out.append(RevisionView(rt, rt.throttler.ready, desired, stable, panic, panicking))
        return out

    def describe(self) -> dict[str, object]:
        """The /admin/services document."""
        domain = self.config.gateway.domain
        services = []
        for spec in self.config.services:
            base = f"{spec.name}.{spec.namespace}.{domain}"
            revisions = []
            for rev in spec.revisions():
                key = spec.key(rev.name)
                rt = self.runtimes[key]
                st = self.status(key)
                desired, stable, panic, panicking = self.scaling(key)
                percent = spec.canary_percent if rev.name == "canary" else (100 - spec.canary_percent if spec.canary else 100)
                revisions.append(
                    {
                        "name": key.name,
                        "tag": rev.name,
                        "host": f"{rev.name}-{base}",
                        "percent": percent,
                        "backend": self.revision_backend.get(key),
                        "endpoints": sorted(e.url for e in rt.throttler.trackers),
                        "ready": rt.throttler.ready,
                        "desired": desired,
                        "state": st.state,
                        "message": st.message,
                        "in_flight": sum(t.in_flight for t in rt.throttler.trackers.values()),
                        "queued": rt.throttler.queued,
                        "stable": stable,
                        "panic": panic,
                        "panicking": panicking,
                    }
                )
            services.append({"name": spec.name, "namespace": spec.namespace, "host": base, "revisions": revisions})
        return {"domain": domain, "services": services}
