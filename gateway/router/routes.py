"""The route table: normalised Host → service route, an immutable object swapped whole on reload."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.config.model import Config, ServiceSpec
from gateway.router.revision import RevisionRuntime
from gateway.router.split import Splitter
from gateway.types import RevisionKey


class ServiceRoute:
    __slots__ = ("spec", "default", "canary", "splitter", "percent", "tags")

    def __init__(self, spec: ServiceSpec, default: RevisionRuntime, canary: RevisionRuntime | None) -> None:
        self.spec = spec
        self.default = default
        self.canary = canary
        self.percent = spec.canary_percent if canary is not None else 0
        self.splitter = Splitter(self.percent)
        # Knative-Serving-Tag value -> the revision it pins ("default"/"canary"; an InferenceService's "prev"/"latest")
        runtimes = {spec.default.name: default}
        if canary is not None and spec.canary is not None:
            runtimes[spec.canary.name] = canary
        self.tags: dict[bytes, RevisionRuntime] = {tag.lower().encode(): runtimes[rev.name] for tag, rev in spec.tagged()}

    def choose(self, tag: bytes | None) -> RevisionRuntime:
        canary = self.canary
        if tag is not None:
            pinned = self.tags.get(tag)
            if pinned is not None:
                return pinned
        if canary is not None and self.splitter.pick():
            return canary
        return self.default


def hosts_of(spec: ServiceSpec, domain: str) -> tuple[bytes, ...]:
    """The service's host, then one tag host per tagged revision."""
    return (spec.host(domain).encode(), *(spec.tag_host(tag, domain).encode() for tag, _ in spec.tagged()))


class RouteTable:
    """Host lookup is one dict get; tag hosts map straight to their revision."""

    __slots__ = ("hosts", "by_service", "domain")

    def __init__(
        self,
        hosts: dict[bytes, tuple[ServiceRoute, RevisionRuntime | None]],
        by_service: dict[tuple[str, str], ServiceRoute],
        domain: str = "",
    ) -> None:
        self.hosts = hosts
        self.by_service = by_service
        self.domain = domain

    @property
    def services(self) -> list[ServiceRoute]:
        return list(self.by_service.values())

    def lookup(self, host: bytes) -> tuple[ServiceRoute, RevisionRuntime | None] | None:
        return self.hosts.get(host)

    @classmethod
    def build(cls, config: Config, runtimes: Mapping[RevisionKey, RevisionRuntime]) -> RouteTable:
        return cls({}, {}, config.gateway.domain.lower()).updated(config.services, (), runtimes)

    def updated(
        self, changed: Sequence[ServiceSpec], removed: Sequence[ServiceSpec], runtimes: Mapping[RevisionKey, RevisionRuntime]
    ) -> RouteTable:
        """A new table: this one with `removed` gone and `changed` (re)built; O(changed) plus a dict copy."""
        domain = self.domain
        hosts = dict(self.hosts)
        by_service = dict(self.by_service)
        for spec in removed:
            for host in hosts_of(spec, domain):
                hosts.pop(host, None)
            by_service.pop(spec.ident, None)
        for spec in changed:
            old = by_service.get(spec.ident)
            if old is not None:
                for host in hosts_of(old.spec, domain):
                    hosts.pop(host, None)
            default = runtimes[spec.key(spec.default.name)]
            canary = runtimes[spec.key(spec.canary.name)] if spec.canary is not None else None
            route = ServiceRoute(spec, default, canary)
            by_service[spec.ident] = route
            hosts[spec.host(domain).encode()] = (route, None)
            for tag, _ in spec.tagged():
                hosts[spec.tag_host(tag, domain).encode()] = (route, route.tags[tag.lower().encode()])
        return RouteTable(hosts, by_service, domain)
