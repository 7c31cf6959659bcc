"""The static backend: revisions served by fixed, already-running endpoints (`spec.endpoints`)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from gateway.backends.base import EndpointListener, RevisionStatus
from gateway.backends.errors import BackendConfigError
from gateway.config.model import ServiceSpec
from gateway.types import Endpoint, EndpointSet, RevisionKey

_DEFAULT_PORTS = {"http": 80, "https": 443}


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

    def __init__(self, services: Sequence[ServiceSpec] = ()) -> None:
        self._endpoints: dict[RevisionKey, EndpointSet] = {}
        self._desired: dict[RevisionKey, int] = {}
        self._listeners: list[EndpointListener] = []
        self._apply(services)

    def _apply(self, services: Sequence[ServiceSpec]) -> list[RevisionKey]:
        endpoints = {
            svc.key(spec.name): frozenset(parse_endpoint(url) for url in spec.endpoints)
            for svc in services
            for spec in svc.revisions()
        }
        changed = [
            k
            for k in self._endpoints.keys() | endpoints.keys()
            if self._endpoints.get(k, frozenset()) != endpoints.get(k, frozenset())
        ]
        self._endpoints = endpoints
        self._desired = {k: v for k, v in self._desired.items() if k in endpoints}
        return changed

    async def sync(self, services: Sequence[ServiceSpec]) -> None:
        for key in self._apply(services):
            for listener in list(self._listeners):
                listener(key, self.ready_endpoints(key))

    async def scale(self, key: RevisionKey, replicas: int) -> None:
        if key in self._endpoints:
            self._desired[key] = max(0, replicas)

    def ready_endpoints(self, key: RevisionKey) -> EndpointSet:
        return self._endpoints.get(key, frozenset())

    def watch(self, listener: EndpointListener) -> None:
        self._listeners.append(listener)

    def status(self, key: RevisionKey) -> RevisionStatus:
        if key not in self._endpoints:
            return RevisionStatus(0, 0, "unknown", "no such revision")
        count = len(self._endpoints[key])
        if count == 0:
            return RevisionStatus(0, 0, "failed", "revision has no endpoints")
        return RevisionStatus(count, count)

    async def close(self) -> None:
        self._listeners.clear()
