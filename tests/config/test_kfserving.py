"""KFServing's InferenceService (serving.kubeflow.org/v1alpha2): `default` and `canary` endpoints, one split."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway.config import load, routing_table
from tests.config.support import one_service, problems, write

LABEL = "document 1 (InferenceService/flowers)"
REPLICA = str(Path(__file__).parents[1] / "e2e" / "sleepy_replica.py")


def custom(image: str, arg: str) -> str:
    return f"""      custom:
        container:
          image: {image}
          command: ["{sys.executable}", "{REPLICA}", "{{port}}"]
          args: ["{arg}"]
"""


def kfserving(default: str, canary: str | None = None, percent: str | None = None, extra: str = "") -> str:
    text = "apiVersion: serving.kubeflow.org/v1alpha2\nkind: InferenceService\nmetadata:\n  name: flowers\nspec:\n"
    text += f"  default:\n    predictor:\n{default}{extra}"
    if canary is not None:
        text += f"  canary:\n    predictor:\n{canary}"
    if percent is not None:
        text += f"  canaryTrafficPercent: {percent}\n"
    return text


def test_default_and_canary_split_like_a_paddleservice(tmp_path: Path) -> None:
    scaling = "      minReplicas: 2\n      maxReplicas: 4\n      parallelism: 3\n"
    path = write(tmp_path, "x.yaml", kfserving(custom("flowers:v1", "v1"), custom("flowers:v2", "v2"), "20", scaling))
    config = load([path])
    service = one_service(config, "flowers")
    assert service.canary is not None and service.canary_percent == 20
    assert service.default.image == "flowers:v1" and service.canary.image == "flowers:v2"
    assert service.default.command is not None and service.default.command[-1] == "v1"
    assert service.canary.command is not None and service.canary.command[-1] == "v2"
    assert (service.scaling.min_scale, service.scaling.max_scale, service.scaling.container_concurrency) == (2, 4, 3)
    table = routing_table(config)
    assert "flowers.default.example.com" in table and "80%" in table and "20%" in table
    assert not config.warnings


def test_a_default_alone_takes_all_the_traffic_and_an_onnx_model_is_served(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "flowers.onnx").write_bytes(b"not really onnx")
    service = one_service(
        load([write(tmp_path, "x.yaml", kfserving("      onnx:\n        storageUri: models/flowers.onnx\n"))]), "flowers"
    )
    assert service.canary is None and service.canary_percent == 0
    assert service.default.command is not None and "modelserver" in service.default.command
    assert service.scaling.min_scale == 1  # KFServing's minReplicas default


def test_the_canarys_own_scaling_is_warned_about(tmp_path: Path) -> None:
    canary = custom("flowers:v2", "v2") + "      maxReplicas: 9\n"
    config = load([write(tmp_path, "x.yaml", kfserving(custom("flowers:v1", "v1"), canary, "10"))])
    assert one_service(config, "flowers").scaling.max_scale == 0
    assert [w.split(": ", 1)[1] for w in config.warnings] == [
        f"{LABEL}: spec.canary.predictor: scaling settings are taken from spec.default.predictor for both endpoints"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: serving.kubeflow.org/v1alpha2\nkind: InferenceService\nmetadata:\n  name: flowers\nspec:\n  canaryTrafficPercent: 10\n",
            "spec.default: required",
        ),
        (kfserving(custom("a:1", "v1"), percent="30"), "spec.canaryTrafficPercent: given (30) without spec.canary"),
        (kfserving(custom("a:1", "v1"), custom("a:2", "v2"), "150"), "spec.canaryTrafficPercent: must be"),
        (kfserving("      custom: {}\n"), "spec.default.predictor.custom.container: required (the predictor's container)"),
        (
            kfserving("      tensorflow:\n        storageUri: gs://kfserving-samples/models/tensorflow/flowers\n"),
            "spec.default.predictor.tensorflow",
        ),
        (kfserving(custom("a:1", "v1") + "      parallelism: -1\n"), "spec.default.predictor.parallelism: must be"),
        (kfserving(custom("a:1", "v1"), "      minReplicas: 1\n"), "spec.canary.predictor: needs model"),
    ],
)
def test_bad_manifests_are_refused_naming_the_field(tmp_path: Path, text: str, expected: str) -> None:
    found = problems([write(tmp_path, "x.yaml", text)])
    assert any(expected in problem for problem in found), found


def test_another_api_version_names_both_that_are_taken(tmp_path: Path) -> None:
    text = kfserving(custom("a:1", "v1")).replace("serving.kubeflow.org/v1alpha2", "serving.kubeflow.org/v1alpha1")
    [problem] = problems([write(tmp_path, "x.yaml", text)])
    assert problem.endswith(
        "apiVersion: must be serving.kserve.io/v1beta1 or serving.kubeflow.org/v1alpha2 for InferenceService, "
        "got 'serving.kubeflow.org/v1alpha1'"
    )
