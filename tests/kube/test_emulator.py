"""The wrapped emulator answers the official `kubernetes` client as a real API server would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient, ApiException, AppsV1Api, CoreV1Api

from tests.kube.manifests import replica_deployment
from tests.kube.server import KubeApi


def pod(name: str, labels: dict[str, str], node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


def apis(client: ApiClient) -> tuple[Any, Any]:
    """The official client's AppsV1Api and CoreV1Api, typed loosely: tests pass manifests as dicts."""
    return AppsV1Api(client), CoreV1Api(client)


def names(items: list[Any]) -> list[str]:
    return sorted(i.metadata.name for i in items)


def test_objects_get_uid_creation_time_generation_and_one_growing_resource_version(kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    d = apps.create_namespaced_deployment("default", replica_deployment("web"))
    p = core.create_namespaced_pod("default", pod("p", {"app": "x"}))
    assert d.metadata.uid and p.metadata.uid and d.metadata.uid != p.metadata.uid
    assert d.metadata.creation_timestamp is not None and d.metadata.generation == 1
    assert int(p.metadata.resource_version) == int(d.metadata.resource_version) + 1
    listed = core.list_namespaced_pod("default")
    assert listed.metadata.resource_version == p.metadata.resource_version and listed.kind == "PodList"


def test_generation_follows_spec_changes_only(kube_client: ApiClient) -> None:
    apps, _ = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    labelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"team": "a"}}})
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 4}})
    assert scaled.metadata.generation == 2 and int(scaled.metadata.resource_version) > int(labelled.metadata.resource_version)
    status = apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 4}})
    assert status.metadata.generation == 2 and status.status.replicas == 4


def test_a_write_with_a_stale_resource_version_is_a_409_and_changes_nothing(kube_client: ApiClient) -> None:
    apps, _ = apis(kube_client)
    first = apps.create_namespaced_deployment("default", replica_deployment("web"))
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    stale = {"metadata": {"resourceVersion": first.metadata.resource_version}, "spec": {"replicas": 7}}
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("web", "default", stale)
    assert caught.value.status == 409 and "the object has been modified" in str(caught.value.body)
    current = apps.read_namespaced_deployment("web", "default")
    assert current.spec.replicas == 2
    current.spec.replicas = 3
    assert apps.replace_namespaced_deployment("web", "default", current).spec.replicas == 3
    current.spec.replicas = 5  # `current` still carries the version before the replace
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("web", "default", current)
    assert caught.value.status == 409


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("app in (web,db)", ["a", "b", "c"]),
        ("app notin (web)", ["c", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app=web,tier=front", ["a"]),
    ],
)
def test_lists_filter_by_label_selector(kube_client: ApiClient, selector: str, expected: list[str]) -> None:
    _, core = apis(kube_client)
    for name, labels in [
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web"}),
        ("c", {"app": "db", "tier": "x"}),
        ("d", {}),
    ]:
        core.create_namespaced_pod("default", pod(name, labels))
    core.create_namespaced_pod("other", pod("e", {"app": "web"}))
    assert names(core.list_namespaced_pod("default", label_selector=selector).items) == expected


def test_field_selectors_and_bad_selectors(kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    core.create_namespaced_pod("default", pod("a", {}))
    core.create_namespaced_pod("default", pod("b", {}))
    assert names(core.list_namespaced_pod("default", field_selector="metadata.name=b").items) == ["b"]
    assert names(core.list_pod_for_all_namespaces(field_selector="metadata.name!=b").items) == ["a"]
    for kwargs, message in [
        ({"label_selector": "app in web"}, "unable to parse requirement"),
        ({"field_selector": "spec.replicas=1"}, "field label not supported"),
    ]:
        with pytest.raises(ApiException) as caught:
            core.list_namespaced_pod("default", **kwargs)
        assert caught.value.status == 400 and message in str(caught.value.body)


def watch(kube_client: ApiClient, **kwargs: Any) -> list[tuple[str, str]]:
    """(type, name) of the pod events a one-second watch sees."""
    w: Any = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    _, core = apis(kube_client)
    return [
        (e["type"], e["object"].metadata.name) for e in w.stream(core.list_namespaced_pod, "default", timeout_seconds=1, **kwargs)
    ]


@pytest.mark.e2e
def test_a_watch_from_a_resource_version_sends_only_later_events(kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    core.create_namespaced_pod("default", pod("old", {"app": "web"}))
    mark = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("new", {"app": "web"}))
    core.patch_namespaced_pod("old", "default", {"metadata": {"labels": {"v": "2"}}})
    core.delete_namespaced_pod("new", "default")
    assert watch(kube_client, resource_version=mark) == [("ADDED", "new"), ("MODIFIED", "old"), ("DELETED", "new")]
    assert watch(kube_client) == [("ADDED", "old")]  # no version: the current state, then changes


@pytest.mark.e2e
def test_a_selective_watch_sees_objects_enter_and_leave_the_selection(kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    mark = core.create_namespaced_pod("default", pod("p", {"app": "web"})).metadata.resource_version
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "db"}}})
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"tier": "x"}}})
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "web"}}})
    assert watch(kube_client, resource_version=mark, label_selector="app=web") == [("DELETED", "p"), ("ADDED", "p")]


@pytest.mark.e2e
def test_watch_timeout_ends_the_stream_and_a_compacted_version_is_gone(kube_api: KubeApi, kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    mark = core.create_namespaced_pod("default", pod("p", {})).metadata.resource_version
    core.create_namespaced_pod("default", pod("q", {}))
    started = time.monotonic()
    assert watch(kube_client, resource_version=mark) == [("ADDED", "q")]
    assert 0.9 < time.monotonic() - started < 3
    kube_api.compact()
    with pytest.raises(ApiException) as caught:
        watch(kube_client, resource_version=mark)
    assert caught.value.status == 410


def raw(kube_api: KubeApi, path: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(kube_api.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_trailing_slashes_discovery_and_watch_spelled_true(kube_api: KubeApi, kube_client: ApiClient) -> None:
    groups = [g.name for g in kubernetes.client.ApisApi(kube_client).get_api_versions().groups]
    assert "apps" in groups
    assert kubernetes.client.VersionApi(kube_client).get_code().major == "1"
    assert raw(kube_api, "/api/v1/namespaces/default/pods/")[0] == 200
    apis(kube_client)[1].create_namespaced_pod("default", pod("p", {}))
    status, _, body = raw(kube_api, "/api/v1/namespaces/default/pods?watch=True&timeoutSeconds=0.2")
    assert status == 200 and [json.loads(line)["type"] for line in body.splitlines()] == ["ADDED"]


def test_the_scale_subresource(kube_client: ApiClient) -> None:
    apps, _ = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web", labels={"app": "web", "rev": "1"}))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.kind, scale.api_version, scale.spec.replicas, scale.status.selector) == (
        "Scale",
        "autoscaling/v1",
        1,
        "app=web,rev=1",
    )
    patched = apps.patch_namespaced_deployment_scale("web", "default", [{"op": "add", "path": "/spec/replicas", "value": 3}])
    assert patched.kind == "Scale" and patched.spec.replicas == 3
    assert apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}}).spec.replicas == 0
    deployment = apps.read_namespaced_deployment("web", "default")
    assert deployment.spec.replicas == 0 and deployment.metadata.generation == 3
    for bad in (-1, "2", None):
        with pytest.raises(ApiException) as caught:
            apps.patch_namespaced_deployment_scale("web", "default", [{"op": "add", "path": "/spec/replicas", "value": bad}])
        assert caught.value.status == 422 and "spec.replicas" in str(caught.value.body)
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment_scale("nope", "default", {"spec": {"replicas": 1}})
    assert caught.value.status == 404


def test_status_is_written_through_the_status_subresource_only(kube_client: ApiClient) -> None:
    apps, _ = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 9}, "spec": {"replicas": 2}})
    assert apps.read_namespaced_deployment("web", "default").status.replicas is None
    apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 9}, "spec": {"replicas": 5}})
    current = apps.read_namespaced_deployment("web", "default")
    assert (current.status.replicas, current.spec.replicas) == (9, 2)


def test_deleting_a_pod_bound_to_a_node_only_marks_it_until_grace_zero(kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    core.create_namespaced_pod("default", pod("loose", {}))
    core.create_namespaced_pod("default", pod("bound", {}, node="n1"))
    core.delete_namespaced_pod("loose", "default")
    marked = core.delete_namespaced_pod("bound", "default", grace_period_seconds=7)
    assert names(core.list_namespaced_pod("default").items) == ["bound"]
    assert marked.metadata.deletion_timestamp is not None and marked.metadata.deletion_grace_period_seconds == 7
    core.delete_namespaced_pod("bound", "default", grace_period_seconds=0)
    assert core.list_namespaced_pod("default").items == []


def test_requests_the_api_server_refuses(kube_api: KubeApi, kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    core.create_namespaced_pod("default", pod("p", {}))
    generated = core.create_namespaced_pod("default", {"metadata": {"generateName": "g-"}, "spec": pod("x", {})["spec"]})
    assert generated.metadata.name.startswith("g-") and len(generated.metadata.name) == 7
    cases: list[tuple[Callable[[], Any], int, str]] = [
        (lambda: core.create_namespaced_pod("default", pod("p", {})), 409, "already exists"),
        (
            lambda: core.create_namespaced_pod("other", {**pod("q", {}), "metadata": {"name": "q", "namespace": "x"}}),
            400,
            "does not match",
        ),
        (lambda: core.read_namespaced_pod("nope", "default"), 404, 'pods \\"nope\\" not found'),
        (lambda: core.create_namespaced_pod("default", {"metadata": {}, "spec": pod("x", {})["spec"]}), 422, "name"),
    ]
    for call, status, message in cases:
        with pytest.raises(ApiException) as caught:
            call()
        assert caught.value.status == status and message in str(caught.value.body), caught.value.body
    assert raw(kube_api, "/apis/example.com/v1/namespaces/default/widgets")[0] == 404
    assert raw(kube_api, "/api/v1/namespaces/default/pods/p/log")[0] == 405


@pytest.mark.parametrize("kube_api", ["unwrapped"], indirect=True)
def test_unwrapped_is_kmock_as_it_ships(kube_api: KubeApi, kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    created = core.create_namespaced_pod("default", pod("a", {"app": "web"}))
    core.create_namespaced_pod("default", pod("b", {"app": "db"}))
    assert created.metadata.resource_version is None and created.metadata.uid is None
    assert names(core.list_namespaced_pod("default", label_selector="app=web").items) == ["a", "b"]
    assert raw(kube_api, "/apis/")[0] == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["spec"]["template"]["metadata"].update(labels={"app": "other"}),
            "`selector` does not match template `labels`",
        ),
        (lambda d: d["spec"].update(selector={}), "spec.selector: Required value"),
        (lambda d: d["spec"]["template"]["spec"].update(containers=[]), "spec.template.spec.containers: Required value"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("image"), "containers[0].image: Required value"),
        (lambda d: d["metadata"].update(name="Web_1"), "metadata.name: Invalid value: 'Web_1'"),
        (lambda d: d["metadata"].update(labels={"app": "x" * 64}), "metadata.labels: Invalid value"),
    ],
)
def test_a_deployment_the_cluster_could_not_run_is_refused(
    kube_api: KubeApi, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    manifest = replica_deployment("web")
    change(manifest)
    status, _, body = raw(kube_api, "/apis/apps/v1/namespaces/default/deployments", "POST", manifest)
    assert status == 422 and message in json.loads(body)["message"]


def test_an_update_that_breaks_a_deployment_is_refused(kube_client: ApiClient) -> None:
    apps, _ = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("web", "default", {"spec": {"selector": {"matchLabels": {"app": "db"}}}})
    assert caught.value.status == 422 and "does not match" in str(caught.value.body)


def test_defaults_are_filled_in_as_the_api_server_does(kube_client: ApiClient) -> None:
    apps, _ = apis(kube_client)
    manifest = replica_deployment("web")
    del manifest["spec"]["replicas"]
    created = apps.create_namespaced_deployment("default", manifest)
    assert created.spec.replicas == 1 and created.spec.strategy.type == "RollingUpdate"
    assert created.spec.template.spec.termination_grace_period_seconds == 30
    assert apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": None}}).spec.replicas == 1


@pytest.mark.e2e
def test_the_kubeconfig_serves_load_kube_config_and_a_process_with_kubeconfig_set(
    kubeconfig: Path, kube_client: ApiClient
) -> None:
    apis(kube_client)[0].create_namespaced_deployment("default", replica_deployment("web"))
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    with ApiClient(configuration) as client:
        assert [d.metadata.name for d in apis(client)[0].list_namespaced_deployment("default").items] == ["web"]
    script = "import kubernetes; kubernetes.config.load_kube_config(); print(kubernetes.client.AppsV1Api().read_namespaced_deployment('web', 'default').spec.replicas)"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "1", done.stderr


def test_a_watch_that_asked_for_bookmarks_ends_with_one(kube_api: KubeApi, kube_client: ApiClient) -> None:
    _, core = apis(kube_client)
    mark = core.create_namespaced_pod("default", pod("p", {})).metadata.resource_version
    core.create_namespaced_pod("default", pod("q", {}))
    path = f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={mark}&timeoutSeconds=0.2&allowWatchBookmarks=true"
    events = [json.loads(line) for line in raw(kube_api, path)[2].splitlines()]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"] == {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(int(mark) + 1)}}
