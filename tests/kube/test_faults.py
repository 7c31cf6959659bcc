"""Faults a test injects: each answers exactly the requests it matches, then the API is itself again."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest
import urllib3
from kubernetes.client import ApiClient, ApiException, AppsV1Api, CoreV1Api

from tests.kube.manifests import replica_deployment
from tests.kube.server import KubeApi


def raw(kube_api: KubeApi, path: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(kube_api.host, kube_api.port, timeout=10)
    try:
        conn.request(
            method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def apps_of(client: ApiClient) -> Any:
    return AppsV1Api(client)


def test_the_next_n_matching_requests_fail_and_change_nothing(kube_api: KubeApi, kube_client: ApiClient) -> None:
    apps = apps_of(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    fault = kube_api.fail("PATCH", r"/deployments/web(/|$)", times=2)
    for _ in range(2):
        assert apps.read_namespaced_deployment("web", "default").spec.replicas == 1  # a GET does not match
        with pytest.raises(ApiException) as caught:
            apps.patch_namespaced_deployment_scale("web", "default", [{"op": "add", "path": "/spec/replicas", "value": 5}])
        assert caught.value.status == 500 and "injected fault" in str(caught.value.body)
    assert fault.served == 2 and fault.spent
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 1
    assert apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}}).spec.replicas == 5


def test_throttling_answers_429_with_retry_after(kube_api: KubeApi, kube_client: ApiClient) -> None:
    apps = apps_of(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    kube_api.throttle(None, "/deployments", times=2, retry_after=3)
    status, headers, body = raw(kube_api, "/apis/apps/v1/namespaces/default/deployments")
    assert (status, headers["Retry-After"], json.loads(body)["reason"]) == (429, "3", "TooManyRequests")
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    assert caught.value.status == 429 and dict(caught.value.headers or {}).get("Retry-After") == "3"
    assert raw(kube_api, "/apis/apps/v1/namespaces/default/deployments")[0] == 200


def test_a_watch_answered_with_410_gone_then_a_normal_watch(kube_api: KubeApi, kube_client: ApiClient) -> None:
    core: Any = CoreV1Api(kube_client)
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    fault = kube_api.expire_watches("/pods")
    assert raw(kube_api, "/api/v1/namespaces/default/pods")[0] == 200  # a list is not a watch
    status, _, body = raw(kube_api, "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1&timeoutSeconds=1")
    assert status == 200 and body.endswith(b"\n") and len(body.splitlines()) == 1
    event = json.loads(body)
    assert (event["type"], event["object"]["code"], event["object"]["reason"]) == ("ERROR", 410, "Expired")
    assert fault.served == 1
    _, _, body = raw(kube_api, "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=0.2")
    assert [json.loads(line)["type"] for line in body.splitlines()] == ["ADDED"]


def test_a_watch_answered_with_a_plain_list(kube_api: KubeApi, kube_client: ApiClient) -> None:
    apps_of(kube_client).create_namespaced_deployment("default", replica_deployment("web"))
    kube_api.answer_watches_with_list(r"/deployments$", times=1)
    status, _, body = raw(kube_api, "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=1")
    assert status == 200 and not body.endswith(b"\n")
    assert [item["metadata"]["name"] for item in json.loads(body)["items"]] == ["web"]


def test_connection_refused_while_down_then_the_same_port_and_state(kube_api: KubeApi, kube_client: ApiClient) -> None:
    apps = apps_of(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    port = kube_api.port
    watch = http.client.HTTPConnection(kube_api.host, port, timeout=10)
    watch.request("GET", "/apis/apps/v1/namespaces/default/deployments?watch=true")
    stream = watch.getresponse()
    assert json.loads(stream.readline())["type"] == "ADDED"
    with kube_api.down():
        with pytest.raises(ConnectionRefusedError), socket.create_connection((kube_api.host, port), timeout=5):
            pass
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            apps.read_namespaced_deployment("web", "default", _request_timeout=5)
        with pytest.raises(http.client.IncompleteRead):
            stream.read()  # the open watch was cut, not ended
    watch.close()
    assert kube_api.port == port and apps.read_namespaced_deployment("web", "default").metadata.name == "web"


@pytest.mark.parametrize("kube_api", ["unwrapped"], indirect=True)
def test_faults_work_on_the_unwrapped_emulator_too(kube_api: KubeApi) -> None:
    kube_api.fail("GET", "/pods", status=503)
    assert raw(kube_api, "/api/v1/namespaces/default/pods")[0] == 503
    assert raw(kube_api, "/api/v1/namespaces/default/pods")[0] == 200


def test_bad_fault_arguments_are_refused(kube_api: KubeApi) -> None:
    with pytest.raises(ValueError, match="at least one request"):
        kube_api.fail("GET", "/pods", times=0)
    with pytest.raises(ValueError, match="error status"):
        kube_api.fail("GET", "/pods", status=200)
    with pytest.raises(ValueError, match="bad path pattern"):
        kube_api.fail("GET", "/pods(")


def test_a_stalled_request_times_the_client_out_then_the_next_is_served(kube_api: KubeApi) -> None:
    kube_api.stall("GET", "/pods", seconds=3)
    conn = http.client.HTTPConnection(kube_api.host, kube_api.port, timeout=0.3)
    with pytest.raises(TimeoutError):
        conn.request("GET", "/api/v1/namespaces/default/pods")
        conn.getresponse()
    conn.close()
    assert raw(kube_api, "/api/v1/namespaces/default/pods")[0] == 200


def test_the_requests_the_api_server_received(kube_api: KubeApi, kube_client: ApiClient) -> None:
    apps = apps_of(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    kube_api.fail("PATCH", "/scale")
    with pytest.raises(ApiException):
        apps.patch_namespaced_deployment_scale("web", "default", [{"op": "add", "path": "/spec/replicas", "value": 2}])
    apps.patch_namespaced_deployment_scale("web", "default", [{"op": "add", "path": "/spec/replicas", "value": 2}])
    patches = [seen for seen in kube_api.requests() if seen.method == "PATCH"]
    assert [seen.url for seen in patches] == ["/apis/apps/v1/namespaces/default/deployments/web/scale"] * 2
    assert patches[1].data == [{"op": "add", "path": "/spec/replicas", "value": 2}]
    method, url = patches[0]
    assert (method, url) == ("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale")
