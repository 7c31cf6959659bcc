"""Deployments for InferenceService models of each format: the runtime table picks image, command and args."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.backends.deployment import build_deployment
from gateway.backends.errors import BackendConfigError
from gateway.config import KubernetesSettings
from tests.backends.deployment_support import build, container, load_kubernetes


def isvc(name: str, model: str) -> str:
    indented = "".join(f"      {line}\n" for line in model.strip("\n").splitlines())
    return (
        f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n"
        f"spec:\n  predictor:\n    model:\n{indented}"
    )


RUNTIMES = """\
  kubernetes:
    modelServerImage: registry.example.com/serving-gateway:0.2.0
    runtimes:
      kserve-sklearnserver:
        modelFormats: [sklearn]
        image: kserve/sklearnserver:v0.14.1
        args: ["--model_name={{.Name}}", "--model_dir={model}", "--http_port={port}"]
      gateway-xgboost:
        modelFormats: [xgboost]
        image: registry.example.com/serving-gateway-xgboost:0.2.0
"""


def served_args(model: str, fmt: str, name: str) -> list[str]:
    return ["--model", model, "--format", fmt, "--name", name, "--port", "8080", "--host", "0.0.0.0"]


@pytest.mark.parametrize(
    ("fmt", "path"),
    [("onnx", "/app/config/models/iris.onnx"), ("sklearn", "/models/sklearn"), ("xgboost", "/models/xgboost/model.bst")],
)
def test_by_default_each_format_runs_the_model_server_image(tmp_path: Path, fmt: str, path: str) -> None:
    config = load_kubernetes(tmp_path, isvc("iris", f"modelFormat: {{name: {fmt}}}\nstorageUri: {path}"))
    served = container(build(config))
    assert served["image"] == "serving-gateway:0.1.0"
    assert served["command"] == ["gateway", "modelserver"]
    assert served["args"] == served_args(path, fmt, "iris")


def test_the_runtime_table_picks_each_formats_image(tmp_path: Path) -> None:
    manifests = "---\n".join(
        [
            isvc("sk", "modelFormat: {name: sklearn}\nstorageUri: /mnt/models"),
            isvc("xg", "modelFormat: {name: xgboost}\nstorageUri: /mnt/models/model.bst"),
            isvc("ox", "modelFormat: {name: onnx}\nstorageUri: /app/config/models/iris.onnx"),
        ]
    )
    config = load_kubernetes(tmp_path, manifests, RUNTIMES)
    sklearn = container(build(config, "sk"))
    assert sklearn["image"] == "kserve/sklearnserver:v0.14.1"
    assert "command" not in sklearn  # the image's entrypoint, as KServe's runtime runs it
    assert sklearn["args"] == ["--model_name=sk", "--model_dir=/mnt/models", "--http_port=8080"]
    xgboost = container(build(config, "xg"))
    assert xgboost["image"] == "registry.example.com/serving-gateway-xgboost:0.2.0"
    assert (xgboost["command"], xgboost["args"]) == (
        ["gateway", "modelserver"],
        served_args("/mnt/models/model.bst", "xgboost", "xg"),
    )
    onnx = container(build(config, "ox"))  # no runtime of its own: the built-in one, with modelServerImage
    assert onnx["image"] == "registry.example.com/serving-gateway:0.2.0"
    assert onnx["args"] == served_args("/app/config/models/iris.onnx", "onnx", "ox")


def test_a_model_may_name_its_runtime(tmp_path: Path) -> None:
    gateway = RUNTIMES + "      other-sklearn:\n        modelFormats: [sklearn]\n        image: example/other-sklearn:1\n"
    model = "modelFormat: {name: sklearn}\nruntime: other-sklearn\nstorageUri: /mnt/models"
    served = container(build(load_kubernetes(tmp_path, isvc("sk", model), gateway)))
    assert served["image"] == "example/other-sklearn:1"


def test_a_model_without_a_runtime_is_a_clear_error_when_built(tmp_path: Path) -> None:
    config = load_kubernetes(tmp_path, isvc("sk", "modelFormat: {name: sklearn}\nstorageUri: /mnt/models"))
    service = config.services[0]
    onnx_only = replace(config.gateway.kubernetes, runtimes=(replace(KubernetesSettings().runtimes[0], model_formats=("onnx",)),))
    with pytest.raises(
        BackendConfigError, match=r"default/sk-predictor: no runtime in GatewayConfig spec.kubernetes.runtimes serves sklearn"
    ):
        build_deployment(service, service.default, onnx_only)
    unknown = replace(service.default, model_runtime="kserve-sklearnserver")
    with pytest.raises(BackendConfigError, match=r"no runtime 'kserve-sklearnserver' in GatewayConfig"):
        build_deployment(service, unknown, config.gateway.kubernetes)
