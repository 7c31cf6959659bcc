"""`python -m tests.kube`: the emulated cluster on its own, for a user to try the kubernetes backend by hand."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.conftest import wait_until_blocking

ROOT = Path(__file__).resolve().parent.parent.parent
REPLICA = [sys.executable, "-m", "tests.kube.replica"]

pytestmark = pytest.mark.e2e  # a real process running pods as processes


def test_it_serves_a_kubeconfig_runs_pods_and_stops_them_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kube", "--dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1] == f"export KUBECONFIG={tmp_path / 'kubeconfig'}\n", lines
        api = config.new_client_from_config(config_file=str(tmp_path / "kubeconfig"))  # type: ignore[no-untyped-call]
        apps = client.AppsV1Api(api)
        labels = {"app": "echo"}
        container = client.V1Container(name="echo", image="echo", command=[*REPLICA, "--port", "8080"])
        template = client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(containers=[container])
        )
        spec = client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels=labels), template=template)
        apps.create_namespaced_deployment("default", client.V1Deployment(metadata=client.V1ObjectMeta(name="echo"), spec=spec))
        seen: list[str] = []

        def ready_line() -> bool:
            seen.append(proc.stdout.readline() if proc.stdout else "")
            return '"default/echo": {"pods": 1, "ready": 1, "replicas": 1}' in seen[-1]

        wait_until_blocking(ready_line, "the pod listed as ready", within=30)
        pods = client.CoreV1Api(api).list_namespaced_pod("default").items
        status = pods[0].status
        assert len(pods) == 1 and status is not None and status.phase == "Running"
        pod_ip = status.pod_ip
        socket.create_connection((pod_ip, 8080), timeout=5).close()  # the pod's process serves on its own address
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.endswith("stopped: every pod's process has exited\n"), out
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((pod_ip, 8080), timeout=5)
