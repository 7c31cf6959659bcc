"""The route table: normalised Host → service route, an immutable object swapped whole on reload."""

from __future__ import annotations

from collections.abc import Mapping

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
        self.percent = spec.canary_percent if canary is not None else 0
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


class RouteTable:
    """Host lookup is one dict get; tag hosts map straight to their revision."""

    __slots__ = ("hosts", "services")

    def __init__(self, hosts: dict[bytes, tuple[ServiceRoute, RevisionRuntime | None]], services: list[ServiceRoute]) -> None:
        self.hosts = hosts
        self.services = services

    def lookup(self, host: bytes) -> tuple[ServiceRoute, RevisionRuntime | None] | None:
        return self.hosts.get(host)

    @classmethod
    def build(cls, config: Config, runtimes: Mapping[RevisionKey, RevisionRuntime]) -> RouteTable:
        domain = config.gateway.domain.lower()
        hosts: dict[bytes, tuple[ServiceRoute, RevisionRuntime | None]] = {}
        services = []
        for spec in config.services:
            default = runtimes[spec.key("default")]
            canary = runtimes[spec.key("canary")] if spec.canary is not None else None
            route = ServiceRoute(spec, default, canary)
            services.append(route)
            base = f"{spec.name}.{spec.namespace}.{domain}"
            hosts[base.encode()] = (route, None)
            hosts[f"default-{base}".encode()] = (route, default)
            if canary is not None:
                hosts[f"canary-{base}".encode()] = (route, canary)
        return cls(hosts, services)
