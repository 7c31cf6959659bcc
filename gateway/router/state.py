"""What every connection and request cycle of the data plane shares: one plain value (uvicorn's
``ServerState``), with a counter helper and the drain's notification hook."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from gateway.config.model import ProxySettings
from gateway.router.pools import Pools
from gateway.router.routes import RouteTable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyState:
    """Routes, limits and upstream pools of one data-plane listener, and the counters its connections keep.

    The server swaps `routes` and `settings` whole on a reload; connections and cycles read them
    at the moment they need them, so a request already routed keeps the revision it was given.
    """

    __slots__ = ("routes", "settings", "pools", "unrouted", "draining", "starved", "trusted_networks", "on_request_end")

    def __init__(self, routes: RouteTable, settings: ProxySettings, pools: Pools) -> None:
        self.routes = routes
        self.settings = settings
        self.pools = pools
        self.unrouted: dict[int, int] = {}  # status -> count of requests no revision answered
        self.draining = False
        self.starved = False  # clients wait to be accepted: a connection going idle should make room
        self.trusted_networks: list[IPNetwork] = []
        self.on_request_end: Callable[[], None] | None = None  # told of every answered request while draining

    def trusts(self, peer: bytes) -> bool:
        """Is `peer` (a client's address) one of spec.proxy.trustedProxies? Once per connection."""
        if not self.trusted_networks or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer.decode())
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted_networks)

    def count_unrouted(self, status: int) -> None:
        """A 400/404/431… answered before any revision was chosen."""
        unrouted = self.unrouted
        unrouted[status] = unrouted.get(status, 0) + 1
