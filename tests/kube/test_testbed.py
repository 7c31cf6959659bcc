"""The test bed as a cluster: Deployments become pods whose real processes serve on their own addresses.

Driven with the official `kubernetes` client over HTTP, as a gateway would drive a real cluster.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api

from tests.conftest import free_port, wait_until, wait_until_blocking
from tests.kube.cluster import Cluster
from tests.kube.manifests import REPLICA, replica_deployment
from tests.kube.pods import leftover
from tests.kube.server import KubeApi

pytestmark = pytest.mark.e2e

SCALE_TO = [{"op": "add", "path": "/spec/replicas", "value": 3}]


def apis(client: ApiClient) -> tuple[Any, Any]:
    return AppsV1Api(client), CoreV1Api(client)


def ready(pod: Any) -> bool:
    return not pod.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
    )


def ready_pods(core: Any, selector: str = "app=web") -> list[Any]:
    return [p for p in core.list_namespaced_pod("default", label_selector=selector).items if ready(p)]


def wait_ready(core: Any, count: int, selector: str = "app=web") -> list[Any]:
    wait_until_blocking(lambda: len(ready_pods(core, selector)) == count, f"{count} ready pods ({selector})", within=20)
    return ready_pods(core, selector)


def url(pod: Any, path: str = "/") -> str:
    return f"http://{pod.status.pod_ip}:{pod.spec.containers[0].ports[0].container_port}{path}"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_a_scaled_deployment_gets_ready_pods_serving_on_their_own_addresses(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web", labels={"app": "web", "rev": "a"}))
    wait_ready(core, 1)
    apps.patch_namespaced_deployment_scale("web", "default", SCALE_TO)
    pods = wait_ready(core, 3)
    ips = [p.status.pod_ip for p in pods]
    assert len(set(ips)) == 3
    for ip in ips:
        address = ipaddress.ip_address(ip)
        assert address in ipaddress.ip_network("127.0.0.0/16") and not ip.startswith(("127.0.0.", "127.0.1."))
    assert sorted(get(url(p)) for p in pods) == sorted(p.metadata.name for p in pods)
    for p in pods:
        assert p.metadata.name.startswith("web-") and p.metadata.labels["rev"] == "a"
        assert (p.metadata.owner_references[0].kind, p.metadata.owner_references[0].name) == ("Deployment", "web")
        assert p.spec.node_name == "testbed-node" and p.status.phase == "Running"
        assert f"listening on {url(p, '')[7:]}" in cluster.logs(p.metadata.name)  # 0.0.0.0 became the pod's address

    def status_caught_up() -> bool:
        d = apps.read_namespaced_deployment("web", "default")
        return bool(d.status.ready_replicas == 3 and d.status.observed_generation == d.metadata.generation)

    wait_until_blocking(status_caught_up, "the Deployment's status")
    status = apps.read_namespaced_deployment("web", "default").status
    assert (status.replicas, status.available_replicas, status.updated_replicas) == (3, 3, 3)


UVICORN = """
import os, uvicorn
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": os.environ["POD_NAME"].encode()})
uvicorn.run(app, host="0.0.0.0", port=int(os.environ["PORT"]), loop="uvloop")
"""


def test_servers_on_uvloop_binding_every_address_share_a_port_across_pods(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web", replicas=2, command=[sys.executable, "-c", UVICORN]))
    pods = wait_ready(core, 2)
    assert sorted(get(url(p)) for p in pods) == sorted(p.metadata.name for p in pods)


def test_environment_port_host_and_var_expansion(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    script = (
        "import os, sys; e = os.environ; print('argv', sys.argv[1:], e['PORT'], e['HOST'] == e['MY_IP'], e['POD_NAME'], e['GREETING'],"
        f" flush=True); os.execv(sys.executable, [sys.executable, {REPLICA!r}])"
    )
    env: list[dict[str, Any]] = [
        {"name": "GREETING", "value": "hello $(PORT)"},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    manifest = replica_deployment("web", port=9123, command=[sys.executable, "-c", script], env=env)
    manifest["spec"]["template"]["spec"]["containers"][0]["args"] = ["$(GREETING)", "$$(GREETING)", "$(UNDEFINED)"]
    apps.create_namespaced_deployment("default", manifest)
    (pod,) = wait_ready(core, 1)
    name = pod.metadata.name
    assert f"argv ['hello 9123', '$(GREETING)', '$(UNDEFINED)'] 9123 True {name} hello 9123" in cluster.logs(name)


def test_tcp_probes_and_a_server_bound_to_127_0_0_1_never_ready(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    tcp = free_port()
    apps.create_namespaced_deployment("default", replica_deployment("tcp", port=tcp, probe={"tcpSocket": {"port": tcp}}))
    port = free_port()
    hidden = replica_deployment("hidden", port=port, command=[sys.executable, REPLICA, "--host", "127.0.0.1"])
    apps.create_namespaced_deployment("default", hidden)
    wait_ready(core, 1, "app=tcp")
    wait_until_blocking(lambda: core.list_namespaced_pod("default", label_selector="app=hidden").items, "the hidden pod")
    (pod,) = core.list_namespaced_pod("default", label_selector="app=hidden").items
    name = pod.metadata.name
    wait_until_blocking(lambda: f"listening on 127.0.0.1:{port}" in cluster.logs(name), "the hidden replica to listen")
    wait_until_blocking(lambda: cluster.probes(name) >= 5, "five probes of the hidden pod")
    pod = core.read_namespaced_pod(name, "default")
    assert not ready(pod) and pod.status.container_statuses[0].state.running is not None


def test_a_port_taken_on_the_host_keeps_pods_waiting_with_the_reason(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    port = free_port()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("0.0.0.0", port))
        squatter.listen()
        apps.create_namespaced_deployment("default", replica_deployment("web", port=port))

        def waiting() -> str:
            pods = core.list_namespaced_pod("default").items
            statuses = pods[0].status.container_statuses if pods else None
            state = statuses[0].state.waiting if statuses else None
            return f"{state.reason}: {state.message}" if state else ""

        wait_until_blocking(lambda: waiting().startswith("PortConflict"), "the pod waiting on its port")
        assert f"another process on this host listens on 0.0.0.0:{port}" in waiting()
    wait_ready(core, 1)


def test_scaling_to_zero_removes_the_pods_and_their_processes(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web", replicas=2))
    wait_ready(core, 2)
    pids = cluster.all_pids()
    apps.patch_namespaced_deployment_scale("web", "default", [{"op": "add", "path": "/spec/replicas", "value": 0}])
    wait_until_blocking(lambda: not core.list_namespaced_pod("default").items, "no pods")
    assert len(pids) == 2 and leftover(pids) == []
    wait_until_blocking(lambda: apps.read_namespaced_deployment("web", "default").status.replicas == 0, "status.replicas 0")


def test_a_killed_container_turns_its_pod_not_ready_and_is_restarted(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    (pod,) = wait_ready(core, 1)
    name, mark = pod.metadata.name, core.list_namespaced_pod("default").metadata.resource_version
    first = cluster.kill(name)

    def restarted() -> bool:
        p = core.read_namespaced_pod(name, "default")
        return bool(ready(p) and p.status.container_statuses[0].restart_count == 1)

    wait_until_blocking(restarted, "the pod restarted and ready again")
    assert cluster.pid(name) not in (None, first) and leftover([first]) == []
    w: Any = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    seen = [ready(e["object"]) for e in w.stream(core.list_namespaced_pod, "default", resource_version=mark, timeout_seconds=1)]
    assert seen[0] is False and seen[-1] is True
    last = core.read_namespaced_pod(name, "default").status.container_statuses[0].last_state.terminated
    assert last.exit_code == 137 and last.reason == "Error"
    assert get(url(pod)) == name  # same pod, same address


def test_a_deleted_pod_is_stopped_and_replaced(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    (pod,) = wait_ready(core, 1)
    pid = cluster.pid(pod.metadata.name)
    assert pid is not None
    core.delete_namespaced_pod(pod.metadata.name, "default")
    wait_until_blocking(lambda: [p.metadata.name for p in ready_pods(core)] not in ([], [pod.metadata.name]), "a replacement pod")
    wait_until_blocking(
        lambda: pod.metadata.name not in [p.metadata.name for p in core.list_namespaced_pod("default").items], "the old pod gone"
    )
    assert leftover([pid]) == []


def test_a_drained_node_loses_all_pods_at_once_and_they_come_back(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web", replicas=3))
    before = {p.metadata.name for p in wait_ready(core, 3)}
    assert set(cluster.drain("web")) == before
    wait_until_blocking(
        lambda: not before & {p.metadata.name for p in core.list_namespaced_pod("default").items}, "the drained pods gone"
    )
    after = wait_ready(core, 3)
    assert not before & {p.metadata.name for p in after}


def test_a_container_ignoring_sigterm_is_killed_after_its_grace_period(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    script = f"import os, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); os.execv(sys.executable, [sys.executable, {REPLICA!r}])"
    apps.create_namespaced_deployment("default", replica_deployment("web", command=[sys.executable, "-c", script], grace=1))
    (pod,) = wait_ready(core, 1)
    started = time.monotonic()
    apps.delete_namespaced_deployment("web", "default")
    wait_until_blocking(lambda: not core.list_namespaced_pod("default").items, "the pod gone")
    assert 1.0 <= time.monotonic() - started < 5


def test_a_changed_template_rolls_the_pods(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web", replicas=2))
    old = {p.metadata.name for p in wait_ready(core, 2)}
    patch = {"spec": {"template": {"metadata": {"labels": {"app": "web", "rev": "2"}}}}}
    apps.patch_namespaced_deployment("web", "default", patch)
    wait_ready(core, 2, "app=web,rev=2")
    wait_until_blocking(
        lambda: not old & {p.metadata.name for p in core.list_namespaced_pod("default").items}, "the old pods gone"
    )


def test_a_container_without_command_waits_until_its_image_gets_an_entrypoint(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    manifest = replica_deployment("web")
    del manifest["spec"]["template"]["spec"]["containers"][0]["command"]

    def waiting_reason() -> str | None:
        pods = core.list_namespaced_pod("default").items
        waiting = pods[0].status.container_statuses[0].state.waiting if pods and pods[0].status.container_statuses else None
        return waiting.reason if waiting else None

    apps.create_namespaced_deployment("default", manifest)
    wait_until_blocking(lambda: waiting_reason() == "NoCommand", "the pod waiting for a command")
    cluster.set_entrypoint("testbed/replica:1", [sys.executable, REPLICA])
    cluster.delete_pod(core.list_namespaced_pod("default").items[0].metadata.name)
    wait_ready(core, 1)


def test_the_cluster_leaves_no_process_behind(kube_api: KubeApi, kube_client: ApiClient, tmp_path: Path) -> None:
    apps, core = apis(kube_client)
    cluster = Cluster(kube_api, tmp_path / "pods")
    try:
        shell = ["/bin/sh", "-c", f"{sys.executable} {REPLICA} & wait"]  # the replica is the shell's child
        apps.create_namespaced_deployment("default", replica_deployment("web", replicas=2, command=shell))
        wait_ready(core, 2)
        pids = cluster.all_pids()
        assert len(pids) == 2 and len(leftover(pids)) == 2
    finally:
        cluster.close()
    assert leftover(pids) == []


@pytest.mark.parametrize("kube_api", ["unwrapped"], indirect=True)
def test_a_cluster_on_the_unwrapped_emulator(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    apps.create_namespaced_deployment("default", replica_deployment("web"))
    apps.patch_namespaced_deployment_scale("web", "default", [{"op": "add", "path": "/spec/replicas", "value": 2}])
    pods = wait_ready(core, 2)
    assert sorted(get(url(p)) for p in pods) == sorted(p.metadata.name for p in pods)
    assert all(p.metadata.resource_version is None for p in pods)
    # kmock's own watch streams what the controller writes: every pod ADDED, then a crash as MODIFIED.
    watch = http.client.HTTPConnection(cluster.api.host, cluster.api.port, timeout=10)
    watch.request("GET", "/api/v1/namespaces/default/pods?watch=true")
    stream = watch.getresponse()
    added = [json.loads(stream.readline()) for _ in range(2)]
    assert {(e["type"], e["object"]["status"]["podIP"]) for e in added} == {("ADDED", p.status.pod_ip) for p in pods}
    cluster.kill(pods[0].metadata.name)
    while (event := json.loads(stream.readline()))["object"]["status"]["containerStatuses"][0]["ready"]:
        pass
    watch.close()
    assert (event["type"], event["object"]["metadata"]["name"]) == ("MODIFIED", pods[0].metadata.name)


async def test_the_cluster_from_an_async_test(cluster: Cluster, kube_client: ApiClient) -> None:
    apps, core = apis(kube_client)
    await asyncio.to_thread(apps.create_namespaced_deployment, "default", replica_deployment("web", replicas=2))

    async def two_ready() -> bool:
        return len(await asyncio.to_thread(ready_pods, core)) == 2

    await wait_until(two_ready, "two ready pods", within=20)
    await asyncio.to_thread(apps.delete_namespaced_deployment, "web", "default")
    await wait_until(lambda: not cluster.pods("web"), "the Deployment's pods deleted with it")
