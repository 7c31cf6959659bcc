"""The kubernetes backend keeps each InferenceService's rollout record on its revisions' Deployments: a
restarted gateway (a new backend, a new API client) reads it back, so the same revisions keep their split."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.backends.kube_api import KubeApi
from gateway.backends.kube_manifest import ROLLOUT_ANNOTATION
from gateway.rollouts.kube_store import KubeRolloutStore
from gateway.rollouts.resolve import service_of
from gateway.rollouts.resolver import settle
from gateway.rollouts.stores import RolloutError
from tests.backends import kube_support
from tests.backends.kube_support import backend, revision
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.kube.server import KubeApi as ApiServer
from tests.rollouts.support import template

kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster
kube_api = kube_fixtures.kube_api

pytestmark = pytest.mark.e2e

V1 = revision("predictor", env=(("MODEL", "v1"),))
V2 = revision("predictor", env=(("MODEL", "v2"),))


def rollout_annotations(cluster: Cluster, namespace: str) -> dict[str, str]:
    """Deployment name -> its rollout annotation."""
    return {
        d["metadata"]["name"]: (d["metadata"].get("annotations") or {}).get(ROLLOUT_ANNOTATION, "")
        for d in cluster.api.objects("deployments", namespace)
    }


async def test_the_record_survives_a_backend_restart(cluster: Cluster, kubeconfig: Path) -> None:
    first_api = kube_support.kube_api(kubeconfig)
    store = KubeRolloutStore(first_api)
    async with backend(kubeconfig, api=first_api) as kube:
        v1 = template(V1, name="iris", namespace="default")
        record = (await settle(store, [v1]))[v1.ident]
        await kube.sync([service_of(v1, record)])
        v2 = template(V2, 10, name="iris", namespace="default")
        canary = (await settle(store, [v2]))[v2.ident]
        resolved = service_of(v2, canary)
        await kube.sync([resolved])
        await wait_until(
            lambda: (
                rollout_annotations(cluster, "default")
                == dict.fromkeys(["iris-predictor-00001", "iris-predictor-00002"], canary.to_json())
            ),
            "the record on both revisions' Deployments",
        )
    # a new gateway: its own API client and store, reading what the Deployments carry
    second_api = kube_support.kube_api(kubeconfig)
    try:
        again = await KubeRolloutStore(second_api).load([("default", "iris")])
        assert again == {("default", "iris"): canary}
        assert (canary.rolled_out, canary.latest, canary.percent) == (1, 2, 10)
        assert service_of(v2, again[("default", "iris")]) == resolved  # the same revisions, the same split
    finally:
        second_api.close()


async def annotate(api: KubeApi, name: str, value: str) -> None:
    """What a hand edit (or a rollout half written) leaves: the annotation of one Deployment set to `value`."""
    patch = [{"op": "add", "path": "/metadata/annotations/serving-gateway~1rollout", "value": value}]
    response = await api.call(name, api.apps.patch_namespaced_deployment, name, "default", patch, _preload_content=False)
    response.release_conn()


async def test_of_two_copies_the_newer_generation_wins_and_a_corrupt_one_is_named(cluster: Cluster, kubeconfig: Path) -> None:
    v1 = template(V1, name="iris", namespace="default")
    v2 = template(V2, 10, name="iris", namespace="default")
    async with backend(kubeconfig) as kube:
        store = KubeRolloutStore(kube.api)
        first = (await settle(store, [v1]))[v1.ident]
        second = (await settle(store, [v2]))[v2.ident]
        await kube.sync([service_of(v2, second)])
        await wait_until(
            lambda: set(rollout_annotations(cluster, "default").values()) == {second.to_json()}, "the record on both"
        )
    api = kube_support.kube_api(kubeconfig)
    try:
        await annotate(api, "iris-predictor-00001", first.to_json())  # an older copy on one of them
        assert await KubeRolloutStore(api).load([v1.ident]) == {v1.ident: second}
        await annotate(api, "iris-predictor-00002", "{broken")
        with pytest.raises(RolloutError, match=f"Deployment default/iris-predictor-00002 \\({ROLLOUT_ANNOTATION}\\) is corrupt"):
            await KubeRolloutStore(api).load([v1.ident])
    finally:
        api.close()


async def test_an_unreachable_api_is_an_error_not_a_guess(kubeconfig: Path, kube_api: ApiServer) -> None:
    kube_api.stop_listening()
    api = kube_support.kube_api(kubeconfig, timeout=(0.5, 0.5))
    try:
        with pytest.raises(RolloutError, match="cannot read the rollout records on the Deployments of namespace default"):
            await KubeRolloutStore(api).load([("default", "iris")])
    finally:
        api.close()
