"""The kubernetes backend against the API emulator: each model format's Deployment runs the runtime table's image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load
from gateway.rollouts.resolver import Rollouts
from tests.backends.kube_support import backend
from tests.config.support import write
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig

pytestmark = pytest.mark.e2e

GATEWAY = """\
apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: kubernetes
  kubernetes:
    modelServerImage: registry.example.com/serving-gateway:0.2.0
    runtimes:
      kserve-sklearnserver:
        modelFormats: [sklearn]
        image: kserve/sklearnserver:v0.14.1
        args: ["--model_name={{.Name}}", "--model_dir={model}", "--http_port={port}"]
"""


def isvc(name: str, fmt: str, uri: str, key: str = "model") -> str:
    model = f"modelFormat: {{name: {fmt}}}, storageUri: {uri}" if key == "model" else f"storageUri: {uri}"
    return (
        f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n"
        f"spec:\n  predictor:\n    minReplicas: 0\n    {key}: {{{model}}}\n"
    )


def served(api: KubeApi, name: str) -> dict[str, Any] | None:
    for made in api.objects("deployments", "default"):
        if made["metadata"]["name"] == name:
            container: dict[str, Any] = made["spec"]["template"]["spec"]["containers"][0]
            return container
    return None


async def test_each_formats_deployment_runs_its_runtimes_image(kube_api: KubeApi, kubeconfig: Path, tmp_path: Path) -> None:
    manifests = "---\n".join(
        [
            isvc("sklearn-iris", "sklearn", "/mnt/models"),
            isvc("xgboost-iris", "xgboost", "/mnt/models/model.bst", key="xgboost"),
            isvc("onnx-iris", "onnx", "/app/config/models/iris.onnx"),
        ]
    )
    config = load([write(tmp_path, "gw.yaml", GATEWAY), write(tmp_path, "isvc.yaml", manifests)])
    config = await Rollouts(tmp_path / "state").resolve(config)  # numbered as a gateway's first apply does
    async with backend(kubeconfig, settings=config.gateway) as kube:
        await kube.sync(list(config.services))
        names = ("sklearn-iris-predictor-00001", "xgboost-iris-predictor-00001", "onnx-iris-predictor-00001")
        await wait_until(lambda: all(served(kube_api, name) is not None for name in names), "the three Deployments")
    sklearn, xgboost, onnx = (served(kube_api, name) for name in names)
    assert sklearn is not None and xgboost is not None and onnx is not None
    assert sklearn["image"] == "kserve/sklearnserver:v0.14.1" and "command" not in sklearn
    assert sklearn["args"] == ["--model_name=sklearn-iris", "--model_dir=/mnt/models", "--http_port=8080"]
    for container, fmt, model in ((xgboost, "xgboost", "/mnt/models/model.bst"), (onnx, "onnx", "/app/config/models/iris.onnx")):
        assert container["image"] == "registry.example.com/serving-gateway:0.2.0"
        assert container["command"] == ["gateway", "modelserver"]
        assert container["args"][:4] == ["--model", model, "--format", fmt]


ISVC_CONTAINERS = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: flowers
spec:
  predictor:
    serviceAccountName: s3-reader
    containers:
      - name: kserve-container
        image: example/flowers:1
        ports: [{containerPort: 8080}]
"""
ISVC_MODEL = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
spec:
  predictor:
    serviceAccountName: gcs-reader
    model: {modelFormat: {name: onnx}, storageUri: gs://bucket/iris}
"""
KFSERVING = """\
apiVersion: serving.kubeflow.org/v1alpha2
kind: InferenceService
metadata:
  name: flowers
spec:
  default:
    predictor:
      serviceAccountName: reader-v1
      custom:
        container: {image: 'example/flowers:1'}
  canary:
    predictor:
      serviceAccountName: reader-v2
      custom:
        container: {image: 'example/flowers:2'}
  canaryTrafficPercent: 10
"""


def pod_of(api: KubeApi, name: str) -> dict[str, Any]:
    made = next(d for d in api.objects("deployments", "default") if d["metadata"]["name"] == name)
    found: dict[str, Any] = made["spec"]["template"]["spec"]
    return found


async def test_an_inference_services_service_account_runs_its_pods(kube_api: KubeApi, kubeconfig: Path, tmp_path: Path) -> None:
    manifests = "---\n".join([ISVC_CONTAINERS, ISVC_MODEL])
    config = load([write(tmp_path, "gw.yaml", GATEWAY), write(tmp_path, "isvc.yaml", manifests)])
    assert not [w for w in config.warnings if "serviceAccountName" in str(w)]  # not "ignored" any more
    config = await Rollouts(tmp_path / "state").resolve(config)
    names = ("flowers-predictor-00001", "iris-predictor-00001")
    async with backend(kubeconfig, settings=config.gateway) as kube:
        await kube.sync(list(config.services))
        await wait_until(lambda: all(served(kube_api, name) is not None for name in names), "the Deployments")
    containers, model = (pod_of(kube_api, name) for name in names)
    assert containers["serviceAccountName"] == "s3-reader"
    assert model["serviceAccountName"] == "gcs-reader"  # the storage initializer's credentials come with it
    assert [c["name"] for c in model["initContainers"]] == ["storage-initializer"]


async def test_kfservings_default_and_canary_each_run_as_their_service_account(
    kube_api: KubeApi, kubeconfig: Path, tmp_path: Path
) -> None:
    config = load([write(tmp_path, "gw.yaml", GATEWAY), write(tmp_path, "kfs.yaml", KFSERVING)])
    assert not [w for w in config.warnings if "serviceAccountName" in str(w)]
    async with backend(kubeconfig, settings=config.gateway) as kube:
        await kube.sync(list(config.services))
        await wait_until(lambda: served(kube_api, "flowers-canary") is not None, "the Deployments")
        await wait_until(lambda: served(kube_api, "flowers-default") is not None, "the Deployments")
    assert pod_of(kube_api, "flowers-default")["serviceAccountName"] == "reader-v1"
    assert pod_of(kube_api, "flowers-canary")["serviceAccountName"] == "reader-v2"


@pytest.mark.parametrize(
    "value, shown",
    [
        ("S3_Reader", "'S3_Reader'"),
        ("-reader", "'-reader'"),
        ("[reader]", "a list"),
        ("'" + "r" * 254 + "'", "'" + "r" * 254 + "'"),
    ],
)
def test_a_bad_service_account_name_is_a_clear_error(tmp_path: Path, value: str, shown: str) -> None:
    text = ISVC_CONTAINERS.replace("serviceAccountName: s3-reader", f"serviceAccountName: {value}")
    with pytest.raises(ConfigError) as raised:
        load([write(tmp_path, "gw.yaml", GATEWAY), write(tmp_path, "isvc.yaml", text)])
    expected = (
        f"spec.predictor.serviceAccountName: must be a ServiceAccount name (lowercase letters, digits, '-' and '.'), got {shown}"
    )
    assert expected in str(raised.value)
