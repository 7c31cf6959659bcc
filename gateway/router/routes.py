"""The route table: normalised Host → service route, an immutable object swapped whole on reload."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.config.model import Config, ServiceSpec
from gateway.router.revision import RevisionRuntime
from gateway.router.split import Splitter
from gateway.types import RevisionKey


class ServiceRoute:
    __slots__ = ("spec", "default", "canary", "splitter", "percent")

    def __init__(self, spec: ServiceSpec, default: RevisionRuntime, canary: RevisionRuntime | None) -> None:
        self.spec = spec
        self.default = default
        self.canary = canary
        self.percent = spec.percent("canary") if canary is not None else 0
        self.splitter = Splitter(self.percent)

    def choose(self, tag: bytes | None) -> RevisionRuntime:
        canary = self.canary
        if tag is not None:
            if tag == b"default":
                return self.default
            if tag == b"canary" and canary is not None:
                return canary
        if canary is not None and self.splitter.pick():
            return canary
        return self.default


def hosts_of(spec: ServiceSpec, domain: str) -> tuple[bytes, ...]:
    return (spec.host(domain).encode(), *(spec.tag_host(revision.name, domain).encode() for revision in spec.revisions()))


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
            default = runtimes[spec.key("default")]
            canary = runtimes[spec.key("canary")] if spec.canary is not None else None
            route = ServiceRoute(spec, default, canary)
            by_service[spec.ident] = route
            names = hosts_of(spec, domain)
            hosts[names[0]] = (route, None)
            hosts[names[1]] = (route, default)
            if canary is not None:
                hosts[names[2]] = (route, canary)
        return RouteTable(hosts, by_service, domain)
