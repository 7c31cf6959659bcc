"""Prometheus metrics of the shared state: is Redis reachable, does this instance lead, how many instances."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.shared.instance import SharedState


class SharedStateCollector(Collector):
    def __init__(self, shared: SharedState) -> None:
        self._shared = shared

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        coordinator = self._shared.coordinator
        yield GaugeMetricFamily(
            "gateway_shared_state_up",
            "1 while Redis (spec.redis) answers, 0 while it is unreachable",
            value=0.0 if coordinator.health() else 1.0,
        )
        yield GaugeMetricFamily(
            "gateway_shared_leader",
            "1 while this instance holds the leader lease (it scales the replicas)",
            value=1.0 if coordinator.holds() else 0.0,
        )
        yield GaugeMetricFamily(
            "gateway_shared_instances", "Gateway instances in the membership, as last seen", value=len(coordinator.members)
        )
        yield GaugeMetricFamily(
            "gateway_shared_data_planes", "Data planes dividing each replica's concurrency", value=coordinator.share[1]
        )
