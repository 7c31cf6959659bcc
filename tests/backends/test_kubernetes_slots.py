"""The pods' numbers (gateway/slots.py) on the kubernetes backend: with several data planes a pod is routed to only
once the leader numbered it; the leader gives each pod the lowest free number, fenced, only while leading and only
with several planes; while any replica is wanted there are at least ceil(planes / cc) of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from gateway import slots
from gateway.backends.deployment import managed_labels
from gateway.backends.kube_pods import PodIndex, pod_number
from gateway.backends.kube_slots import DELETION_COST, covering, number_patch
from gateway.config.model import ScalingSpec
from gateway.types import Endpoint, RevisionKey
from tests.backends.kube_support import backend, service, writes_by
from tests.backends.kube_support import kube_api as make_api
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
kube_client = kube_fixtures.kube_client

KEY = RevisionKey("default", "iris", "default")
LEADER, FOLLOWER = "gateway-leader/1", "gateway-follower/1"
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(autouse=True)
def forget_numbers() -> Iterator[None]:
    yield
    for n in range(1, 10):
        slots.forget(Endpoint(f"127.0.5.{n}", 8080))


def pod(name: str, ip: str = "127.0.5.1", *, number: object = None, ready: bool = True, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "labels": managed_labels(KEY),
        "resourceVersion": "1",
        **meta,
    }
    if number is not None:
        metadata["annotations"] = {slots.SLOT_ANNOTATION: number}
    status = {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"metadata": metadata, "status": status}


# -- the index --------------------------------------------------------------------------------------
def test_with_one_plane_a_ready_pod_is_routed_to_at_once_numbered_or_not() -> None:
    index = PodIndex(lambda key: 8080)
    assert index.reset("default", [pod("a")]) == {KEY}
    assert index.endpoints(KEY) == {Endpoint("127.0.5.1", 8080)}
    assert index.take_notices() == [(KEY, frozenset({Endpoint("127.0.5.1", 8080)}))]
    assert slots.number_of(Endpoint("127.0.5.1", 8080)) is None  # CRC-32, as before


def test_with_several_planes_a_pod_is_routed_to_only_once_its_number_is_known() -> None:
    planes = [2]
    index = PodIndex(lambda key: 8080, lambda: planes[0])
    a, b = Endpoint("127.0.5.1", 8080), Endpoint("127.0.5.2", 8080)
    index.reset("default", [pod("a"), pod("b", "127.0.5.2", number="1")])
    assert index.endpoints(KEY) == {b} and slots.number_of(b) == 1
    assert index.waiting(KEY) == 1
    assert index.changed(index.apply("MODIFIED", pod("a", number="0"), "default")) == [KEY]
    assert index.endpoints(KEY) == {a, b} and slots.number_of(a) == 0 and index.waiting(KEY) == 0
    assert index.changed(index.apply("DELETED", pod("b", "127.0.5.2", number="1"), "default")) == [KEY]
    assert slots.number_of(b) is None  # forgotten with its pod


@pytest.mark.parametrize("bad", ["-1", "one", "1.0", "12345678", ""])
def test_a_pod_whose_annotation_is_not_a_number_waits_for_one(bad: str) -> None:
    index = PodIndex(lambda key: 8080, lambda: 2)
    assert pod_number(pod("a", number=bad)) is None
    index.reset("default", [pod("a", number=bad)])
    assert index.endpoints(KEY) == frozenset() and index.waiting(KEY) == 1


def test_a_renumbered_pod_leaves_its_set_before_it_comes_back_under_its_new_number() -> None:
    index = PodIndex(lambda key: 8080, lambda: 2)
    a, b = Endpoint("127.0.5.1", 8080), Endpoint("127.0.5.2", 8080)
    index.reset("default", [pod("a", number="0"), pod("b", "127.0.5.2", number="1")])
    index.take_notices()
    seen: list[int | None] = []
    index.changed(index.apply("MODIFIED", pod("a", number="2"), "default"))
    for _, endpoints in index.take_notices():
        seen.append(slots.number_of(a) if a in endpoints else None)
    assert seen == [None, 2]  # out first, then in again under 2: never divided by two numbers at once
    assert index.endpoints(KEY) == {a, b}


def test_the_ready_sets_follow_the_number_of_planes_crossing_one() -> None:
    planes = [1]
    index = PodIndex(lambda key: 8080, lambda: planes[0])
    a = Endpoint("127.0.5.1", 8080)
    index.reset("default", [pod("a")])
    assert index.endpoints(KEY) == {a}
    assert index.regate() == []  # nothing changed
    planes[0] = 2
    assert index.regate() == [KEY] and index.endpoints(KEY) == frozenset()
    planes[0] = 3
    assert index.regate() == []
    planes[0] = 1
    assert index.regate() == [KEY] and index.endpoints(KEY) == {a}


def test_a_pod_left_unnumbered_past_the_grace_is_routed_to_by_its_address_until_numbered() -> None:
    """The leader cannot number (RBAC without patch on pods, Redis away): after `grace` the pod serves as before
    numbers existed (divided by its address, the same in every plane) rather than not at all."""
    now = [100.0]
    index = PodIndex(lambda key: 8080, lambda: 2, grace=10.0, clock=lambda: now[0])
    a = Endpoint("127.0.5.1", 8080)
    index.reset("default", [pod("a", ready=False)])
    now[0] = 105.0
    index.changed(index.apply("MODIFIED", pod("a"), "default"))  # ready from 105
    assert index.endpoints(KEY) == frozenset() and index.waiting(KEY) == 1
    now[0] = 114.9
    index.changed(index.apply("MODIFIED", pod("a"), "default"))  # another event: still the same readiness
    assert index.regate() == [] and index.endpoints(KEY) == frozenset()
    now[0] = 115.0
    index.take_notices()
    assert index.regate() == [KEY] and index.endpoints(KEY) == {a}
    assert slots.number_of(a) is None and index.by_address(KEY) == 1 and index.waiting(KEY) == 0
    assert index.regate() == []
    index.take_notices()
    index.changed(index.apply("MODIFIED", pod("a", number="1"), "default"))
    notices = index.take_notices()
    assert [endpoints for _, endpoints in notices] == [frozenset(), {a}]  # by address out, numbered in
    assert slots.number_of(a) == 1 and index.by_address(KEY) == 0


def test_a_pod_ready_again_waits_its_grace_again() -> None:
    now = [0.0]
    index = PodIndex(lambda key: 8080, lambda: 2, grace=10.0, clock=lambda: now[0])
    index.reset("default", [pod("a")])
    now[0] = 9.0
    index.changed(index.apply("MODIFIED", pod("a", ready=False), "default"))
    index.changed(index.apply("MODIFIED", pod("a"), "default"))  # ready again at 9
    now[0] = 12.0
    assert index.regate() == [] and index.endpoints(KEY) == frozenset()
    now[0] = 19.0
    assert index.regate() == [KEY]


# -- how many replicas --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("wish", "cc", "max_scale", "planes", "runs"),
    [
        (1, 1, 0, 2, 2),  # one pod would serve one gateway of two
        (1, 1, 0, 3, 3),
        (1, 2, 0, 3, 2),  # ceil(3 / 2)
        (3, 1, 0, 2, 3),  # more wanted: as wanted
        (0, 1, 0, 2, 0),  # scaling to zero stays zero
        (1, 1, 1, 2, 1),  # within maxScale
        (1, 1, 0, 1, 1),  # one plane: as wanted
        (1, 0, 0, 4, 1),  # unlimited concurrency: every replica serves every plane
        (1, 4, 0, 4, 1),  # cc >= planes: every replica serves every plane
    ],
)
def test_while_any_is_wanted_every_plane_gets_a_replica(wish: int, cc: int, max_scale: int, planes: int, runs: int) -> None:
    assert covering(wish, ScalingSpec(container_concurrency=cc, max_scale=max_scale), planes) == runs
    assert covering(wish, None, planes) == wish


def test_the_numbering_patch_is_made_on_the_version_read_and_orders_scale_down() -> None:
    assert number_patch(3, "41") == {
        "metadata": {"annotations": {slots.SLOT_ANNOTATION: "3", DELETION_COST: "-3"}, "resourceVersion": "41"}
    }


# -- the leader numbers the pods (the emulated API) --------------------------------------------------
def make_pod(client: kubernetes.client.ApiClient, name: str, ip: str | None = None) -> None:
    core = kubernetes.client.CoreV1Api(client)
    body: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": managed_labels(KEY)},
        "spec": {"containers": [{"name": "c", "image": "testbed/replica:1"}]},
    }
    core.create_namespaced_pod("default", body)
    if ip is not None:
        ready = {"status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}}
        core.patch_namespaced_pod_status(name, "default", ready)


def numbers(api: KubeApi) -> dict[str, str | None]:
    return {
        p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(slots.SLOT_ANNOTATION)
        for p in api.objects("pods", "default")
    }


def patch_types(api: KubeApi, agent: str) -> list[str | None]:
    """The Content-Type of each pod PATCH `agent` sent (a plain JSON merge patch, not left to the client version)."""

    def mine() -> list[str | None]:
        return [
            r.headers.get("Content-Type")
            for r in api.emulator._requests
            if r.headers.get("User-Agent") == agent and r.method.value == "PATCH" and "/pods/" in str(r.url)
        ]

    return api.call(mine)


def pod_writes(api: KubeApi, agent: str) -> list[tuple[str, str]]:
    return [(method, url) for method, url in writes_by(api, agent) if url.startswith(PODS)]


async def test_the_leader_numbers_each_pod_lowest_free_first_and_the_follower_routes_by_the_numbers(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    spec = service()
    async with (
        backend(kubeconfig, agent=FOLLOWER, planes=lambda: 2) as follower,
        backend(kubeconfig, agent=LEADER, planes=lambda: 2) as leader,
    ):
        follower.set_actuating(False)
        await follower.sync([spec])
        await leader.sync([spec])
        make_pod(kube_client, "p-a", "127.0.5.1")
        make_pod(kube_client, "p-b")  # not ready yet: numbered all the same, so the number is there when it is
        await wait_until(lambda: set(numbers(kube_api).values()) == {"0", "1"}, "pods numbered 0 and 1")
        assert numbers(kube_api)["p-a"] == "0"  # a ready pod first
        a = Endpoint("127.0.5.1", 8080)
        await wait_until(lambda: follower.ready_endpoints(KEY) == {a}, "the follower routing to the numbered pod")
        await wait_until(lambda: leader.ready_endpoints(KEY) == {a}, "the leader routing to it too")  # its own watch
        assert slots.number_of(a) == 0
        costs = {p["metadata"]["annotations"][DELETION_COST] for p in kube_api.objects("pods", "default")}
        assert costs == {"0", "-1"}

        kubernetes.client.CoreV1Api(kube_client).delete_namespaced_pod("p-a", "default")  # unbound: gone at once
        make_pod(kube_client, "p-c", "127.0.5.3")
        await wait_until(lambda: numbers(kube_api) == {"p-b": "1", "p-c": "0"}, "the new pod in the freed place")
        await wait_until(lambda: follower.ready_endpoints(KEY) == {Endpoint("127.0.5.3", 8080)}, "the follower's set")
        assert pod_writes(kube_api, FOLLOWER) == []
        # one write per pod, and one more for a pod whose version changed under it (409: tried again on its event)
        assert {url.rsplit("/", 1)[1] for _, url in pod_writes(kube_api, LEADER)} == {"p-a", "p-b", "p-c"}
        assert set(patch_types(kube_api, LEADER)) == {"application/merge-patch+json"}
        await wait_until(lambda: leader._pods.numberer.writes == 3, "the third write's answer in")  # its event may come first


async def test_no_number_is_written_with_one_plane_by_a_follower_or_past_the_lease(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    spec = service()
    planes = [1]
    lease = [True]
    async with backend(kubeconfig, agent=LEADER, planes=lambda: planes[0]) as leader:
        leader.set_fence(lambda: lease[0])
        await leader.sync([spec])
        make_pod(kube_client, "p-a", "127.0.5.1")
        a = Endpoint("127.0.5.1", 8080)
        await wait_until(lambda: leader.ready_endpoints(KEY) == {a}, "routed at once with one plane")
        await leader._pods.numberer.number_all()
        assert numbers(kube_api) == {"p-a": None}  # one plane: no write, no number needed

        lease[0] = False  # paused past its lease: the fence holds every write back
        planes[0] = 2
        await wait_until(lambda: leader.ready_endpoints(KEY) == frozenset(), "unnumbered: out of the set with two planes")
        await leader._pods.numberer.number_all()
        assert numbers(kube_api) == {"p-a": None} and pod_writes(kube_api, LEADER) == []

        leader.set_actuating(False)
        lease[0] = True
        await leader._pods.numberer.number_all()
        assert pod_writes(kube_api, LEADER) == []  # a follower writes nothing

        leader.set_actuating(True)
        await wait_until(lambda: leader.ready_endpoints(KEY) == {a}, "numbered once leading again, and routed")
        assert numbers(kube_api) == {"p-a": "0"}


async def test_a_numbering_retried_after_a_429_is_not_sent_again_once_the_lease_has_ended(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    """Like the Deployments' writes, each attempt of a pod's numbering asks the fence: a lease that ends while the
    leader waits out a Retry-After stops the retry."""
    spec = service()
    lease = [True]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the API client's wait between attempts: the lease ends during it
        waits.append(seconds)
        lease[0] = False
        await asyncio.sleep(0)

    kube_api.throttle("PATCH", r"/pods/p-a$", retry_after=12)
    client = make_api(kubeconfig, agent=LEADER, sleep=sleep)
    async with backend(kubeconfig, api=client, planes=lambda: 2) as leader:
        leader.set_fence(lambda: lease[0])
        await leader.sync([spec])
        make_pod(kube_client, "p-a", "127.0.5.1")
        await wait_until(lambda: waits == [12.0], "the 429 waited out")
        await leader._pods.numberer.number_all()  # the fence holds it back too
        assert len(pod_writes(kube_api, LEADER)) == 1 and numbers(kube_api) == {"p-a": None}  # the throttled one only
        assert leader._pods.numberer.problem is None  # held back, not refused
        lease[0] = True
        await wait_until(lambda: numbers(kube_api) == {"p-a": "0"}, "numbered once the lease is valid again")
        assert len(pod_writes(kube_api, LEADER)) == 2


async def test_a_refused_numbering_is_said_and_tried_again(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    spec = service()
    kube_api.fail("PATCH", r"/pods/p-a$", times=4, status=403)  # RBAC without `patch` on pods (a few tries: 2 s or more)
    async with backend(kubeconfig, agent=LEADER, planes=lambda: 2) as leader:
        await leader.sync([spec])
        with caplog.at_level(logging.ERROR, logger="gateway.backends.kube_slots"):
            make_pod(kube_client, "p-a", "127.0.5.1")
            await wait_until(lambda: leader._pods.numberer.problem is not None, "the refusal noted")
        assert "403" in (leader._pods.numberer.problem or "")
        assert "cannot number the pods" in caplog.text
        assert leader.ready_endpoints(KEY) == frozenset()
        await wait_until(lambda: "403" in (leader.status(KEY).message or ""), "the status saying why")
        assert "1 ready pod(s) not routed to yet" in (leader.status(KEY).message or "")
        await wait_until(lambda: numbers(kube_api) == {"p-a": "0"}, "numbered once the API lets it", within=10)
        await wait_until(lambda: leader._pods.numberer.problem is None, "the problem cleared")
        assert leader.ready_endpoints(KEY) == {Endpoint("127.0.5.1", 8080)}
        assert "not routed" not in (leader.status(KEY).message or "")


async def test_the_leader_runs_enough_replicas_for_every_plane(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    spec = spec.__class__(
        spec.name, spec.namespace, spec.default, scaling=ScalingSpec(container_concurrency=1, max_scale=5)
    ).digested()
    planes = [2]
    async with backend(kubeconfig, agent=LEADER, planes=lambda: planes[0]) as leader:
        await leader.sync([spec])
        await leader.scale(KEY, 1)
        await wait_until(lambda: _replicas(kube_api) == 2, "2 replicas for 2 planes and containerConcurrency 1")
        planes[0] = 3  # another gateway joined: one more, without the autoscaler asking again
        await wait_until(lambda: _replicas(kube_api) == 3, "3 replicas for 3 planes", within=10)
        await leader.scale(KEY, 0)
        await wait_until(lambda: _replicas(kube_api) == 0, "zero stays zero")


def _replicas(api: KubeApi) -> int | None:
    found = api.objects("deployments", "default")
    return found[0]["spec"]["replicas"] if found else None


async def test_a_new_leader_keeps_the_numbers_on_the_pods(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    spec = service()
    async with backend(kubeconfig, agent=LEADER, planes=lambda: 2) as old:
        await old.sync([spec])
        make_pod(kube_client, "p-a", "127.0.5.1")
        make_pod(kube_client, "p-b", "127.0.5.2")
        await wait_until(lambda: numbers(kube_api) == {"p-a": "0", "p-b": "1"}, "numbered by the first leader")
    async with backend(kubeconfig, agent=FOLLOWER, planes=lambda: 2) as new:  # leads from its start
        await new.sync([spec])
        make_pod(kube_client, "p-c", "127.0.5.3")
        await wait_until(lambda: numbers(kube_api).get("p-c") == "2", "the next number, after the ones on the pods")
        await wait_until(lambda: len(new.ready_endpoints(KEY)) == 3, "all three routed")
        assert numbers(kube_api) == {"p-a": "0", "p-b": "1", "p-c": "2"}
        # the numbers on p-a and p-b are kept: the new leader writes p-c's only (twice when the kubelet's Ready changed
        # p-c's version under the first write: a 409, tried again on its event, as in the test above)
        written = [url.rsplit("/", 1)[1] for _, url in pod_writes(kube_api, FOLLOWER)]
        assert set(written) == {"p-c"} and len(written) <= 2, written
