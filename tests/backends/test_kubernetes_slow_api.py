"""An API that is slow or fails in part: a hung server does not hold a start or a reload, a dropped
watch is not an outage, one failing Deployment does not hold the others, and an outside change of a
Deployment's replicas is undone."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import kubernetes
import pytest

from gateway.backends.kube_api import DaemonPool
from gateway.backends.kubernetes import KubernetesBackend
from tests.backends.kube_support import backend, service, settled
from tests.backends.kube_support import kube_api as make_api
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster
kube_client = kube_fixtures.kube_client

pytestmark = pytest.mark.e2e


async def test_a_hung_api_holds_neither_the_start_nor_a_reload(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec, other = service(), service("wine", namespace="ml")
    hang = kube_api.stall(None, r".*", times=1000, seconds=8.0)
    async with backend(kubeconfig) as kube:
        started = time.monotonic()
        await kube.sync([spec])
        assert time.monotonic() - started < 3.5  # not the request timeouts (5 s each, three tries)
        assert kube.adoption(spec.key("default")) == "unknown"
        started = time.monotonic()
        await kube.sync([spec, other])  # a new namespace: its first pod list hangs too
        assert time.monotonic() - started < 3.5
        assert kube.adoption(other.key("default")) == "unknown"
        kube_api.emulator.faults.clear()
        assert hang.served > 0
        await wait_until(lambda: kube.adoption(spec.key("default")) is None, "the look done in the background", within=30)
        await wait_until(lambda: kube.adoption(other.key("default")) is None, "the other namespace too", within=30)


def pod_lists(api: KubeApi) -> int:
    return sum(1 for r in api.requests() if r.method == "GET" and "/pods" in r.url and "watch=true" not in r.url)


def deployment_lists(api: KubeApi) -> int:
    return sum(
        1 for r in api.requests() if r.method == "GET" and "/deployments?labelSelector" in r.url and "watch=true" not in r.url
    )


async def cut(api: KubeApi) -> None:
    """Drop every connection to the API (it listens again at once) and wait for the relists of both watches
    (pods, Deployments): a cut in the middle of one's relist would make a second failure in a row."""
    before, deployments = pod_lists(api), deployment_lists(api)
    api.stop_listening()
    api.start_listening()
    await wait_until(lambda: pod_lists(api) > before, "the relist after the cut", within=3.0)
    await wait_until(lambda: deployment_lists(api) > deployments, "the Deployments' relist after the cut", within=3.0)


async def test_dropped_watches_are_hiccups_not_an_outage(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    # a long second step: were the backoff not started over after a successful relist, the second cut's
    # relist would come after 5 s, past `cut`'s wait
    async with backend(kubeconfig, backoff=(0.2, 5.0)) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0, "the Deployment")
        for _ in range(4):
            await cut(kube_api)
        assert kube.api.recoveries == 0 and kube.health() is None  # never counted unreachable
        assert kube.adoption(key) is None
        started = time.monotonic()
        await kube.scale(key, 1)
        await wait_until(lambda: replicas(kube_api) == 1, "the scale, not paused", within=2.0)
        assert time.monotonic() - started < 2.0


async def test_a_relist_that_fails_too_is_an_outage(kube_api: KubeApi, kubeconfig: Path) -> None:
    async with backend(kubeconfig) as kube:
        await kube.sync([service()])
        with kube_api.down():
            await wait_until(lambda: kube.health() is not None, "the outage said")
        await wait_until(lambda: kube.health() is None, "the API well again")


async def test_the_pod_watch_waits_as_long_as_retry_after_asks(kube_api: KubeApi, kubeconfig: Path) -> None:
    async with backend(kubeconfig) as kube:
        await kube.sync([service()])
        before = pod_lists(kube_api)
        fault = kube_api.throttle("GET", r"/pods$", times=1, retry_after=2)
        kube_api.stop_listening()
        kube_api.start_listening()
        await wait_until(lambda: fault.served == 1, "the relist throttled")
        throttled = time.monotonic()
        await wait_until(lambda: pod_lists(kube_api) > before + 1, "the relist after Retry-After", within=5.0)
        assert time.monotonic() - throttled >= 1.5  # the backoff's first step is 0.1 s


def replicas(api: KubeApi, name: str = "iris-default") -> int | None:
    found = [d for d in api.objects("deployments", "default") if d["metadata"]["name"] == name]
    return found[0]["spec"]["replicas"] if found else None


async def test_one_failing_deployment_holds_no_other_and_is_no_outage(kube_api: KubeApi, kubeconfig: Path) -> None:
    iris, wine = service(), service("wine")
    # a schedule of 3 s in all: were the revisions reconciled in batches, wine would wait for iris's retries
    api = make_api(kubeconfig, schedule=(1.0, 1.0, 1.0))
    kube = KubernetesBackend(api, watch_timeout=2, watch_min_interval=0.2, backoff=(0.1, 0.2, 0.4))
    try:
        await kube.sync([iris, wine])
        await wait_until(lambda: replicas(kube_api) == 0 and replicas(kube_api, "wine-default") == 0, "the Deployments")
        fault = kube_api.fail("PATCH", r"/iris-default/scale$", times=1000, status=500)
        await kube.scale(iris.key("default"), 1)
        await wait_until(lambda: fault.served >= 1, "iris's scale failing")
        started = time.monotonic()
        await kube.scale(wine.key("default"), 1)
        await wait_until(lambda: replicas(kube_api, "wine-default") == 1, "wine scaled meanwhile", within=2.0)
        assert time.monotonic() - started < 1.0
        assert kube.health() is None and kube.adoption(wine.key("default")) is None  # not an outage
        await wait_until(lambda: kube.status(iris.key("default")).state == "failed", "iris's failure said")
        assert "iris-default (scale): 500" in (kube.status(iris.key("default")).message or "")
        kube_api.emulator.faults.clear()
        await wait_until(lambda: replicas(kube_api) == 1, "iris scaled once its PATCH gets through", within=15.0)
        await wait_until(lambda: kube.status(iris.key("default")).state != "failed", "iris's failure gone")
    finally:
        await kube.close()


async def test_replicas_changed_by_someone_else_are_set_back(
    cluster: Cluster, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:  # resync every 300 s: the pods' change must tell
        await kube.sync([spec])
        await kube.scale(key, 1)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 1, "one ready pod", within=20)
        apps = kubernetes.client.AppsV1Api(kube_client)
        patch = [{"op": "add", "path": "/spec/replicas", "value": 0}]
        await asyncio.to_thread(apps.patch_namespaced_deployment_scale, "iris-default", "default", patch)
        await wait_until(lambda: not kube.ready_endpoints(key), "the pod gone (someone scaled to 0)", within=20)
        await wait_until(lambda: replicas(cluster.api) == 1, "the replicas set back", within=5)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 1, "a ready pod again", within=20)


async def test_a_new_deployment_is_made_at_the_first_wish_in_one_write(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        assert kube.adoption(key) is None  # seen absent: the autoscaler's initial scale applies
        await wait_until(lambda: not kube._reconciler.dirty, "the worker at the revision before any wish")
        await kube.scale(key, 2)  # the autoscaler's first wish: the initial scale
        await wait_until(lambda: replicas(kube_api) == 2, "the Deployment")
        made = [r for r in kube_api.requests() if r.method == "POST" and r.url.endswith("/deployments")]
        scaled = [r for r in kube_api.requests() if r.method == "PATCH" and "/iris-default" in r.url]
        assert len(made) == 1 and not scaled


async def test_a_new_deployment_nobody_scales_is_made_at_zero(kube_api: KubeApi, kubeconfig: Path) -> None:
    async with backend(kubeconfig) as kube:
        await kube.sync([service()])
        await wait_until(lambda: replicas(kube_api) == 0, "the Deployment made after the grace", within=5)


async def test_while_requests_hang_the_api_is_said_not_answering(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:  # read timeout 5 s: "not answering" once a request waited that long
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0 and settled(kube), "the Deployment made")
        assert kube.health() is None
        hang = kube_api.stall(None, r".*", times=10000, seconds=60.0)
        await kube.scale(key, 1)  # a PATCH that hangs
        await wait_until(lambda: kube.health() is not None, "the hang said", within=8)
        health = kube.health() or ""
        assert "not answering" in health and re.search(r"a request has waited \d+ s", health), health
        assert kube.status(key).state == "unreachable" and "not answering" in (kube.status(key).message or "")
        for _ in range(10):  # through the requests' timeouts and retries: said all along (later as timed out), no flapping
            await asyncio.sleep(0.5)  # kept: sampled over 5 s of retries, the state must never flap back to healthy
            assert kube.health() is not None
        kube_api.emulator.faults.clear()
        assert hang.served >= 1
        await wait_until(lambda: replicas(kube_api) == 1, "the scale once the API answers", within=30)
        await wait_until(lambda: kube.health() is None, "well again", within=30)
        started = time.monotonic()
    assert time.monotonic() - started < 3.0


async def test_closing_does_not_wait_for_requests_stuck_on_a_hung_api(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0 and settled(kube), "the Deployment made")
        kube_api.stall(None, r".*", times=10000, seconds=60.0)
        kube_api.stop_listening()  # the watches' streams cut: their relists hang too
        kube_api.start_listening()
        await kube.scale(spec.key("default"), 1)
        await wait_until(lambda: pod_lists(kube_api) >= 2, "the pod watch's relist hanging")
        await wait_until(lambda: kube.api.waited() > 0.5, "requests hanging")
        started = time.monotonic()
    assert time.monotonic() - started < 3.0  # the watches' threads and the API's are not waited for


def test_the_api_pools_threads_are_daemons_and_shutdown_cancels_what_waits() -> None:
    pool = DaemonPool(1, "test")
    gate, started = threading.Event(), threading.Event()

    def first_job() -> bool:
        started.set()
        return gate.wait(10)

    first = pool.submit(first_job)
    second = pool.submit(lambda: 42)
    assert started.wait(5)
    assert all(thread.daemon for thread in threading.enumerate() if thread.name.startswith("test-"))
    pool.shutdown(wait=False, cancel_futures=True)
    assert second.cancelled()
    gate.set()
    assert first.result(5) is True
