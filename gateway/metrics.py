"""Prometheus exposition: the data plane's lock-free counters read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.router.revision import COLD_START_BUCKETS, DURATION_BUCKETS, Histogram, RevisionRuntime
from gateway.types import ConnectionsView


class RevisionView:
    """What the admin side reads per revision (filled by the app from router, autoscaler and backend)."""

    def __init__(
        self,
        runtime: RevisionRuntime,
        ready: int,
        desired: int,
        stable: float | None,
        panic: float | None,
        panicking: bool,
    ) -> None:
        self.runtime = runtime
        self.ready = ready
        self.desired = desired
        self.stable = stable
        self.panic = panic
        self.panicking = panicking


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
    ) -> None:
        self._views = views
        self._unrouted = unrouted
        self._connections = connections

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
            rt = view.runtime
            lv = [rt.key.namespace, rt.service_label, rt.revision_label]
            for code, count in sorted(rt.codes.items()):
                requests.add_metric(lv + [str(code)], count)
            durations = rt.durations or Histogram(DURATION_BUCKETS)
            cold_starts = rt.cold_starts or Histogram(COLD_START_BUCKETS)
            duration.add_metric(lv, _buckets(durations), durations.sum)
            cold.add_metric(lv, _buckets(cold_starts), cold_starts.sum)
            ready.add_metric(lv, view.ready)
            desired.add_metric(lv, view.desired)
            conc.add_metric(lv + ["stable"], view.stable or 0.0)
            conc.add_metric(lv + ["panic"], view.panic or 0.0)
            panic.add_metric(lv, 1.0 if view.panicking else 0.0)
            queued.add_metric(lv, rt.throttler.queued)
            in_flight.add_metric(lv, sum(t.in_flight for t in rt.throttler.trackers.values()) + rt.throttler.queued)
        yield from (requests, duration, cold, ready, desired, conc, panic, queued, in_flight)
        if self._connections is not None:
            c = self._connections()
            yield GaugeMetricFamily("gateway_client_connections", "Open client connections", value=c.open)
            yield GaugeMetricFamily(
                "gateway_client_connections_limit", "Client connections at which accepting stops", value=c.limit
            )
            yield CounterMetricFamily(
                "gateway_connection_limit_reached",
                "Times accepting stopped because the connection limit was reached (new clients wait in the listen backlog)",
                value=c.limit_reached,
            )
            yield CounterMetricFamily(
                "gateway_accept_errors", "Accepts that failed for lack of file descriptors or buffers", value=c.accept_shortages
            )
