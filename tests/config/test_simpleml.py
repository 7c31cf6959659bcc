from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load
from tests.config.support import one_service, problems, write

HEAD = "apiVersion: tensorstack.dev/v1beta1\nkind: SimpleMLService\nmetadata:\n  name: {name}\n"
IMAGE_WARNING = (
    "has a container image (t9kpublic/tensorflow-serving:2.6.0) and no command: the local backend runs "
    "commands, not images, so this revision has no replicas and its requests get 503; add a command to run it here"
)

# The first example of TensorStack's manual, unchanged.
TENSORFLOW_SAMPLE = """\
apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata:
  name: sample
spec:
  replicas: 1
  storage:
    s3:
      secretName: s3-secret
      uri: s3://models/mnist/
      containerPath: /var/lib/t9k/model
  tensorflow:
    image: t9kpublic/tensorflow-serving:2.6.0
    resources:
      requests:
        cpu: 1
        memory: 1Gi
"""

CUSTOM = """\
spec:
  replicas: 3
  custom:
    spec:
      containers:
      - name: user-container
        command: [python, -m, http.server]
        args: ["{port}"]
        image: python:3.11
      - name: sidecar
        image: envoy
  service:
    ports:
    - name: http
      port: 7070
  scheduler:
    t9kScheduler:
      queue: default
"""


def test_custom_container_runs_locally_with_fixed_replicas(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", HEAD.format(name="custom") + CUSTOM)
    config = load([path])
    service = one_service(config, "custom")
    assert service.default.command == ("python", "-m", "http.server", "{port}")
    assert service.default.image == "python:3.11"
    assert service.default.container_port == 7070
    assert service.default.workdir == str(tmp_path)
    assert service.scaling.autoscaler_class == "fixed"
    assert (service.scaling.min_scale, service.scaling.max_scale) == (3, 3)
    label = f"{path}: document 1 (SimpleMLService/custom)"
    assert config.warnings == (
        f"{label}: spec.scheduler: ignored: replicas are placed by the gateway's backend",
        f"{label}: spec.custom.spec.containers[1]: only the first container is run, ignored",
        f"{label}: spec.service.ports: the local backend gives each replica its own port through {{port}} and PORT",
    )


def test_tensorflow_sample_loads_with_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", TENSORFLOW_SAMPLE)
    config = load([path])
    service = one_service(config, "sample")
    default = service.default
    assert default.command is None
    assert default.image == "t9kpublic/tensorflow-serving:2.6.0"
    assert default.container_command == ("/usr/bin/tensorflow_model_server",)
    assert default.args == (
        "--port=9090",
        "--rest_api_port=8080",
        "--model_name=sample",
        "--model_base_path=/var/lib/t9k/model",
    )
    assert default.container_port == 8080
    assert default.resources == {"requests": {"cpu": "1", "memory": "1Gi"}}
    assert (service.scaling.min_scale, service.scaling.max_scale) == (1, 1)
    label = f"{path}: document 1 (SimpleMLService/sample)"
    assert config.warnings == (f"{label}: spec.tensorflow: {IMAGE_WARNING}",)  # storage.s3 is downloaded: no warning
    assert (default.storage_uri, default.storage_secret, default.storage_path) == (
        "s3://models/mnist/",
        "s3-secret",
        "/var/lib/t9k/model",
    )


def test_pytorch(tmp_path: Path) -> None:
    text = HEAD.format(name="torch") + "spec:\n  pytorch:\n    image: torchserve:1\n    modelsFlag: resnet-18=resnet-18.mar\n"
    default = one_service(load([write(tmp_path, "x.yaml", text)]), "torch").default
    assert default.container_command == ("torchserve",)
    assert default.args == (
        "--start",
        "--model-store=/var/lib/t9k/model",
        "--models",
        "resnet-18=resnet-18.mar",
    )


def test_misspelt_framework_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", HEAD.format(name="typo") + "spec:\n  pytroch:\n    image: x\n")
    label = f"{path}: document 1 (SimpleMLService/typo)"
    assert problems([path]) == [f"{label}: spec: needs one of custom, tensorflow or pytorch"]


def test_invalid_values(tmp_path: Path) -> None:
    spec = """\
spec:
  replicas: 0
  custom:
    spec:
      containers:
      - command: python
"""
    path = write(tmp_path, "x.yaml", HEAD.format(name="bad") + spec)
    label = f"{path}: document 1 (SimpleMLService/bad)"
    assert problems([path]) == [
        f"{label}: spec.replicas: must be >= 1, got 0",
        f"{label}: spec.custom.spec.containers[0].command: must be a list, got 'python'",
    ]


def test_wrong_replicas_with_an_activation_scale_is_reported_once(tmp_path: Path) -> None:
    """The scale checks do not run on the wrong replica count (they once raised TypeError on it)."""
    meta = "  annotations:\n    autoscaling.knative.dev/activation-scale: '2'\n"
    spec = "spec:\n  replicas: 0\n  custom:\n    spec:\n      containers:\n      - command: [python, '{port}']\n"
    path = write(tmp_path, "x.yaml", HEAD.format(name="bad") + meta + spec)
    assert problems([path]) == [f"{path}: document 1 (SimpleMLService/bad): spec.replicas: must be >= 1, got 0"]


def test_two_frameworks(tmp_path: Path) -> None:
    spec = "spec:\n  tensorflow: {image: a}\n  pytorch: {image: b}\n"
    path = write(tmp_path, "x.yaml", HEAD.format(name="two") + spec)
    assert problems([path]) == [
        (
            f"{path}: document 1 (SimpleMLService/two): spec: give exactly one of custom, tensorflow or pytorch, "
            "got tensorflow, pytorch"
        )
    ]


def test_container_without_command_or_image(tmp_path: Path) -> None:
    spec = "spec:\n  custom:\n    spec:\n      containers:\n      - args: [--port=8080]\n"
    path = write(tmp_path, "x.yaml", HEAD.format(name="noop") + spec)
    assert problems([path]) == [
        (
            f"{path}: document 1 (SimpleMLService/noop): spec.custom.spec.containers[0].command: required for the "
            "local backend (an argv list or a shell string)"
        )
    ]


def test_the_served_port_is_8080_whatever_the_container_lists(tmp_path: Path) -> None:
    spec = (
        "spec:\n  custom:\n    spec:\n      containers:\n      - name: server\n        image: example/server:1\n"
        "        command: [serve, '{port}']\n        ports: [{name: grpc, containerPort: 9000}]\n"
    )
    path = write(tmp_path, "x.yaml", HEAD.format(name="ports") + spec)
    assert one_service(load([path]), "ports").default.container_port == 8080


@pytest.mark.parametrize(("port", "grpc"), [(8501, 9090), (9090, 9091)])
def test_tensorflow_serves_rest_on_the_service_port(tmp_path: Path, port: int, grpc: int) -> None:
    text = TENSORFLOW_SAMPLE + f"  service:\n    ports:\n    - name: http\n      port: {port}\n"
    default = one_service(load([write(tmp_path, "x.yaml", text)]), "sample").default
    assert default.container_port == port  # probed and declared there ...
    assert default.args == (  # ... and the server listens there
        f"--port={grpc}",
        f"--rest_api_port={port}",
        "--model_name=sample",
        "--model_base_path=/var/lib/t9k/model",
    )
