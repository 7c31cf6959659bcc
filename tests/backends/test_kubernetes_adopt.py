"""Restarts adopt what runs; Deployments the gateway did not make are left alone; removed revisions'
Deployments are deleted once drained."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from gateway.autoscale.scaler import Autoscaler
from gateway.autoscale.settings import RevisionScaling
from gateway.backends.kube_api import load_configuration
from gateway.config.model import AutoscalerSettings, ScalingSpec
from gateway.types import Endpoint
from tests.backends.kube_support import backend, service
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.kube.manifests import replica_deployment
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e


def replicas(api: KubeApi, name: str) -> int | None:
    found = [d for d in api.objects("deployments", "default") if d["metadata"]["name"] == name]
    return found[0]["spec"]["replicas"] if found else None


def writes(api: KubeApi, name: str) -> list[tuple[str, str]]:
    return [(r.method, r.url) for r in api.requests() if r.method != "GET" and f"/deployments/{name}" in r.url]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_restart_adopts_a_busy_revision_and_leaves_an_idle_one_at_zero(cluster: Cluster, kubeconfig: Path) -> None:
    busy, idle = service("busy"), service("idle")
    async with backend(kubeconfig) as first:
        await first.sync([busy, idle])
        await first.scale(busy.key("default"), 3)
        await first.scale(idle.key("default"), 0)
        await wait_until(lambda: len(first.ready_endpoints(busy.key("default"))) == 3, "3 ready pods", within=30)
        await wait_until(lambda: replicas(cluster.api, "idle-default") == 0, "the idle Deployment")
    before = len(cluster.api.requests())
    # The first gateway is gone; its Deployments and pods run on. A new one adopts them.
    async with backend(kubeconfig) as second:
        await second.sync([busy, idle])
        assert second.adoption(busy.key("default")) == 3
        assert second.adoption(idle.key("default")) == 0
        assert len(second.ready_endpoints(busy.key("default"))) == 3  # known before the autoscaler starts
        clock = Clock()
        scaler = Autoscaler(second, clock=clock)
        scaling = RevisionScaling.resolve(AutoscalerSettings(initial_scale=1), ScalingSpec())
        for spec in (busy, idle):
            scaler.set(spec.key("default"), scaling)
        assert scaler.status(busy.key("default")).desired == 3
        assert scaler.status(busy.key("default")).state == "active"
        assert scaler.status(idle.key("default")).desired == 0
        assert scaler.status(idle.key("default")).state == "inactive"
        await scaler.tick_all()
        clock.now += 2
        await scaler.tick_all()
    assert [w for w in cluster.api.requests()[before:] if w.method != "GET"] == []  # nothing patched, nothing woken
    assert replicas(cluster.api, "busy-default") == 3 and replicas(cluster.api, "idle-default") == 0


async def test_initial_scale_applies_only_to_a_deployment_the_gateway_creates(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        assert kube.adoption(key) is None
        scaler = Autoscaler(kube, clock=Clock())
        scaler.set(key, RevisionScaling.resolve(AutoscalerSettings(initial_scale=2), ScalingSpec()))
        assert scaler.status(key).desired == 2
        await scaler.tick_all()
        await wait_until(lambda: replicas(kube_api, "iris-default") == 2, "2 replicas")


async def test_a_deployment_the_gateway_did_not_make_is_left_alone(kube_api: KubeApi, kubeconfig: Path) -> None:
    theirs = replica_deployment("iris-default", replicas=2)  # made by another user of the cluster
    with kubernetes.client.ApiClient(load_configuration(str(kubeconfig))) as other:
        apps: Any = kubernetes.client.AppsV1Api(other)
        apps.create_namespaced_deployment("default", theirs)
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await kube.scale(key, 5)
        await wait_until(lambda: kube.status(key).state == "failed", "the refusal")
        status = kube.status(key)
        assert "not made by the gateway" in (status.message or "") and "app.kubernetes.io/managed-by" in (status.message or "")
        assert kube.adoption(key) == "unknown"  # nothing to scale
        await kube.update([], [spec])  # removed from the config: still not deleted
        await wait_until(lambda: key not in kube._revisions, "the revision forgotten")
    assert writes(kube_api, "iris-default") == [] and replicas(kube_api, "iris-default") == 2


async def test_a_removed_revision_is_deleted_after_its_requests_drain(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service(canary=20)
    canary = spec.key("canary")
    busy: dict[Endpoint, int] = {}
    async with backend(kubeconfig, in_flight=lambda ep: busy.get(ep, 0)) as kube:
        await kube.sync([spec])
        await kube.scale(canary, 1)
        await wait_until(lambda: len(kube.ready_endpoints(canary)) == 1, "a ready canary pod", within=30)
        (endpoint,) = kube.ready_endpoints(canary)
        busy[endpoint] = 1  # a request still being served by the canary's pod
        await kube.sync([service()])  # the canary left the config
        await wait_until(lambda: kube._busy(kube._revisions[canary]) == 1, "the drain to start")
        assert replicas(cluster.api, "iris-canary") == 1
        busy[endpoint] = 0
        await wait_until(lambda: replicas(cluster.api, "iris-canary") is None, "the canary's Deployment deleted")
        # never scaled, the default revision's Deployment is made at 0 once the wait for a first wish ends
        await wait_until(lambda: replicas(cluster.api, "iris-default") == 0, "the default revision's Deployment kept")
        await wait_until(lambda: not cluster.pods("iris-canary"), "the canary's pods gone", within=30)


async def test_a_gateway_started_while_the_api_is_down_adopts_once_it_answers(cluster: Cluster, kubeconfig: Path) -> None:
    busy, fresh = service("busy"), service("fresh")
    async with backend(kubeconfig) as first:
        await first.sync([busy])
        await first.scale(busy.key("default"), 3)
        await wait_until(lambda: len(first.ready_endpoints(busy.key("default"))) == 3, "3 ready pods", within=30)
    cluster.api.stop_listening()
    try:
        async with backend(kubeconfig) as second:
            started = time.monotonic()
            await second.sync([busy, fresh])
            assert time.monotonic() - started < 5.0  # the start does not wait out the outage
            assert second.adoption(busy.key("default")) == "unknown"
            clock = Clock()
            scaler = Autoscaler(second, clock=clock)
            scaling = RevisionScaling.resolve(AutoscalerSettings(initial_scale=1), ScalingSpec())
            for spec in (busy, fresh):
                scaler.set(spec.key("default"), scaling)
            await scaler.tick_all()  # paused: nothing known, nothing asked
            assert second._revisions[busy.key("default")].wanted is None
            cluster.api.start_listening()
            await wait_until(lambda: second.adoption(busy.key("default")) == 3, "the busy revision adopted", within=20)
            # each revision is looked at on its own: the fresh one may be seen a moment later
            await wait_until(lambda: second.adoption(fresh.key("default")) is None, "the fresh revision seen absent")
            clock.now += 2
            await scaler.tick_all()
            assert scaler.status(busy.key("default")).desired == 3  # seeded from what runs, not initialScale
            assert scaler.status(fresh.key("default")).desired == 1  # made now: initialScale
            await wait_until(lambda: replicas(cluster.api, "fresh-default") == 1, "the new revision made at its initial scale")
            assert replicas(cluster.api, "busy-default") == 3
    finally:
        cluster.api.start_listening()
    assert not [w for w in writes(cluster.api, "busy-default") if w[0] == "PATCH"]


async def test_a_revision_back_in_the_config_before_its_drain_ended_keeps_its_deployment(
    cluster: Cluster, kubeconfig: Path
) -> None:
    spec = service(canary=20)
    canary = spec.key("canary")
    busy: dict[Endpoint, int] = {}
    async with backend(kubeconfig, in_flight=lambda ep: busy.get(ep, 0)) as kube:
        await kube.sync([spec])
        await kube.scale(canary, 1)
        await wait_until(lambda: len(kube.ready_endpoints(canary)) == 1, "a ready canary pod", within=30)
        (endpoint,) = kube.ready_endpoints(canary)
        busy[endpoint] = 1
        await kube.sync([service()])
        await wait_until(lambda: kube._busy(kube._revisions[canary]) == 1, "the drain to start")
        await kube.sync([spec])  # back before its request ended
        busy[endpoint] = 0
        await kube.scale(canary, 2)
        await wait_until(lambda: len(kube.ready_endpoints(canary)) == 2, "two canary pods", within=30)
    assert not [w for w in writes(cluster.api, "iris-canary") if w[0] == "DELETE"]
