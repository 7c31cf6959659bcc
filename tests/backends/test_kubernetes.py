"""The kubernetes backend against the test bed: Deployments made and scaled, pods routed to."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.backends import BackendConfigError, BackendContext, create_backend
from gateway.backends.deployment import build_deployment
from gateway.backends.kube_api import load_configuration, user_agent
from gateway.backends.kube_manifest import MANAGED_BY, MANAGED_BY_LABEL
from gateway.backends.kubernetes import KubernetesBackend
from gateway.config.model import KubernetesSettings, RevisionSpec, ServiceSpec
from tests.backends.kube_support import Heard, backend, sent_by, service
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e


def deployment(api: KubeApi, name: str) -> dict[str, object] | None:
    return next((d for d in api.objects("deployments", "default") if d["metadata"]["name"] == name), None)


def replicas(api: KubeApi, name: str) -> int | None:
    made = deployment(api, name)
    return None if made is None else made["spec"]["replicas"]  # type: ignore[index]


def scale_patches(api: KubeApi, name: str) -> list[tuple[str, str]]:
    return [(r.method, r.url) for r in api.requests() if r.method == "PATCH" and f"/deployments/{name}/scale" in r.url]


async def test_a_revision_gets_a_deployment_scaled_from_zero_and_back(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    heard = Heard()
    async with backend(kubeconfig) as kube:
        kube.watch(heard)
        await kube.sync([spec])
        assert kube.adoption(key) is None  # nothing to adopt: initial scale applies
        await wait_until(lambda: deployment(cluster.api, "iris-default") is not None, "the Deployment")
        made = deployment(cluster.api, "iris-default")
        assert made is not None
        labels = made["metadata"]["labels"]  # type: ignore[index]
        assert labels[MANAGED_BY_LABEL] == MANAGED_BY
        await kube.scale(key, 2)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 2, "two ready pods", within=30)
        ips = {ep.host for ep in kube.ready_endpoints(key)}
        assert ips == {p["status"]["podIP"] for p in cluster.ready_pods("iris-default")}
        assert {ep.port for ep in kube.ready_endpoints(key)} == {8080}
        assert heard.last(key) == kube.ready_endpoints(key)
        await kube.scale(key, 2)  # the same value: no request
        await kube.scale(key, 0)
        await wait_until(lambda: not kube.ready_endpoints(key), "no ready pods", within=30)
    patches = scale_patches(cluster.api, "iris-default")
    assert len(patches) == 2
    assert kube.status(key).desired == 0


async def test_the_scale_patch_is_knatives_json_patch(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await wait_until(lambda: replicas(kube_api, "iris-default") == 0, "the Deployment, made with 0 replicas")
        await kube.scale(key, 3)
        await wait_until(lambda: replicas(kube_api, "iris-default") == 3, "3 replicas")
    bodies = [r.data for r in kube_api.requests() if r.method == "PATCH" and r.url.endswith("/scale")]
    assert bodies == [[{"op": "add", "path": "/spec/replicas", "value": 3}]]


async def test_the_registry_builds_it_from_kubeconfig(kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    made = create_backend("kubernetes", BackendContext(state_dir=tmp_path))
    assert isinstance(made, KubernetesBackend) and made.api.host.startswith("http://127.0.0.1:")
    await made.close()


def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(BackendConfigError, match=r"cannot read the API configuration from kubeconfig .*nowhere.*set KUBECONFIG"):
        create_backend("kubernetes", BackendContext(state_dir=tmp_path))


def test_a_broken_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(BackendConfigError, match="cannot read the API configuration"):
        load_configuration(str(broken))


async def test_a_revision_that_cannot_be_built_says_so_and_sends_nothing(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = ServiceSpec("bare", "default", default=RevisionSpec("default", container_port=8080)).digested()  # no image
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await kube.scale(key, 1)
        status = kube.status(key)
        assert status.state == "failed" and "no container image to run" in (status.message or "")
        assert kube.adoption(key) == "unknown"  # nothing to scale
    assert [r for r in kube_api.requests() if r.method != "GET"] == []


def containers(api: KubeApi, name: str) -> list[dict[str, Any]]:
    made = deployment(api, name)
    assert made is not None
    return made["spec"]["template"]["spec"]["containers"]  # type: ignore[index,no-any-return]


async def test_the_deployment_is_the_builders_and_a_changed_revision_is_patched_once(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec = service()
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await wait_until(lambda: deployment(kube_api, "iris-default") is not None, "the Deployment")
        built = build_deployment(spec, spec.default, KubernetesSettings())
        made = deployment(kube_api, "iris-default")
        assert made is not None and made["spec"]["selector"] == built["spec"]["selector"]  # type: ignore[index]
        for mine, theirs in zip(containers(kube_api, "iris-default"), built["spec"]["template"]["spec"]["containers"]):
            assert {k: mine[k] for k in theirs} == theirs  # the API may add defaults, nothing else
        await kube.sync([service()])  # an equal config: nothing sent
        changed = service(env=(("MODEL", "v2"),))
        await kube.sync([changed])
        await wait_until(
            lambda: {"name": "MODEL", "value": "v2"} in (containers(kube_api, "iris-default")[0].get("env") or []), "the new env"
        )
        await kube.sync([changed])
    patches = [r for r in kube_api.requests() if r.method == "PATCH" and r.url.endswith("/deployments/iris-default")]
    assert len(patches) == 1
    assert patches[0].data[0]["op"] == "replace" and patches[0].data[0]["path"] == "/spec/template"


async def test_a_crashed_pod_leaves_the_set_and_returns_when_restarted(cluster: Cluster, kubeconfig: Path) -> None:
    spec = service()
    key = spec.key("default")
    async with backend(kubeconfig) as kube:
        await kube.sync([spec])
        await kube.scale(key, 1)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 1, "a ready pod", within=30)
        (pod,) = cluster.ready_pods("iris-default")
        cluster.kill(pod["metadata"]["name"])
        await wait_until(lambda: not kube.ready_endpoints(key), "the crashed pod out of the set", within=30)
        await wait_until(lambda: len(kube.ready_endpoints(key)) == 1, "the restarted pod back", within=30)


async def test_every_request_names_the_gateway_process_that_sent_it(kube_api: KubeApi, kubeconfig: Path) -> None:
    agent = user_agent()
    assert agent == f"serving-gateway/0.1.0 ({socket.gethostname()}; pid {os.getpid()})"
    async with backend(kubeconfig) as kube:
        await kube.sync([service()])
        await wait_until(lambda: replicas(kube_api, "iris-default") == 0, "the Deployment")
    mine = sent_by(kube_api, agent)
    assert {method for method, _ in mine} >= {"GET", "POST"}
    assert len(mine) == len(kube_api.requests())  # the pod watch's too
