"""The Deployment watch: a change made outside the gateway is undone within seconds (the resync is 300 s
away in these tests, and no pods run, so only the watch can tell): a hand-edited template is patched
back, a deleted Deployment is made again at the autoscaler's count, replicas changed by hand are set
back. The gateway's own writes cause no more writes, and a follower writes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from gateway.backends.kubernetes import KubernetesBackend
from tests.backends.kube_support import backend, service, settled, writes_by
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
kube_client = kube_fixtures.kube_client

pytestmark = pytest.mark.e2e

NAME = "iris-default"
WITHIN = 5.0  # seconds: the watch's reconnects are 0.2 s apart here; the resync would take 300


def deployment(api: KubeApi) -> dict[str, Any] | None:
    return next((d for d in api.objects("deployments", "default") if d["metadata"]["name"] == NAME), None)


def image(api: KubeApi) -> str | None:
    found = deployment(api)
    return None if found is None else str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def replicas(api: KubeApi) -> int | None:
    found = deployment(api)
    return None if found is None else int(found["spec"]["replicas"])


def apps(client: kubernetes.client.ApiClient) -> Any:
    return kubernetes.client.AppsV1Api(client)


async def running(kube: KubernetesBackend, api: KubeApi, count: int) -> None:
    spec = service()
    await kube.sync([spec])
    await kube.scale(spec.key("default"), count)
    await wait_until(lambda: replicas(api) == count, f"the Deployment at {count}")
    await wait_until(lambda: settled(kube), "the worker idle")


@pytest.mark.parametrize("kube_api", ["wrapped", "unwrapped"], indirect=True)
async def test_a_hand_edited_template_is_set_back(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    async with backend(kubeconfig) as kube:
        await running(kube, kube_api, 1)
        ours = image(kube_api)
        edit = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "someone/else:2"}]
        await asyncio.to_thread(apps(kube_client).patch_namespaced_deployment, NAME, "default", edit)
        assert image(kube_api) == "someone/else:2"
        await wait_until(lambda: image(kube_api) == ours, "the template set back", within=WITHIN)


async def test_a_deployment_stripped_of_its_annotations_is_patched_back(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    """A JSON patch cannot add a key to a map that is not there (422 "member not found"): the map is added whole."""
    field = "annotations"
    async with backend(kubeconfig) as kube:
        await running(kube, kube_api, 1)
        found = deployment(kube_api)
        assert found is not None
        ours, theirs = image(kube_api), dict(found["metadata"][field])
        edit = [
            {"op": "remove", "path": f"/metadata/{field}"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "someone/else:2"},
        ]
        await asyncio.to_thread(apps(kube_client).patch_namespaced_deployment, NAME, "default", edit)
        assert field not in (deployment(kube_api) or {})["metadata"]
        await wait_until(lambda: image(kube_api) == ours, "the template set back", within=WITHIN)
        assert (deployment(kube_api) or {})["metadata"][field] == theirs
        await wait_until(lambda: settled(kube), "the worker idle")
        assert kube.status(service().key("default")).state != "failed"


def spec_patches(api: KubeApi) -> int:
    return sum(1 for r in api.requests() if r.method == "PATCH" and r.url.split("?")[0].endswith(f"/deployments/{NAME}"))


async def test_a_patch_refused_422_is_said_and_not_sent_again_until_the_config_changes(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    key = service().key("default")
    async with backend(kubeconfig) as kube:
        await running(kube, kube_api, 1)
        kube_api.fail("PATCH", rf"/deployments/{NAME}$", times=100, status=422)
        edited = deployment(kube_api)
        assert edited is not None
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:2"  # by hand, with a PUT
        await asyncio.to_thread(apps(kube_client).replace_namespaced_deployment, NAME, "default", edited)
        await wait_until(lambda: kube._revisions[key].error is not None and settled(kube), "the refusal noted", within=WITHIN)
        assert "422" in (kube.status(key).message or "")
        assert spec_patches(kube_api) == 2  # the patch, and once more read first (a map may have been missing)
        await kube.scale(key, 2)  # another reconcile: the scale is sent, the refused patch is not
        await wait_until(lambda: replicas(kube_api) == 2 and settled(kube), "scaled")
        assert spec_patches(kube_api) == 2
        kube_api.emulator.faults.clear()
        await kube.sync([service(env=(("A", "1"),))])  # a new config: tried again
        await wait_until(lambda: image(kube_api) != "someone/else:2", "the new config's template", within=WITHIN)


@pytest.mark.parametrize("kube_api", ["wrapped", "unwrapped"], indirect=True)
async def test_a_deleted_deployment_is_made_again_at_the_autoscalers_count(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    async with backend(kubeconfig) as kube:
        await running(kube, kube_api, 2)
        await asyncio.to_thread(apps(kube_client).delete_namespaced_deployment, NAME, "default")
        await wait_until(lambda: replicas(kube_api) == 2, "made again with 2 replicas", within=WITHIN)


@pytest.mark.parametrize("kube_api", ["wrapped", "unwrapped"], indirect=True)
async def test_replicas_changed_by_hand_are_set_back_without_pods(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    async with backend(kubeconfig) as kube:
        await running(kube, kube_api, 2)
        patch = [{"op": "add", "path": "/spec/replicas", "value": 5}]
        await asyncio.to_thread(apps(kube_client).patch_namespaced_deployment_scale, NAME, "default", patch)
        await wait_until(lambda: replicas(kube_api) == 5, "the hand's scale")
        await wait_until(lambda: replicas(kube_api) == 2, "set back to the autoscaler's 2", within=WITHIN)


async def test_the_gateways_own_writes_cause_no_more_writes(kube_api: KubeApi, kubeconfig: Path) -> None:
    async with backend(kubeconfig, agent="gw") as kube:
        spec = service()
        await kube.sync([spec])
        for count in (1, 3, 2, 0):
            await kube.scale(spec.key("default"), count)
            await wait_until(lambda n=count: replicas(kube_api) == n, f"scaled to {count}")  # type: ignore[misc]
        await wait_until(lambda: settled(kube), "the worker idle")
        await asyncio.sleep(1.0)  # the watch's events of those writes come in (reconnects are 0.2 s apart)
        await wait_until(lambda: settled(kube), "the worker idle again")
        path = "/apis/apps/v1/namespaces/default/deployments"
        expected = [("POST", path)] + [("PATCH", f"{path}/{NAME}/scale")] * 3  # made at 1, scaled thrice, nothing else
        assert writes_by(kube_api, "gw") == expected
        await asyncio.sleep(1.0)  # any write the events caused would be sent by now
        assert writes_by(kube_api, "gw") == expected


async def test_a_follower_sees_the_hand_edit_and_writes_nothing(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    async with backend(kubeconfig) as leader:
        await running(leader, kube_api, 1)
    async with backend(kubeconfig, agent="follower") as follower:
        follower.set_actuating(False)
        spec = service()
        await follower.sync([spec])
        await follower.scale(spec.key("default"), 1)
        patch = [{"op": "add", "path": "/spec/replicas", "value": 4}]
        await asyncio.to_thread(apps(kube_client).patch_namespaced_deployment_scale, NAME, "default", patch)
        await wait_until(lambda: follower.observed_replicas(spec.key("default")) == 4, "the follower sees 4", within=WITHIN)
        await asyncio.to_thread(apps(kube_client).delete_namespaced_deployment, NAME, "default")
        await wait_until(
            lambda: follower.observed_replicas(spec.key("default")) is None, "the follower sees it gone", within=WITHIN
        )
        await asyncio.sleep(0.5)  # kept: what must not happen (a follower's write after the deletion) would be sent by now
        assert writes_by(kube_api, "follower") == [] and deployment(kube_api) is None
