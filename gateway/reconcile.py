"""Reconciling: bring runtimes, backends, autoscaler and route table to a configuration.

Work is O(changed services): a service whose digest is unchanged keeps its very spec object,
runtime, route and backend state, and is not looked at again. A change of the gateway-wide settings
that services depend on (domain, backend, autoscaler, activator) re-applies every service. Large
changes are applied in slices of YIELD_EVERY services with turns of the event loop between, and
the route table is built a slice at a time and swapped whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.settings import RevisionScaling
from gateway.backends.base import FollowsConfig
from gateway.config.model import BackendKind, Config, GatewaySettings, ServiceSpec
from gateway.revision_backends import RevisionBackends
from gateway.router.revision import RevisionHooks, RevisionRuntime, RevisionSettings
from gateway.router.routes import RouteTable
from gateway.router.server import ProxyServer
from gateway.types import Endpoint, RevisionKey

YIELD_EVERY = 250  # services applied between two turns of the event loop during a large reload

Ident = tuple[str, str]  # (namespace, name) of a service


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


class Runtimes:
    """The revisions' runtimes: the live ones by key, and those a reload removed until their last request is done."""

    def __init__(self) -> None:
        self.live: dict[RevisionKey, RevisionRuntime] = {}
        self._retired: list[RevisionRuntime] = []
        self.share = (0, 1)  # (this data plane's index, all data planes): its part of each replica's concurrency
        self.also: tuple[tuple[int, int], ...] = ()  # shares still in force while the planes renumber

    def set_share(self, index: int, count: int, also: tuple[tuple[int, int], ...] = ()) -> None:
        """Another instance joined or left: every revision's per-replica part changes (control plane, O(revisions))."""
        self.share, self.also = (index, count), also
        for runtime in self.live.values():
            runtime.set_share(index, count, also)

    def retire(self, key: RevisionKey) -> None:
        runtime = self.live.pop(key, None)
        if runtime is not None:
            runtime.close()
            # Requests still queued for it were never sent: they go to their service's current route (the new
            # route table is in place by now), or fail at once if the service is gone. Those sent drain.
            runtime.throttler.evict_waiters()
            self._retired.append(runtime)

    def in_flight(self, endpoint: Endpoint) -> int:
        """Requests a replica still serves, for the local backend's drain (control plane: a scan is fine)."""
        self._retired = [runtime for runtime in self._retired if runtime.busy()]
        return sum(runtime.throttler.in_flight(endpoint) for runtime in (*self.live.values(), *self._retired))

    def close(self) -> None:
        for runtime in self.live.values():
            runtime.close()


def _service_wide(settings: GatewaySettings) -> tuple[object, ...]:
    """The gateway-wide settings every service's runtime, backend and scaler depend on."""
    return (settings.domain, settings.backend, settings.autoscaler, settings.activator)


def restart_only_changes(old: GatewaySettings, new: GatewaySettings) -> list[str]:
    warnings = []
    for what, before, after in (
        ("redis", old.redis, new.redis),
        ("listen", old.listen, new.listen),
        ("adminListen", old.admin_listen, new.admin_listen),
        ("stateDir", old.state_dir, new.state_dir),
    ):
        if before != after:
            was, now = (value if value is not None else "(not set)" for value in (before, after))
            warnings.append(f"spec.{what} changed from {was} to {now}: takes effect on the next start, not on reload")
    return warnings


class Reconciler:
    """Applies configurations, one after another, to the runtimes, backends, autoscaler and proxy."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        runtimes: Runtimes,
        backends: RevisionBackends,
        autoscaler: Autoscaler,
        proxy: ProxyServer,
        hooks: RevisionHooks,
    ) -> None:
        self.settings = settings  # as last applied (before the first apply: the ones the proxy was built with)
        self.specs: dict[Ident, ServiceSpec] = {}  # as applied
        self._started_with = settings
        self._applied = False
        self._runtimes = runtimes
        self._backends = backends
        self._autoscaler = autoscaler
        self._proxy = proxy
        self._hooks = hooks  # shared by every runtime; scaled revisions add their stats and poke

    async def apply(self, config: Config) -> tuple[Config, ApplyReport]:
        """Bring everything to `config`; returns it with unchanged services' spec objects kept, and what changed."""
        settings = config.gateway
        old = self.settings
        full = not self._applied or _service_wide(settings) != _service_wide(old)
        specs, changed = await self._sort_out(config.services, full)
        previous = self.specs
        removed = [spec for ident, spec in previous.items() if ident not in specs]
        if len(changed) < len(config.services):
            config = replace(config, services=tuple(specs.values()))
        report = ApplyReport(
            added=sum(1 for spec in changed if spec.ident not in previous),
            changed=sum(1 for spec in changed if spec.ident in previous),
            removed=len(removed),
            total=len(specs),
        )
        gone = self._gone_revisions(changed, removed)
        await self._backends_follow(settings)  # before the services: what they build is built under these settings
        await self._apply_services(settings, changed, removed)
        await self._backends_follow(settings, applied=True)  # a backend built meanwhile, too
        await self._swap_routes(settings, full, changed, removed)
        for key in gone:
            self._runtimes.retire(key)
            self._backends.of_revision.pop(key, None)
            self._autoscaler.remove(key)
        if settings.proxy != old.proxy:
            self._proxy.configure(settings.proxy)
        if self._applied:
            report.warnings.extend(restart_only_changes(self._started_with, settings))
        else:
            self._started_with = settings  # what a restart-only setting is until the next start
        self.settings = settings
        self.specs = specs
        self._applied = True
        await self._configure_scaling(settings, changed)
        return config, report

    async def _backends_follow(self, settings: GatewaySettings, *, applied: bool = False) -> None:
        for backend in list(self._backends.by_kind.values()):
            if isinstance(backend, FollowsConfig):
                await backend.configure(settings)
                if applied:
                    backend.applied()  # every service is in: a backend may now act on what is NOT in the config

    async def _sort_out(self, services: Sequence[ServiceSpec], full: bool) -> tuple[dict[Ident, ServiceSpec], list[ServiceSpec]]:
        """(every service by ident, the changed ones); an unchanged service keeps the spec object applied before."""
        previous = self.specs
        specs: dict[Ident, ServiceSpec] = {}
        changed: list[ServiceSpec] = []
        for i, spec in enumerate(services):
            if i and i % (YIELD_EVERY * 4) == 0:
                await asyncio.sleep(0)
            was = previous.get(spec.ident)
            if was is not None and not full and was.digest == spec.digest and was.digest:
                spec = was  # unchanged: the same object, so every later comparison is by identity
            else:
                changed.append(spec)
            specs[spec.ident] = spec
        return specs, changed

    def _gone_revisions(self, changed: list[ServiceSpec], removed: list[ServiceSpec]) -> list[RevisionKey]:
        """Revisions of removed services, and revisions changed services no longer have (a canary taken out,
        an InferenceService's previous revision once the latest is promoted)."""
        gone = [spec.key(rev.name) for spec in removed for rev in spec.revisions()]
        for spec in changed:
            was = self.specs.get(spec.ident)
            if was is not None:
                keep = {rev.name for rev in spec.revisions()}
                gone.extend(was.key(rev.name) for rev in was.revisions() if rev.name not in keep)
        return gone

    async def _apply_services(self, settings: GatewaySettings, changed: list[ServiceSpec], removed: list[ServiceSpec]) -> None:
        """Runtimes and backends of the changed services; the removed ones leave their backends."""
        changed_by_kind: dict[BackendKind, list[ServiceSpec]] = {}
        removed_by_kind: dict[BackendKind, list[ServiceSpec]] = {}
        for spec in removed:
            kind = self._backends.of_revision.get(spec.key(spec.default.name))
            if kind is not None:
                removed_by_kind.setdefault(kind, []).append(spec)
        for i, spec in enumerate(changed):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a reload that changes 10,000 services lets requests through
            kind = spec.backend or settings.backend
            was = self.specs.get(spec.ident)
            old_kind = self._backends.of_revision.get(was.key(was.default.name)) if was is not None else None
            if was is not None and old_kind is not None and old_kind != kind:
                removed_by_kind.setdefault(old_kind, []).append(was)
            changed_by_kind.setdefault(kind, []).append(spec)
            self._configure_runtimes(settings, spec, kind)
        await self._update_backends(changed_by_kind, removed_by_kind)
        await self._publish_endpoints(changed_by_kind)

    def _configure_runtimes(self, settings: GatewaySettings, spec: ServiceSpec, kind: BackendKind) -> None:
        revision_settings = RevisionSettings(
            container_concurrency=spec.scaling.container_concurrency,
            queue_depth=settings.activator.queue_depth,
            scalable=kind != "static",
            request_timeout=spec.timeout or settings.activator.request_timeout,
            activation_timeout=settings.activator.activation_timeout,
        )
        live = self._runtimes.live
        for rev in spec.revisions():
            key = spec.key(rev.name)
            runtime = live.get(key)
            if runtime is None:
                live[key] = runtime = RevisionRuntime(key, revision_settings, self._hooks)
                if self._runtimes.share != (0, 1) or self._runtimes.also:
                    runtime.set_share(*self._runtimes.share, self._runtimes.also)
            else:
                runtime.configure(revision_settings, runtime.hooks)
            self._backends.of_revision[key] = kind

    async def _update_backends(
        self, changed_by_kind: dict[BackendKind, list[ServiceSpec]], removed_by_kind: dict[BackendKind, list[ServiceSpec]]
    ) -> None:
        for kind in set(changed_by_kind) | set(removed_by_kind):
            backend = self._backends.get(kind) if kind in changed_by_kind else self._backends.by_kind[kind]
            if removed_by_kind.get(kind):
                await backend.update([], removed_by_kind[kind])
            specs = changed_by_kind.get(kind, [])
            for start in range(0, len(specs), YIELD_EVERY):
                await backend.update(specs[start : start + YIELD_EVERY], [])
                await asyncio.sleep(0)

    async def _publish_endpoints(self, changed_by_kind: dict[BackendKind, list[ServiceSpec]]) -> None:
        live = self._runtimes.live
        for kind, specs in changed_by_kind.items():
            backend = self._backends.by_kind[kind]
            for i, spec in enumerate(specs):
                if i and i % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                for rev in spec.revisions():
                    key = spec.key(rev.name)
                    live[key].set_endpoints(backend.ready_endpoints(key))

    async def _swap_routes(
        self, settings: GatewaySettings, full: bool, changed: list[ServiceSpec], removed: list[ServiceSpec]
    ) -> None:
        """Built a slice at a time (the loop serves in between), swapped whole."""
        live = self._runtimes.live
        routes = RouteTable({}, {}, settings.domain.lower()) if full else self._proxy.routes.updated([], removed, live)
        for start in range(0, len(changed), YIELD_EVERY):
            routes = routes.updated(changed[start : start + YIELD_EVERY], [], live)
            await asyncio.sleep(0)
        self._proxy.swap_routes(routes)

    async def _configure_scaling(self, settings: GatewaySettings, changed: list[ServiceSpec]) -> None:
        """Every revision a backend can scale gets a KPA scaler; the data plane feeds its stats. O(changed)."""
        defaults = settings.autoscaler
        autoscaler = self._autoscaler
        for i, spec in enumerate(changed):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            for rev in spec.revisions():
                key = spec.key(rev.name)
                runtime = self._runtimes.live[key]
                if self._backends.of_revision[key] != "static":
                    autoscaler.set(key, RevisionScaling.resolve(defaults, spec.scaling))
                    hooks = replace(self._hooks, stats=autoscaler.stats(key), poke=partial(autoscaler.poke, key))
                    runtime.configure(runtime.settings, hooks)
                else:
                    autoscaler.remove(key)
                    runtime.configure(runtime.settings, self._hooks)
