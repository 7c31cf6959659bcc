"""Orphans: a Deployment this installation made for a revision no longer in the config is deleted at start,
after each reload and when a gateway starts leading; nothing else is (another installation's, an older
gateway's without the owner label, one the gateway did not make), and a follower sends no write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from gateway.backends.deployment import OWNER_LABEL, build_deployment
from gateway.backends.kube_manifest import DIGEST_ANNOTATION
from gateway.config.model import GatewaySettings, KubernetesSettings
from tests.backends.kube_support import backend, service, settled, writes_by
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
kube_client = kube_fixtures.kube_client

pytestmark = pytest.mark.e2e


def make(client: kubernetes.client.ApiClient, name: str, *, owner: str | None = "serving-gateway", managed: bool = True) -> None:
    """A Deployment of service `name`'s default revision as a gateway with this owner (None: an older gateway) made it."""
    manifest = build_deployment(service(name), service(name).default, KubernetesSettings(), replicas=1)
    manifest["metadata"]["annotations"] = {DIGEST_ANNOTATION: "an-older-digest"}  # as a gateway stamps it
    labels = manifest["metadata"]["labels"]
    if owner is None:
        del labels[OWNER_LABEL]
    else:
        labels[OWNER_LABEL] = owner
    if not managed:
        del labels["app.kubernetes.io/managed-by"]
    apps: Any = kubernetes.client.AppsV1Api(client)
    apps.create_namespaced_deployment("default", manifest)


def names(api: KubeApi) -> set[str]:
    return {d["metadata"]["name"] for d in api.objects("deployments")}


def deletes(api: KubeApi) -> list[str]:
    return [r.url for r in api.requests() if r.method == "DELETE"]


@pytest.mark.parametrize("kube_api", ["wrapped", "unwrapped"], indirect=True)
async def test_at_start_only_this_installations_orphans_are_deleted(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    make(kube_client, "gone")  # ours, its revision removed while the gateway was down: deleted
    make(kube_client, "iris", owner=None)  # an older gateway's, configured: adopted (labelled)
    make(kube_client, "older", owner=None)  # an older gateway's, not configured: left alone
    make(kube_client, "theirs", owner="ml.other-gateway")  # another installation's: left alone
    make(kube_client, "hand", managed=False)  # not made by a gateway at all
    async with backend(kubeconfig) as kube:
        await kube.sync([service("iris")])
        kube.applied()
        await wait_until(lambda: "gone-default" not in names(kube_api), "the orphan deleted")
        await wait_until(lambda: settled(kube) and not kube._reconciler.sweep_wanted, "the sweep done")

        def iris_owner() -> str:
            iris = next(d for d in kube_api.objects("deployments") if d["metadata"]["name"] == "iris-default")
            return str(iris["metadata"]["labels"].get(OWNER_LABEL))

        await wait_until(lambda: iris_owner() == "serving-gateway", "the older gateway's configured Deployment adopted")
    assert names(kube_api) == {"iris-default", "older-default", "theirs-default", "hand-default"}
    assert deletes(kube_api) == ["/apis/apps/v1/namespaces/default/deployments/gone-default"]


async def test_the_owner_is_the_configured_one(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    make(kube_client, "mine", owner="team-a")
    make(kube_client, "default-owner")  # "serving-gateway": not team-a's
    settings = GatewaySettings(kubernetes=KubernetesSettings(owner="team-a"))
    async with backend(kubeconfig, settings=settings) as kube:
        await kube.sync([service("iris")])
        kube.applied()
        await wait_until(lambda: "mine-default" not in names(kube_api), "team-a's orphan deleted")
        await wait_until(lambda: "iris-default" in names(kube_api), "iris made")
        made = next(d for d in kube_api.objects("deployments") if d["metadata"]["name"] == "iris-default")
        assert made["metadata"]["labels"][OWNER_LABEL] == "team-a"
        await wait_until(lambda: not kube._reconciler.sweep_wanted, "the sweep done")
    assert "default-owner-default" in names(kube_api)


async def test_nothing_is_deleted_before_the_whole_config_is_applied(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    make(kube_client, "wine")  # in the config's second slice
    async with backend(kubeconfig) as kube:
        await kube.update([service("iris")], [])  # a start applies large configs slice by slice
        await wait_until(lambda: "iris-default" in names(kube_api), "iris made")
        await asyncio.sleep(0.3)  # a sweep would be quick: the worker had its turns (checked just below)
        assert "wine-default" in names(kube_api)
        await kube.update([service("wine")], [])
        kube.applied()
        await wait_until(lambda: not kube._reconciler.sweep_wanted, "the sweep done")
    assert {"iris-default", "wine-default"} <= names(kube_api) and deletes(kube_api) == []


async def test_a_follower_deletes_nothing_and_sweeps_once_it_leads(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    make(kube_client, "gone")
    async with backend(kubeconfig, agent="follower") as kube:
        kube.set_actuating(False)
        await kube.sync([service("iris")])
        kube.applied()
        await wait_until(lambda: settled(kube), "the follower's looks done")
        await asyncio.sleep(0.3)  # kept: a follower's delete (what must not happen) would be sent by now
        assert writes_by(kube_api, "follower") == [] and "gone-default" in names(kube_api)
        kube.set_actuating(True)  # it leads: the Deployments left while the other led are its to clean
        await wait_until(lambda: "gone-default" not in names(kube_api), "the orphan deleted by the new leader")


async def test_without_cluster_wide_rights_each_known_namespace_is_listed(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    make(kube_client, "gone")
    refused = kube_api.fail("GET", r"^/apis/apps/v1/deployments$", times=1000, status=403)
    async with backend(kubeconfig) as kube:
        await kube.sync([service("iris")])
        kube.applied()
        await wait_until(lambda: "gone-default" not in names(kube_api), "the orphan deleted")
        assert refused.served == 1 and not kube._reconciler.orphans.cluster_wide
        kube.applied()  # a reload: straight to the namespaces
        await wait_until(lambda: not kube._reconciler.sweep_wanted, "the second sweep done")
        await wait_until(lambda: settled(kube), "settled")
    assert refused.served == 1
    listed = [
        r.url
        for r in kube_api.requests()
        if r.method == "GET" and r.url.startswith("/apis/apps/v1/namespaces/default/deployments?")
    ]
    assert listed and all("labelSelector=app.kubernetes.io/managed-by%3Dserving-gateway" in url for url in listed)


async def test_a_reload_deletes_an_orphan_left_meanwhile(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    async with backend(kubeconfig) as kube:
        await kube.sync([service("iris")])
        kube.applied()
        await wait_until(lambda: "iris-default" in names(kube_api) and not kube._reconciler.sweep_wanted, "iris made")
        make(kube_client, "wine")  # made by another leader, whose config had it, while this one followed
        await kube.update([], [])  # a reload that changes nothing here
        kube.applied()
        await wait_until(lambda: "wine-default" not in names(kube_api), "the orphan deleted")


async def test_no_orphan_is_deleted_while_a_reload_applies_its_services(
    kube_api: KubeApi, kubeconfig: Path, kube_client: kubernetes.client.ApiClient
) -> None:
    async with backend(kubeconfig) as kube:
        await kube.sync([service("iris")])
        kube.applied()
        await wait_until(lambda: "iris-default" in names(kube_api) and not kube._reconciler.sweep_wanted, "iris made")
        make(kube_client, "wine")  # the reload's second slice has it (another leader made it meanwhile)
        await kube.configure(GatewaySettings())  # a reload begins
        kube.set_actuating(False)
        kube.set_actuating(True)  # leadership changes hands in the middle of it: a sweep is wanted
        await asyncio.sleep(0.5)  # the worker had its turns; a sweep would have deleted wine by now
        assert "wine-default" in names(kube_api)
        await kube.update([service("wine")], [])
        kube.applied()
        await wait_until(lambda: not kube._reconciler.sweep_wanted and settled(kube), "the sweep done")
    assert "wine-default" in names(kube_api) and deletes(kube_api) == []
