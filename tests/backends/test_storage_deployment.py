"""A revision with a remote storageUri under kubernetes: an init container of the gateway's image fetches
the model into an emptyDir at /mnt/models, which the model server reads, as KServe does (issue 12 item 3)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.deployment import build_deployment
from gateway.config import load
from gateway.config.model import KubernetesSettings
from tests.backends.deployment_support import KUBERNETES, assert_valid, build, container, load_kubernetes, pod
from tests.backends.kube_support import backend
from tests.config.support import write
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: sklearn-iris, namespace: kserve-test}
spec:
  predictor:
    model:
      modelFormat: {name: onnx}
      storageUri: s3://models/iris
      env:
        - {name: S3_ENDPOINT, value: minio.storage:9000}
        - {name: S3_USE_HTTPS, value: "0"}
"""
MOUNT = {"name": "kserve-provision-location", "mountPath": "/mnt/models"}
INIT = {
    "name": "storage-initializer",
    "image": "registry.example.com/serving-gateway:2",
    "command": ["gateway", "storage-initializer"],
    "args": ["s3://models/iris", "/mnt/models"],
    "volumeMounts": [MOUNT],
    "env": [{"name": "S3_ENDPOINT", "value": "minio.storage:9000"}, {"name": "S3_USE_HTTPS", "value": "0"}],
}
IMAGE = "  kubernetes: {modelServerImage: registry.example.com/serving-gateway:2}\n"


def test_the_model_is_fetched_by_an_init_container_into_an_empty_dir(tmp_path: Path) -> None:
    deployment = build(load_kubernetes(tmp_path, ISVC, IMAGE))
    spec = pod(deployment)
    assert spec["initContainers"] == [INIT]
    assert spec["volumes"] == [{"name": "kserve-provision-location", "emptyDir": {}}]
    served = container(deployment)
    assert served["image"] == "registry.example.com/serving-gateway:2"
    assert served["args"][:2] == ["--model", "/mnt/models"]
    assert served["volumeMounts"] == [{**MOUNT, "readOnly": True}]


def test_a_named_secret_is_mounted_for_the_init_container_only(tmp_path: Path) -> None:
    service = load_kubernetes(tmp_path, ISVC).services[0]
    secret = replace(service, default=replace(service.default, storage_secret="s3-secret"))
    settings = KubernetesSettings(model_server_image="img:1", image_pull_policy="IfNotPresent")
    deployment = build_deployment(secret, secret.default, settings, replicas=1)
    assert_valid(deployment)
    init = pod(deployment)["initContainers"][0]
    assert init["args"] == ["--secret-dir", "/var/run/secrets/serving-gateway/storage", "s3://models/iris", "/mnt/models"]
    assert init["imagePullPolicy"] == "IfNotPresent" and init["image"] == "img:1"
    secret_mount = {"name": "storage-secret", "mountPath": "/var/run/secrets/serving-gateway/storage", "readOnly": True}
    assert init["volumeMounts"] == [MOUNT, secret_mount]
    assert {"name": "storage-secret", "secret": {"secretName": "s3-secret"}} in pod(deployment)["volumes"]
    assert all(m["name"] != "storage-secret" for m in container(deployment)["volumeMounts"])


def test_a_local_model_has_no_init_container(tmp_path: Path) -> None:
    text = ISVC.replace("s3://models/iris", "/app/config/models/iris.onnx")
    spec = pod(build(load_kubernetes(tmp_path, text)))
    assert "initContainers" not in spec and "volumes" not in spec


@pytest.mark.e2e
async def test_the_backend_creates_the_deployment_with_its_init_container(kube_api: KubeApi, kubeconfig: Path) -> None:
    config = load([write(tmp := kubeconfig.parent, "gw.yaml", KUBERNETES + IMAGE), write(tmp, "isvc.yaml", ISVC)])
    service = config.services[0]

    def made() -> dict[str, Any] | None:
        return next(
            (
                d
                for d in kube_api.objects("deployments", "kserve-test")
                if d["metadata"]["name"] == f"sklearn-iris-{service.default.name}"
            ),
            None,
        )

    async with backend(kubeconfig, settings=config.gateway) as kube:
        await kube.sync([service])
        await wait_until(lambda: made() is not None, "the Deployment")
    found = made()
    assert found is not None
    assert found["spec"]["template"]["spec"]["initContainers"] == [INIT]
    assert found["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] == [{**MOUNT, "readOnly": True}]


SIMPLEML = """\
apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata: {name: sample}
spec:
  replicas: 1
  storage:
    s3:
      secretName: s3-secret
      uri: s3://models/mnist/
      containerPath: /var/lib/t9k/model
  tensorflow:
    image: t9kpublic/tensorflow-serving:2.6.0
"""


def test_a_simpleml_service_gets_its_s3_model_at_its_container_path_with_the_secret_mounted(tmp_path: Path) -> None:
    deployment = build(load_kubernetes(tmp_path, SIMPLEML, IMAGE))
    spec = pod(deployment)
    init = spec["initContainers"][0]
    secret_dir = "/var/run/secrets/serving-gateway/storage"
    assert init["args"] == ["--secret-dir", secret_dir, "s3://models/mnist/", "/var/lib/t9k/model"]
    assert init["image"] == "registry.example.com/serving-gateway:2"
    assert init["volumeMounts"] == [
        {"name": "kserve-provision-location", "mountPath": "/var/lib/t9k/model"},
        {"name": "storage-secret", "mountPath": secret_dir, "readOnly": True},
    ]
    assert spec["volumes"] == [
        {"name": "kserve-provision-location", "emptyDir": {}},
        {"name": "storage-secret", "secret": {"secretName": "s3-secret"}},
    ]
    served = container(deployment)
    assert served["image"] == "t9kpublic/tensorflow-serving:2.6.0"
    assert "--model_base_path=/var/lib/t9k/model" in served["args"]
    assert served["volumeMounts"] == [{"name": "kserve-provision-location", "mountPath": "/var/lib/t9k/model", "readOnly": True}]


def test_a_runtime_of_its_own_reads_the_download_at_mnt_models(tmp_path: Path) -> None:
    """A ClusterServingRuntime-like entry (KServe's sklearn server) gets `{model}` = /mnt/models, filled by the
    init container of the gateway's own image."""
    runtimes = (
        "  kubernetes:\n"
        "    modelServerImage: registry.example.com/serving-gateway:2\n"
        "    runtimes:\n"
        "      kserve-sklearnserver:\n"
        "        modelFormats: [sklearn]\n"
        "        image: kserve/sklearnserver:v0.14.1\n"
        '        args: ["--model_name={{.Name}}", "--model_dir={model}", "--http_port={port}"]\n'
    )
    text = ISVC.replace("modelFormat: {name: onnx}", "modelFormat: {name: sklearn}")
    deployment = build(load_kubernetes(tmp_path, text, runtimes))
    served = container(deployment)
    assert served["image"] == "kserve/sklearnserver:v0.14.1"
    assert "--model_dir=/mnt/models" in served["args"]
    assert served["volumeMounts"] == [{**MOUNT, "readOnly": True}]
    assert pod(deployment)["initContainers"] == [INIT]
