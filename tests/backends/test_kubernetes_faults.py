"""API errors survived: 500, 429 with Retry-After, 410 on a watch, connection refused, a watch answered
with a list, a request the API refuses; and the plain emulator (no selectors, no resourceVersion)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest

from tests.backends.kube_support import FAST, backend, service, settled
from tests.backends.kube_support import kube_api as make_api
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.kube.faults import Fault
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e

SCALE = r"/deployments/iris-default/scale$"


def replicas(api: KubeApi, name: str = "iris-default") -> int | None:
    found = [d for d in api.objects("deployments", "default") if d["metadata"]["name"] == name]
    return found[0]["spec"]["replicas"] if found else None


def watches(api: KubeApi) -> int:
    return sum(1 for r in api.requests() if r.method == "GET" and "/pods?" in r.url and "watch=true" in r.url)


async def test_a_500_is_retried(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0, "the Deployment")
        fault = kube_api.fail("PATCH", SCALE, times=2, status=500)
        await kube.scale(spec.key("default"), 2)
        await wait_until(lambda: replicas(kube_api) == 2, "2 replicas after two 500s")
        await wait_until(lambda: kube.health() is None, "the API well again once the PATCH got through")
        assert fault.served == 2


async def test_a_429_waits_for_retry_after(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0, "the Deployment")
        fault = kube_api.throttle("PATCH", SCALE, times=1, retry_after=1)
        started = time.monotonic()
        await kube.scale(spec.key("default"), 2)
        await wait_until(lambda: replicas(kube_api) == 2, "2 replicas after a 429")
        assert fault.served == 1 and time.monotonic() - started >= 0.9  # the schedule's first step is 0.05 s


@pytest.mark.parametrize("retry_after", [0, -5])
async def test_a_retry_after_never_shortens_a_write_s_wait_below_the_schedule(
    kube_api: KubeApi, kubeconfig: Path, retry_after: int
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    spec = service()
    async with backend(kubeconfig, api=make_api(kubeconfig, sleep=sleep)) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0, "the Deployment")
        kube_api.throttle("PATCH", SCALE, times=2, retry_after=retry_after)
        await kube.scale(spec.key("default"), 2)
        await wait_until(lambda: replicas(kube_api) == 2, "2 replicas after two 429s")
        assert waits == list(FAST[:2])  # the schedule's steps, not Retry-After's 0


def pod_gets(api: KubeApi) -> int:
    return sum(1 for r in api.requests() if r.method == "GET" and "/pods" in r.url)


@pytest.mark.parametrize(("status", "retry_after"), [(429, 0), (429, -5), (503, 0)])
async def test_a_retry_after_of_zero_or_less_does_not_make_the_pod_watch_spin(
    kube_api: KubeApi, kubeconfig: Path, caplog: pytest.LogCaptureFixture, status: int, retry_after: int
) -> None:
    kube_api.emulator.faults.add(Fault("GET", re.compile(r"/pods"), None, 10**6, "status", status, retry_after))
    with caplog.at_level(logging.DEBUG, logger="gateway.backends.kube_watch"):
        async with backend(kubeconfig, first_list_timeout=0.2) as kube:  # backoff 0.1, 0.2, 0.4; min_interval 0.2
            await kube.sync([service()])
            await wait_until(lambda: pod_gets(kube_api) >= 2, "the list retried")
            before = pod_gets(kube_api)
            await asyncio.sleep(2.0)  # kept: the subject is how many requests this while sees
            during = pod_gets(kube_api) - before
    assert 1 <= during <= 8  # one every 0.4 s at most (it spun at hundreds a second)
    said = [r for r in caplog.records if r.levelno >= logging.INFO and "retrying" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING  # the first failure, then debug


async def test_relists_are_min_interval_apart_even_with_no_backoff(kube_api: KubeApi, kubeconfig: Path) -> None:
    kube_api.emulator.faults.add(Fault("GET", re.compile(r"/pods"), None, 10**6, "status", 500, 0))
    async with backend(kubeconfig, first_list_timeout=0.2, backoff=(0.0,), watch_min_interval=0.25) as kube:
        await kube.sync([service()])
        await wait_until(lambda: pod_gets(kube_api) >= 2, "the list retried")
        before = pod_gets(kube_api)
        await asyncio.sleep(2.0)  # kept: the subject is how many requests this while sees
        assert 1 <= pod_gets(kube_api) - before <= 10  # one list every 0.25 s at most


async def test_a_request_that_times_out_is_retried(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    async with backend(kubeconfig, request_timeout=(1.0, 0.5)) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0, "the Deployment")
        fault = kube_api.stall("PATCH", SCALE, times=1, seconds=5.0)
        started = time.monotonic()
        await kube.scale(spec.key("default"), 2)
        await wait_until(lambda: replicas(kube_api) == 2, "2 replicas after a stalled PATCH")
        assert fault.served == 1 and time.monotonic() - started < 4.0  # retried, not waited out


async def test_a_request_the_api_refuses_is_a_clear_error_naming_the_object(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0 and settled(kube), "the Deployment, its creation done")
        kube_api.fail("PATCH", SCALE, times=1, status=403)
        await kube.scale(key, 2)
        await wait_until(lambda: kube.status(key).state == "failed", "the refusal in the status")
        assert kube.status(key).message == "Deployment default/iris-default (scale): 403 injected fault: 403"
        await kube.scale(key, 3)  # the next wish goes through
        await wait_until(lambda: replicas(kube_api) == 3, "3 replicas")
        await wait_until(lambda: kube.status(key).state == "ok", "the refusal cleared by the next success")


async def test_410_gone_on_the_watch_relists(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        watch = kube._pods.watches["default"]
        lists = watch.lists
        cluster.api.expire_watches(r"/pods$", times=1)
        await wait_until(lambda: watch.lists > lists, "a relist after 410 Gone")
        await kube.scale(key, 1)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 1, "a ready pod after the relist", within=30)


async def test_a_watch_answered_with_a_list_does_not_spin(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig, watch_min_interval=0.2) as kube:
        await kube.sync([spec])
        before = watches(cluster.api)
        cluster.api.answer_watches_with_list(r"/pods$", times=3)
        started = time.monotonic()
        await wait_until(lambda: watches(cluster.api) >= before + 4, "the watch back after three lists", within=15)
        assert time.monotonic() - started >= 0.3  # backed off between them, no tight loop
        await kube.scale(key, 1)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 1, "a ready pod", within=30)
        assert watches(cluster.api) - before < 20


async def test_connection_refused_keeps_endpoints_pauses_scaling_and_resyncs(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await kube.scale(key, 2)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 2, "2 ready pods", within=30)
        known = kube.ready_endpoints(key)
        assert kube.adoption(key) is None
        cluster.api.stop_listening()
        try:
            await kube.scale(key, 3)  # recorded; cannot be applied
            await wait_until(lambda: kube.health() is not None, "the outage noticed")
            assert "unreachable" in (kube.health() or "")
            assert kube.ready_endpoints(key) == known  # the last known endpoints keep serving
            assert kube.adoption(key) == "unknown"  # the autoscaler pauses
            status = kube.status(key)
            assert status.state == "unreachable" and "scaling paused" in (status.message or "")
        finally:
            cluster.api.start_listening()
        await wait_until(lambda: kube.health() is None, "the API back", within=20)
        await wait_until(lambda: replicas(cluster.api) == 3, "the wish applied after the outage", within=20)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 3, "3 ready pods", within=30)
        assert kube.adoption(key) is None


@pytest.mark.parametrize("kube_api", ["unwrapped"], indirect=True)
async def test_the_plain_emulator_works_too(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service(canary=30)
    default, canary = spec.key("default"), spec.key("canary")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await kube.scale(default, 2)
        await kube.scale(canary, 1)
        await wait_until(lambda: len(kube.ready_endpoints(default)) == 2, "2 default pods", within=30)
        await wait_until(lambda: len(kube.ready_endpoints(canary)) == 1, "1 canary pod", within=30)
        assert not kube.ready_endpoints(default) & kube.ready_endpoints(canary)
        (pod,) = cluster.ready_pods("iris-canary")
        cluster.delete_pod(pod["metadata"]["name"])
        gone = pod["status"]["podIP"]
        await wait_until(lambda: all(ep.host != gone for ep in kube.ready_endpoints(canary)), "the deleted pod leaving")
        await kube.scale(default, 0)
        await wait_until(lambda: not kube.ready_endpoints(default), "default at zero", within=30)


@pytest.mark.parametrize("kube_api", ["unwrapped"], indirect=True)
async def test_a_silent_watch_is_relisted(kube_api: KubeApi, kubeconfig: Path) -> None:
    async with backend(kubeconfig, watch_timeout=1) as kube:  # the plain emulator ignores timeoutSeconds
        await kube.sync([service()])
        watch = kube._pods.watches["default"]
        lists, watches_before = watch.lists, watch.watches
        await wait_until(lambda: watch.watches >= watches_before + 2, "two reconnects after silence", within=15)
        assert watch.lists >= lists + 1 and kube.health() is None  # silence is no outage
