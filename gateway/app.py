"""The whole gateway in one object: config → runtimes, route table, backends, listeners, reload, drain."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.settings import RevisionScaling
from gateway.backends import create_backend
from gateway.backends.base import Backend, RevisionStatus
from gateway.config import load
from gateway.config.model import BackendKind, Config, ServiceSpec
from gateway.metrics import RevisionView
from gateway.router.revision import RevisionRuntime
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from gateway.types import Endpoint, EndpointSet, RevisionKey

log = logging.getLogger(__name__)


def split_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "serving-gateway"


class Gateway:
    def __init__(self, config: Config, paths: Sequence[str] = (), *, state_dir: str | Path | None = None) -> None:
        self.config = config
        self.paths = list(paths)
        self.state_dir = Path(state_dir or config.gateway.state_dir or default_state_dir())
        self.runtimes: dict[RevisionKey, RevisionRuntime] = {}
        self.backends: dict[BackendKind, Backend] = {}
        self.revision_backend: dict[RevisionKey, BackendKind] = {}
        self.services: dict[RevisionKey, ServiceSpec] = {}
        self.proxy = ProxyServer(RouteTable({}, []), config.gateway.proxy)
        self.autoscaler = Autoscaler(self, tick_interval=config.gateway.autoscaler.tick_interval)
        self._autoscaler_task: asyncio.Task[None] | None = None
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

    async def apply(self, config: Config) -> None:
        """Bring runtimes, backends and the route table to `config`; the table swap is atomic."""
        settings = config.gateway
        wanted: dict[RevisionKey, tuple[ServiceSpec, BackendKind]] = {}
        for spec in config.services:
            kind = spec.backend or settings.backend
            for rev in spec.revisions():
                wanted[spec.key(rev.name)] = (spec, kind)
        for key, (spec, kind) in wanted.items():
            rt = self.runtimes.get(key)
            timeout = spec.timeout or settings.activator.request_timeout
            cc = spec.scaling.container_concurrency
            if rt is None:
                rt = RevisionRuntime(
                    key,
                    container_concurrency=cc,
                    queue_depth=settings.activator.queue_depth,
                    scalable=kind != "static",
                    request_timeout=timeout,
                    activation_timeout=settings.activator.activation_timeout,
                )
                rt.on_endpoint_dropped = self._dropped
                rt.backend_state = self._state_reader(key)
                self.runtimes[key] = rt
            else:
                rt.throttler.set_concurrency(cc)
                rt.throttler.queue_depth = settings.activator.queue_depth
                rt.scalable = kind != "static"
                rt.request_timeout = timeout
                rt.activation_timeout = settings.activator.activation_timeout
            self.services[key] = spec
            old_kind = self.revision_backend.get(key)
            if old_kind is not None and old_kind != kind:
                await self.backends[old_kind].scale(key, 0)
            self.revision_backend[key] = kind
        by_kind: dict[BackendKind, list[ServiceSpec]] = {}
        for spec, kind in wanted.values():
            if spec not in by_kind.setdefault(kind, []):
                by_kind[kind].append(spec)
        for kind in set(by_kind) | set(self.backends):
            backend = self._backend_for(kind) if kind in by_kind else self.backends[kind]
            await backend.sync(by_kind.get(kind, []))
        for key in wanted:
            self.runtimes[key].set_endpoints(self.backends[wanted[key][1]].ready_endpoints(key))
        self.proxy.swap_routes(RouteTable.build(config, self.runtimes))
        for key in [k for k in self.runtimes if k not in wanted]:
            gone = self.runtimes.pop(key)
            gone.close()
            self._retired.append(gone)
            self.services.pop(key, None)
            self.revision_backend.pop(key, None)
        if config.gateway.proxy != self.config.gateway.proxy:
            self.proxy.configure(config.gateway.proxy)
        for what, old, new in (
            ("listen", self.config.gateway.listen, config.gateway.listen),
            ("adminListen", self.config.gateway.admin_listen, config.gateway.admin_listen),
            ("stateDir", self.config.gateway.state_dir, config.gateway.state_dir),
        ):
            if old != new:
                log.warning("spec.%s changed from %s to %s: takes effect on the next start, not on reload", what, old, new)
        self.config = config
        await self._configure_scaling(config)

    async def _configure_scaling(self, config: Config) -> None:
        """Every revision a backend can scale gets a KPA scaler; the data plane feeds its stats."""
        defaults = config.gateway.autoscaler
        scalable = {
            key: RevisionScaling.resolve(defaults, spec.scaling)
            for key, spec in self.services.items()
            if self.revision_backend[key] != "static"
        }
        self.autoscaler.update(scalable)
        for key, rt in self.runtimes.items():
            if key in scalable:
                rt.stats = self.autoscaler.stats(key)
                rt.poke = self._poker(key)
            else:
                rt.stats = None
                rt.poke = None

    def _state_reader(self, key: RevisionKey) -> Callable[[], tuple[str, str | None]]:
        def read() -> tuple[str, str | None]:
            st = self.status(key)
            return st.state, st.message

        return read

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
        await self.apply(self.config)
        host, port = split_hostport(listen or self.config.gateway.listen, "listen")
        await self.proxy.start(host, port)
        self._autoscaler_task = asyncio.get_running_loop().create_task(self.autoscaler.run())

    async def reload(self) -> Config:
        """Re-read the files; a bad config raises ConfigError and changes nothing."""
        config = load(self.paths)
        await self.apply(config)
        log.info("configuration reloaded: %d services", len(config.services))
        return config

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
