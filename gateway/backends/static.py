"""The static backend: revisions served by fixed, already-running endpoints (`spec.endpoints`).

Endpoints count as ready from the start. A revision with a ``readinessPath`` is probed every
``probe_period``: an endpoint failing ``failure_threshold`` probes in a row leaves the ready set and
returns on its first passing probe. Without a path the data plane's own handling applies (an
endpoint that refuses a connection is skipped until it accepts one again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from gateway.backends.base import EndpointListener, RevisionStatus
from gateway.backends.errors import BackendConfigError
from gateway.backends.probe import Prober
from gateway.config.model import RevisionSpec, ServiceSpec
from gateway.types import Endpoint, EndpointSet, RevisionKey

_DEFAULT_PORTS = {"http": 80}
log = logging.getLogger(__name__)


def parse_endpoint(url: str) -> Endpoint:
    """``http://host:port`` (port defaults to 80) → Endpoint; BackendConfigError if malformed."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port
    except ValueError as exc:
        raise BackendConfigError(f"endpoint {url!r}: {exc}") from exc
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise BackendConfigError(f"endpoint {url!r}: expected http://host[:port]")
    return Endpoint(parts.hostname, port if port is not None else _DEFAULT_PORTS[parts.scheme])


class StaticBackend:
    """Publishes each revision's configured endpoints as ready; scale() is only recorded."""

    def __init__(
        self,
        services: Sequence[ServiceSpec] = (),
        *,
        probe_period: float = 1.0,
        failure_threshold: int = 2,
        probe_timeout: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._endpoints: dict[RevisionKey, EndpointSet] = {}
        self._paths: dict[RevisionKey, str] = {}
        self._down: dict[RevisionKey, set[Endpoint]] = {}
        self._failures: dict[tuple[RevisionKey, Endpoint], int] = {}
        self._desired: dict[RevisionKey, int] = {}
        self._listeners: list[EndpointListener] = []
        self._probe_period = probe_period
        self._failure_threshold = failure_threshold
        self._sleep = sleep
        self._prober = Prober(timeout=probe_timeout)
        self._probing: asyncio.Task[None] | None = None
        self._services: dict[tuple[str, str], ServiceSpec] = {}
        self._apply(*self._diff(services))

    def _diff(self, services: Sequence[ServiceSpec]) -> tuple[list[ServiceSpec], list[ServiceSpec]]:
        """(changed, removed) against what was applied; an unchanged service is the very same object."""
        current = self._services
        wanted = {svc.ident for svc in services}
        changed = [svc for svc in services if current.get(svc.ident) is not svc]
        removed = [svc for ident, svc in current.items() if ident not in wanted]
        return changed, removed

    def _apply(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> list[RevisionKey]:
        """O(changed): revisions of removed services go, changed ones get their new endpoints."""
        touched: list[RevisionKey] = []
        gone = [svc.key(rev.name) for svc in removed for rev in svc.revisions()]
        for svc in changed:
            old = self._services.get(svc.ident)
            if old is not None:
                keep = {rev.name for rev in svc.revisions()}
                gone += [old.key(rev.name) for rev in old.revisions() if rev.name not in keep]
            for rev in svc.revisions():
                if self._apply_revision(svc.key(rev.name), rev):
                    touched.append(svc.key(rev.name))
            self._services[svc.ident] = svc
        for svc in removed:
            self._services.pop(svc.ident, None)
        touched += self._forget(gone)
        return touched

    def _apply_revision(self, key: RevisionKey, rev: RevisionSpec) -> bool:
        """Take a revision's endpoints and readiness path; True when its ready set may have changed."""
        endpoints = frozenset(parse_endpoint(url) for url in rev.endpoints)
        touched = self._endpoints.get(key) != endpoints
        self._endpoints[key] = endpoints
        if rev.readiness_path:
            self._paths[key] = rev.readiness_path
            down = self._down.get(key)
            if down:
                self._down[key] = down & endpoints
            return touched
        self._paths.pop(key, None)
        return bool(self._down.pop(key, None)) or touched

    def _forget(self, gone: Sequence[RevisionKey]) -> list[RevisionKey]:
        """Drop revisions; the ones that had endpoints are returned (their listeners hear of an empty set)."""
        touched = []
        for key in gone:
            if self._endpoints.pop(key, None):
                touched.append(key)
            self._paths.pop(key, None)
            self._down.pop(key, None)
            self._desired.pop(key, None)
        if gone and self._failures:
            dropped = set(gone)
            self._failures = {k: v for k, v in self._failures.items() if k[0] not in dropped}
        return touched

    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        await self.update(*self._diff(services))

    async def update(self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec]) -> None:
        for key in dict.fromkeys(self._apply(changed, removed)):
            self._notify(key)
        if self._paths and self._probing is None:
            self._probing = asyncio.get_running_loop().create_task(self._probe_forever())

    def _notify(self, key: RevisionKey) -> None:
        ready = self.ready_endpoints(key)
        for listener in list(self._listeners):
            listener(key, ready)

    async def _probe_forever(self) -> None:
        while True:
            await self.probe_once()
            await self._sleep(self._probe_period)

    async def probe_once(self) -> None:
        """Probe every endpoint of the revisions with a readiness path once; listeners hear of the changes."""
        checks = [(key, ep, path) for key, path in self._paths.items() for ep in self._endpoints.get(key, ())]
        results = await asyncio.gather(*(self._prober.probe(ep, path) for _, ep, path in checks))
        changed = set()
        for (key, ep, _), ok in zip(checks, results):
            if ok is None:
                continue  # the gateway could not probe (out of descriptors): no verdict on the endpoint
            if self._verdict(key, ep, ok):
                changed.add(key)
        for key in changed:
            self._notify(key)

    def _verdict(self, key: RevisionKey, ep: Endpoint, ok: bool) -> bool:
        """Count one probe result; True when the endpoint left or rejoined the ready set."""
        down = self._down.setdefault(key, set())
        if ok:
            self._failures.pop((key, ep), None)
            if ep not in down:
                return False
            down.discard(ep)
            log.info("%s: endpoint %s passes its readiness probe again", key, ep)
            return True
        n = self._failures.get((key, ep), 0) + 1
        self._failures[(key, ep)] = n
        if n < self._failure_threshold or ep in down:
            return False
        down.add(ep)
        log.warning("%s: endpoint %s failed %d readiness probes; not routing to it", key, ep, n)
        return True

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        if key in self._endpoints:
            self._desired[key] = max(0, replicas)

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        endpoints = self._endpoints.get(key, frozenset())
        down = self._down.get(key)
        return endpoints - down if down else endpoints

    def watch(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    def status(self, key: RevisionKey) -> RevisionStatus:
        if key not in self._endpoints:
            return RevisionStatus(0, 0, "unknown", "no such revision")
        count = len(self._endpoints[key])
        if count == 0:
            return RevisionStatus(0, 0, "failed", "revision has no endpoints")
        down = self._down.get(key)
        if down:
            names = ", ".join(sorted(str(e) for e in down))
            return RevisionStatus(count, count - len(down), "degraded", f"failing readiness: {names}")
        return RevisionStatus(count, count)

    async def close(self) -> None:
        self._listeners.clear()
        if self._probing is not None:
            self._probing.cancel()
            await asyncio.gather(self._probing, return_exceptions=True)
            self._probing = None
        await self._prober.close()
