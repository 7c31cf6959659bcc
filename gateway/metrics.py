"""Prometheus exposition: the data plane's lock-free counters read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.autoscale.scaler import Autoscaler
from gateway.revision_backends import RevisionBackends
from gateway.router.revision import COLD_START_BUCKETS, DURATION_BUCKETS, Histogram, RevisionRuntime
from gateway.types import ConnectionsView, RevisionKey


@dataclass(frozen=True)
class ScalingStatus:
    """A revision's scale as the admin side shows it: the autoscaler's, or for a revision nothing
    scales (static endpoints) the backend's count and no concurrency figures."""

    desired: int
    stable: float | None = None
    panic: float | None = None
    panicking: bool = False


def scaling_status(autoscaler: Autoscaler, backends: RevisionBackends, key: RevisionKey) -> ScalingStatus:
    if key in autoscaler:
        status = autoscaler.status(key)
        return ScalingStatus(status.desired, status.stable, status.panic, status.panicking)
    return ScalingStatus(backends.status(key).desired)


@dataclass(frozen=True)
class RevisionView:
    """What the metrics read per revision: the data plane's counters, its ready count and the scaling status."""

    runtime: RevisionRuntime
    ready: int
    scaling: ScalingStatus


def revision_views(
    runtimes: Mapping[RevisionKey, RevisionRuntime], autoscaler: Autoscaler, backends: RevisionBackends
) -> list[RevisionView]:
    return [
        RevisionView(runtime, runtime.throttler.ready, scaling_status(autoscaler, backends, key))
        for key, runtime in runtimes.items()
    ]


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(h.bounds, h.counts):
        running += count
        out.append((repr(float(bound)), running))
    out.append(("+Inf", h.count))
    return out


class GatewayCollector(Collector):
    def __init__(
        self,
        views: Callable[[], Iterable[RevisionView]],
        unrouted: Callable[[], dict[int, int]],
        connections: Callable[[], ConnectionsView] | None = None,
        backend_health: Callable[[], Mapping[str, str | None]] | None = None,
    ) -> None:
        self._views = views
        self._unrouted = unrouted
        self._connections = connections
        self._backend_health = backend_health

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        # namespace keeps two services of the same name in different namespaces apart
        labels = ["namespace", "service", "revision"]
        requests = CounterMetricFamily("gateway_requests", "Requests answered, by status code", labels=labels + ["code"])
        duration = HistogramMetricFamily(
            "gateway_request_duration_seconds", "Time from request head to last response byte", labels=labels
        )
        cold = HistogramMetricFamily(
            "gateway_cold_start_seconds", "Time requests waited for a revision to scale up from zero", labels=labels
        )
        ready = GaugeMetricFamily("gateway_revision_ready_replicas", "Replicas passing readiness", labels=labels)
        desired = GaugeMetricFamily("gateway_revision_desired_replicas", "Replicas the autoscaler asks for", labels=labels)
        conc = GaugeMetricFamily(
            "gateway_revision_concurrency", "Average concurrent requests over the window", labels=labels + ["window"]
        )
        panic = GaugeMetricFamily("gateway_revision_panic", "1 while the revision's autoscaler is in panic mode", labels=labels)
        queued = GaugeMetricFamily("gateway_activator_queued_requests", "Requests waiting for a replica", labels=labels)
        in_flight = GaugeMetricFamily("gateway_revision_in_flight_requests", "Requests being served or waiting", labels=labels)
        for code, count in sorted(self._unrouted().items()):
            requests.add_metric(["", "", "", str(code)], count)  # answered before a revision was chosen
        for view in self._views():
            runtime, scaling = view.runtime, view.scaling
            labels_of = [runtime.key.namespace, runtime.service_label, runtime.revision_label]
            for code, count in sorted(runtime.codes.items()):
                requests.add_metric(labels_of + [str(code)], count)
            durations = runtime.durations or Histogram(DURATION_BUCKETS)
            cold_starts = runtime.cold_starts or Histogram(COLD_START_BUCKETS)
            duration.add_metric(labels_of, _buckets(durations), durations.sum)
            cold.add_metric(labels_of, _buckets(cold_starts), cold_starts.sum)
            ready.add_metric(labels_of, view.ready)
            desired.add_metric(labels_of, scaling.desired)
            conc.add_metric(labels_of + ["stable"], scaling.stable or 0.0)
            conc.add_metric(labels_of + ["panic"], scaling.panic or 0.0)
            panic.add_metric(labels_of, 1.0 if scaling.panicking else 0.0)
            throttler = runtime.throttler
            queued.add_metric(labels_of, throttler.queued)
            in_flight.add_metric(labels_of, sum(t.in_flight for t in throttler.trackers.values()) + throttler.queued)
        yield from (requests, duration, cold, ready, desired, conc, panic, queued, in_flight)
        if self._backend_health is not None:
            up = GaugeMetricFamily(
                "gateway_backend_up",
                "1 while the backend's API (Kubernetes) answers, 0 while it is unreachable",
                labels=["backend"],
            )
            for kind, problem in sorted(self._backend_health().items()):
                up.add_metric([kind], 0.0 if problem else 1.0)
            yield up
        if self._connections is not None:
            connections = self._connections()
            yield GaugeMetricFamily("gateway_client_connections", "Open client connections", value=connections.open)
            yield GaugeMetricFamily(
                "gateway_client_connections_limit", "Client connections at which accepting stops", value=connections.limit
            )
            yield CounterMetricFamily(
                "gateway_connection_limit_reached",
                "Times accepting stopped because the connection limit was reached (new clients wait in the listen backlog)",
                value=connections.limit_reached,
            )
            yield CounterMetricFamily(
                "gateway_accept_errors",
                "Accepts that failed for lack of file descriptors or buffers",
                value=connections.accept_shortages,
            )
