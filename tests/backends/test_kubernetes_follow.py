"""Two gateways on one API, one leading: only the leader writes (creates, patches, scales, deletes); the
follower routes, looks and records wishes; leadership moves with a fresh look and no stray write.

Each backend's client has its own User-Agent, so the emulator's request log says who sent what.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.backends.base import RevisionStatus
from tests.backends.kube_support import Heard, backend, sent_by, service, settled, writes_by
from tests.backends.kube_support import kube_api as make_api
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e

LEADER, FOLLOWER = "gateway-leader/1", "gateway-follower/1"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
SCALE = f"{DEPLOYMENTS}/iris-default/scale"


def replicas(api: KubeApi, name: str = "iris-default") -> int | None:
    found = [d for d in api.objects("deployments", "default") if d["metadata"]["name"] == name]
    return found[0]["spec"]["replicas"] if found else None


def lists(api: KubeApi, agent: str) -> int:
    """Listings of the namespace's Deployments `agent` sent (its first looks and its resyncs)."""
    return sum(1 for method, url in sent_by(api, agent) if method == "GET" and url.split("?")[0] == DEPLOYMENTS)


def reads(api: KubeApi, agent: str, name: str) -> int:
    return sum(1 for method, url in sent_by(api, agent) if method == "GET" and url.split("?")[0] == f"{DEPLOYMENTS}/{name}")


async def test_the_leader_makes_and_scales_the_deployment_once_and_the_follower_writes_nothing(
    kube_api: KubeApi, kubeconfig: Path
) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig, agent=FOLLOWER) as follower, backend(kubeconfig, agent=LEADER) as leader:
        follower.set_actuating(False)
        assert leader.actuating and not follower.actuating
        await follower.sync([spec])  # before the leader: the Deployment is not there
        assert follower.adoption(key) is None  # looked at as a leader would: seen absent
        status = follower.status(key)
        assert status.state == "pending" and "the leading gateway makes it" in (status.message or "")
        assert follower.observed_replicas(key) is None
        await follower.scale(key, 2)  # its autoscaler's wish: kept, not sent
        await leader.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0, "the leader's Deployment, made at 0 (nobody asked it for more)")
        await wait_until(lambda: follower.observed_replicas(key) == 0, "the follower's next look", within=20)
        assert follower.status(key) == RevisionStatus(0, 0)  # what runs, not "scaling" to its unsent 2
        for n in (2, 3):
            await leader.scale(key, n)
            await follower.scale(key, n)
            await wait_until(lambda n=n: replicas(kube_api) == n, f"{n} replicas")  # type: ignore[misc]
        await wait_until(lambda: settled(leader) and settled(follower), "both idle")
        assert writes_by(kube_api, LEADER) == [("POST", DEPLOYMENTS), ("PATCH", SCALE), ("PATCH", SCALE)]
        assert writes_by(kube_api, FOLLOWER) == []
        # no pod told the follower of the scaling (the emulator runs none here): its Deployment watch did
        await wait_until(lambda: follower.observed_replicas(key) == 3, "the follower sees the leader's scaling")
        assert leader.observed_replicas(key) == 3 and writes_by(kube_api, FOLLOWER) == []

        listed = lists(kube_api, FOLLOWER)
        leader.set_actuating(False)
        follower.set_actuating(True)
        await wait_until(lambda: not follower._reconciler._resync_wanted and settled(follower), "the new leader's resync")
        assert lists(kube_api, FOLLOWER) > listed  # it read what runs before acting
        assert follower.observed_replicas(key) == 3
        assert writes_by(kube_api, FOLLOWER) == []  # its wish, 3, is what runs: nothing to send
        await leader.scale(key, 7)  # the old leader's autoscaler: recorded, not sent
        await follower.scale(key, 4)
        await wait_until(lambda: replicas(kube_api) == 4, "the new leader's scale")
        await wait_until(lambda: settled(leader) and settled(follower), "both idle")
        assert writes_by(kube_api, FOLLOWER) == [("PATCH", SCALE)]
        assert len(writes_by(kube_api, LEADER)) == 3  # nothing more
        # the old leader shows what runs (its Deployment watch saw the new leader's 4), not its wish of 7
        await wait_until(lambda: leader.status(key).desired == 4, "the old leader shows what runs")


async def test_a_follower_routes_shows_what_runs_and_sends_its_own_wish_once_it_leads(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    heard = Heard()
    async with backend(kubeconfig, agent=FOLLOWER) as follower, backend(kubeconfig, agent=LEADER) as leader:
        follower.set_actuating(False)
        follower.watch(heard)
        await leader.sync([spec])
        await follower.sync([spec])
        await leader.scale(key, 1)
        await follower.scale(key, 2)  # the follower's autoscaler thinks otherwise: it sends nothing
        await wait_until(lambda: len(follower.ready_endpoints(key)) == 1, "the follower routes to the pod", within=30)
        assert follower.ready_endpoints(key) == leader.ready_endpoints(key) == heard.last(key)
        assert {ep.host for ep in follower.ready_endpoints(key)} == {
            p["status"]["podIP"] for p in cluster.ready_pods("iris-default")
        }
        await wait_until(lambda: follower.observed_replicas(key) == 1, "the follower's look once the pod came")
        await wait_until(lambda: settled(leader) and settled(follower), "both idle")
        assert follower.status(key) == RevisionStatus(1, 1)  # what runs, not "scaling" to 2
        assert writes_by(cluster.api, FOLLOWER) == []
        before = writes_by(cluster.api, LEADER)
        assert [w for w in before if w[0] == "POST"] == [("POST", DEPLOYMENTS)]

        leader.set_actuating(False)
        follower.set_actuating(True)
        await leader.scale(key, 0)  # the old leader's autoscaler, still running: nothing sent
        await wait_until(lambda: len(follower.ready_endpoints(key)) == 2, "the new leader's wish, 2", within=30)
        await wait_until(lambda: len(leader.ready_endpoints(key)) == 2, "the old leader routes to both pods")
        await wait_until(lambda: leader.observed_replicas(key) == 2, "the old leader sees the new count")
        await wait_until(lambda: settled(leader) and settled(follower), "both idle")
        assert writes_by(cluster.api, FOLLOWER) == [("PATCH", SCALE)]
        assert writes_by(cluster.api, LEADER) == before
        assert replicas(cluster.api) == 2


class HeldRetry:
    """The API client's wait between two tries of a call, held until the test ends: a retry never comes."""

    def __init__(self) -> None:
        self.waiting = 0
        self._never = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waiting += 1
        await self._never.wait()


async def test_leadership_lost_mid_reconcile_stops_the_writes_and_won_back_sends_the_last_wish(
    kube_api: KubeApi, kubeconfig: Path
) -> None:
    spec = service()
    key = spec.key("default")
    held = HeldRetry()
    async with backend(kubeconfig, api=make_api(kubeconfig, agent=LEADER, sleep=held)) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0, "the Deployment")
        fault = kube_api.fail("PATCH", r"/deployments/iris-default/scale$", times=100, status=500)
        await kube.scale(key, 2)
        await wait_until(lambda: held.waiting == 1, "the scale's PATCH refused, its retry waiting")
        kube.set_actuating(False)
        await wait_until(lambda: not kube._reconciler._resync_wanted and settled(kube), "the reconcile cancelled, a look done")
        assert fault.served == 1 and writes_by(kube_api, LEADER)[-1:] == [("PATCH", SCALE)]
        assert kube.observed_replicas(key) == 0
        assert kube.status(key) == RevisionStatus(0, 0)  # a follower: what runs
        await kube.scale(key, 5)  # kept for when it leads again
        assert settled(kube)
        kube_api.emulator.faults.clear()
        writes = len(writes_by(kube_api, LEADER))
        listed = lists(kube_api, LEADER)
        kube.set_actuating(True)
        await wait_until(lambda: replicas(kube_api) == 5, "the wish kept while following, sent")
        await wait_until(lambda: settled(kube), "idle")
        assert writes_by(kube_api, LEADER)[writes:] == [("PATCH", SCALE)]
        assert lists(kube_api, LEADER) > listed
        assert held.waiting == 1
    bodies = [r.data for r in kube_api.requests() if r.method == "PATCH" and r.url == SCALE]
    assert bodies[-1] == [{"op": "add", "path": "/spec/replicas", "value": 5}]


async def test_a_removed_revision_is_deleted_by_the_leader_only(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service(canary=20)
    canary = spec.key("canary")
    async with backend(kubeconfig, agent=FOLLOWER) as follower, backend(kubeconfig, agent=LEADER) as leader:
        follower.set_actuating(False)
        await leader.sync([spec])
        await follower.sync([spec])
        await wait_until(lambda: replicas(kube_api, "iris-canary") == 0 == replicas(kube_api), "both Deployments")
        read = reads(kube_api, FOLLOWER, "iris-canary")
        await follower.sync([service()])  # the canary leaves the follower's config first
        await wait_until(lambda: reads(kube_api, FOLLOWER, "iris-canary") > read and settled(follower), "the follower's look")
        assert canary in follower._revisions  # kept while its Deployment is there: should it lead, it deletes it
        assert follower.status(canary).desired == 0
        await leader.sync([service()])
        await wait_until(lambda: replicas(kube_api, "iris-canary") is None, "the canary's Deployment deleted by the leader")
        await wait_until(lambda: canary not in follower._revisions, "the follower forgets it once it is gone", within=20)
        assert replicas(kube_api) == 0
    assert writes_by(kube_api, FOLLOWER) == []
    assert [w for w in writes_by(kube_api, LEADER) if w[0] == "DELETE"] == [("DELETE", f"{DEPLOYMENTS}/iris-canary")]


async def test_a_follower_that_leads_deletes_what_the_dead_leader_left(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service(canary=20)
    canary = spec.key("canary")
    async with backend(kubeconfig, agent=FOLLOWER) as follower:
        follower.set_actuating(False)
        await follower.sync([spec])
        async with backend(kubeconfig, agent=LEADER) as leader:
            await leader.sync([spec])
            await wait_until(lambda: replicas(kube_api, "iris-canary") == 0 == replicas(kube_api), "both Deployments")
        # the leader is gone; the canary leaves the config
        read = reads(kube_api, FOLLOWER, "iris-canary")
        await follower.sync([service()])
        await wait_until(lambda: reads(kube_api, FOLLOWER, "iris-canary") > read and settled(follower), "the follower's look")
        assert canary in follower._revisions and replicas(kube_api, "iris-canary") == 0
        follower.set_actuating(True)  # elected
        await wait_until(lambda: replicas(kube_api, "iris-canary") is None, "the canary deleted by the new leader")
        await wait_until(lambda: canary not in follower._revisions, "and forgotten")
        assert replicas(kube_api) == 0
    assert writes_by(kube_api, FOLLOWER) == [("DELETE", f"{DEPLOYMENTS}/iris-canary")]


async def test_switching_to_the_same_mode_changes_nothing(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    async with backend(kubeconfig, agent=LEADER) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0 and settled(kube), "the Deployment")
        listed = lists(kube_api, LEADER)
        kube.set_actuating(True)  # already leading: no resync, nothing cancelled
        assert kube.actuating and not kube._reconciler._resync_wanted
        await kube.scale(spec.key("default"), 1)
        await wait_until(lambda: replicas(kube_api) == 1 and settled(kube), "scaled")
        assert lists(kube_api, LEADER) == listed


async def test_a_leader_whose_lease_lapsed_writes_nothing_until_it_is_valid_again(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    lease = {"valid": True}
    async with backend(kubeconfig, agent=LEADER) as leader:
        leader.set_fence(lambda: lease["valid"])
        await leader.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0 and settled(leader), "the Deployment")
        lease["valid"] = False  # paused past its lease (it has not heard yet that it lost it): no write at all
        await leader.scale(key, 3)
        await wait_until(lambda: settled(leader), "the reconcile done without writing")
        await asyncio.sleep(1.2)  # kept: the subject is that nothing is written in this while (two fence retries)
        assert writes_by(kube_api, LEADER) == [("POST", DEPLOYMENTS)] and replicas(kube_api) == 0
        lease["valid"] = True  # renewed: the wish kept meanwhile is sent
        await wait_until(lambda: replicas(kube_api) == 3, "the wish sent once the lease is valid again", within=5)
        assert writes_by(kube_api, LEADER) == [("POST", DEPLOYMENTS), ("PATCH", SCALE)]


async def test_a_write_waiting_out_a_retry_after_is_not_sent_again_once_the_lease_has_ended(
    kube_api: KubeApi, kubeconfig: Path
) -> None:
    """The fence is asked before every attempt of a write, not only before the first: a leader cut off from its
    lease while it waits out a 429's Retry-After sends no retry (a new leader may have scaled meanwhile)."""
    spec = service()
    key = spec.key("default")
    lease = {"valid": True}
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the API client's wait between attempts: the lease ends during it
        waits.append(seconds)
        lease["valid"] = False
        await asyncio.sleep(0)

    client = make_api(kubeconfig, agent=LEADER, sleep=sleep)
    async with backend(kubeconfig, api=client) as leader:
        leader.set_fence(lambda: lease["valid"])
        await leader.sync([spec])
        await wait_until(lambda: replicas(kube_api) == 0 and settled(leader), "the Deployment")
        kube_api.throttle("PATCH", r"/scale$", retry_after=12)
        await leader.scale(key, 3)
        await wait_until(lambda: waits == [12.0] and settled(leader), "the 429 waited out, the write abandoned")
        assert writes_by(kube_api, LEADER) == [("POST", DEPLOYMENTS), ("PATCH", SCALE)]  # the throttled one only
        assert replicas(kube_api) == 0
        assert leader.status(key).state != "failed" and leader._revisions[key].error is None  # abandoned, not failed
        lease["valid"] = True  # renewed: decided again and sent
        await wait_until(lambda: replicas(kube_api) == 3, "the wish sent once the lease is valid again", within=5)
        assert writes_by(kube_api, LEADER) == [("POST", DEPLOYMENTS), ("PATCH", SCALE), ("PATCH", SCALE)]
