from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway.config import load
from tests.config.support import one_service, problems, write

LABEL = "document 1 (InferenceService/iris)"


def isvc(predictor: str, extra: str = "", meta: str = "") -> str:
    indented = "".join(f"    {line}\n" for line in predictor.strip("\n").splitlines())
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata:\n  name: iris\n{meta}spec:\n  predictor:\n{indented}{extra}"
    )


ONNX = "model:\n  modelFormat: {name: onnx}\n  storageUri: models/iris.onnx\n"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "iris.onnx"
    path.parent.mkdir()
    path.write_bytes(b"not really onnx")
    return path


def test_onnx_model_runs_the_builtin_model_server(tmp_path: Path, model: Path) -> None:
    service = one_service(load([write(tmp_path, "x.yaml", isvc(ONNX))]), "iris")
    default = service.default
    assert default.command == (
        sys.executable,
        "-m",
        "gateway",
        "modelserver",
        "--model",
        str(model),
        "--format",
        "onnx",
        "--name",
        "iris",
        "--port",
        "{port}",
    )
    assert default.readiness_path == "/v2/health/ready"
    assert default.workdir == str(tmp_path)
    assert service.canary is None
    assert service.scaling.min_scale == 1
    assert service.scaling.max_scale == 0
    assert service.scaling.autoscaler_class == "kpa"


@pytest.mark.parametrize(
    "uri",
    ["file://models/iris.onnx", "models", "./models/", "file://{abs}", "file://{abs_dir}", "{abs}"],
)
def test_storage_uri_forms(tmp_path: Path, model: Path, uri: str) -> None:
    uri = uri.format(abs=model, abs_dir=model.parent)
    text = isvc(f"onnx:\n  storageUri: {uri}\n")
    service = one_service(load([write(tmp_path, "x.yaml", text)]), "iris")
    assert service.default.command is not None and str(model) in service.default.command


def test_folder_with_one_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "classifier.onnx").write_bytes(b"x")
    text = isvc("model:\n  modelFormat: {name: onnx}\n  storageUri: m\n")
    service = one_service(load([write(tmp_path, "x.yaml", text)]), "iris")
    assert service.default.command is not None
    assert str(tmp_path / "m" / "classifier.onnx") in service.default.command


def test_folder_with_two_onnx_files(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.onnx").write_bytes(b"x")
    (tmp_path / "m" / "b.onnx").write_bytes(b"x")
    path = write(tmp_path, "x.yaml", isvc("model:\n  modelFormat: {name: onnx}\n  storageUri: m\n"))
    assert problems([path]) == [
        (
            f"{path}: {LABEL}: spec.predictor.model.storageUri: folder {tmp_path / 'm'} must hold model.onnx "
            "or exactly one .onnx file, found 2 (a.onnx, b.onnx)"
        )
    ]


def test_missing_model_file(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", isvc(ONNX))
    assert problems([path]) == [
        f"{path}: {LABEL}: spec.predictor.model.storageUri: model file not found: {tmp_path / 'models' / 'iris.onnx'}"
    ]


HINT = "only onnx, sklearn, xgboost models are served by the built-in model server (or give containers[0] with a command)"


@pytest.mark.parametrize(
    ("predictor", "message"),
    [
        (
            "model:\n  modelFormat: {name: tensorflow}\n  storageUri: gs://x",
            f"spec.predictor.model.modelFormat.name: {HINT}, got 'tensorflow'",
        ),
        (
            "model:\n  modelFormat: {name: 3}\n  storageUri: m.onnx",
            f"spec.predictor.model.modelFormat.name: {HINT}, got 3",
        ),
        (
            "pytorch:\n  storageUri: gs://kfserving-examples/models/torchserve/image_classifier",
            f"spec.predictor.pytorch: {HINT}, got a pytorch predictor",
        ),
        ("lightgbm:\n  storageUri: m.bst", f"spec.predictor.lightgbm: {HINT}, got a lightgbm predictor"),
        (
            "model:\n  modelFormat: {name: onnx}\n  storageUri: ftp://bucket/iris.onnx",
            "spec.predictor.model.storageUri: ftp://bucket/iris.onnx: unsupported scheme 'ftp', "
            "expected a local path or one of file, s3, gs, http, https",
        ),
        (
            "onnx:\n  storageUri: s3:///iris.onnx",
            "spec.predictor.onnx.storageUri: s3:///iris.onnx: expected s3://BUCKET/PREFIX, bucket ''",
        ),
        (
            "onnx:\n  storageUri: https:///iris.onnx",
            "spec.predictor.onnx.storageUri: https:///iris.onnx: no host",
        ),
        (
            "onnx:\n  storageUri: http://example.com/",
            "spec.predictor.onnx.storageUri: http://example.com/: names no file on example.com",
        ),
        ("onnx:\n  storageUri: 'file://'", "spec.predictor.onnx.storageUri: file://: names no file"),
        ("model:\n  storageUri: m.onnx", "spec.predictor.model.modelFormat: required (name: one of onnx, sklearn, xgboost)"),
        (
            "model:\n  modelFormat: {name: onnx}",
            "spec.predictor.model.storageUri: required (a local onnx model file, a folder holding one, or a storage URI)",
        ),
        (
            "xgboost: {}",
            "spec.predictor.xgboost.storageUri: required (a local xgboost model file, a folder holding one, or a storage URI)",
        ),
        ("model: onnx", "spec.predictor.model: must be a mapping, got 'onnx'"),
        (
            "minReplicas: 1",
            "spec.predictor: needs model (with modelFormat and storageUri), one of onnx, sklearn, xgboost, or containers",
        ),
        (
            "model: {modelFormat: {name: onnx}, storageUri: m.onnx}\ncontainers: []",
            "spec.predictor: give exactly one of model, onnx, sklearn, xgboost or containers, got model, containers",
        ),
        (
            "sklearn: {storageUri: m.pkl}\nxgboost: {storageUri: m.bst}",
            "spec.predictor: give exactly one of model, onnx, sklearn, xgboost or containers, got sklearn, xgboost",
        ),
        ("containers: {name: a}", "spec.predictor.containers: must be a list, got a mapping"),
    ],
)
def test_unsupported_predictors(tmp_path: Path, predictor: str, message: str) -> None:
    path = write(tmp_path, "x.yaml", isvc(predictor))
    assert problems([path]) == [f"{path}: {LABEL}: {message}"]


def test_missing_predictor(tmp_path: Path) -> None:
    text = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: iris\nspec: {}\n"
    path = write(tmp_path, "x.yaml", text)
    assert problems([path]) == [f"{path}: {LABEL}: spec.predictor: required"]


def test_scaling_fields_and_timeout(tmp_path: Path, model: Path) -> None:
    predictor = ONNX + (
        "minReplicas: 0\nmaxReplicas: 5\nscaleTarget: 20\nscaleMetric: rps\ncontainerConcurrency: 8\ntimeout: 30\n"
        "model_extra: 1\n"
    )
    path = write(tmp_path, "x.yaml", isvc(predictor))
    config = load([path])
    service = one_service(config, "iris")
    assert (service.scaling.min_scale, service.scaling.max_scale) == (0, 5)
    assert service.scaling.target == 20.0
    assert service.scaling.metric == "rps"
    assert service.scaling.container_concurrency == 8
    assert service.timeout == 30.0
    assert config.warnings == (f"{path}: {LABEL}: spec.predictor.model_extra: unknown key, ignored (did you mean model?)",)


def test_bad_scaling_fields(tmp_path: Path, model: Path) -> None:
    predictor = ONNX + "minReplicas: 3\nmaxReplicas: 2\ncontainerConcurrency: -1\ntimeout: 0\n"
    path = write(tmp_path, "x.yaml", isvc(predictor))
    assert problems([path]) == [
        f"{path}: {LABEL}: spec.predictor.containerConcurrency: must be 0..1000, got -1",
        f"{path}: {LABEL}: spec.predictor.maxReplicas: must be 0 (unbounded) or >= the minimum scale 3, got 2",
        f"{path}: {LABEL}: spec.predictor.timeout: must be >= 1, got 0",
    ]


def test_warnings_for_what_is_not_served(tmp_path: Path, model: Path) -> None:
    predictor = ONNX + "scaleMetric: cpu\ncanaryTrafficPercent: 10\n"
    extra = "  transformer:\n    containers: [{image: t}]\n"
    path = write(tmp_path, "x.yaml", isvc(predictor, extra))
    config = load([path])
    assert config.services[0].scaling.metric == "concurrency"
    assert config.warnings == (
        f"{path}: {LABEL}: spec.transformer: not supported by the gateway, ignored; only the predictor is served",
        f"{path}: {LABEL}: spec.predictor.scaleMetric: cpu is not measured by the gateway; scaling on concurrency",
    )
    # canaryTrafficPercent is no longer a warning: it is carried to the rollout (gateway.rollouts)
    rollout = config.services[0].rollout
    assert rollout is not None and (rollout.canary_percent, rollout.tag_routing) == (10, False)


def test_canary_percent_is_still_validated(tmp_path: Path, model: Path) -> None:
    path = write(tmp_path, "x.yaml", isvc(ONNX + "canaryTrafficPercent: 150\n"))
    assert problems([path]) == [f"{path}: {LABEL}: spec.predictor.canaryTrafficPercent: must be 0..100, got 150"]


def test_annotations_override_predictor_fields(tmp_path: Path, model: Path) -> None:
    meta = '  annotations:\n    autoscaling.knative.dev/min-scale: "0"\n    autoscaling.knative.dev/target: "5"\n'
    path = write(tmp_path, "x.yaml", isvc(ONNX + "minReplicas: 2\nscaleTarget: 50\n", meta=meta))
    scaling = one_service(load([path]), "iris").scaling
    assert (scaling.min_scale, scaling.target) == (0, 5.0)


def test_custom_container(tmp_path: Path) -> None:
    predictor = """
containers:
  - name: kserve-container
    image: registry/custom:1
    command: [python, serve.py]
    args: [--port, "{port}"]
    env: [{name: MODEL, value: iris}]
    ports: [{containerPort: 8080}]
    resources: {requests: {cpu: "1"}}
    readinessProbe: {httpGet: {path: /ready}}
"""
    service = one_service(load([write(tmp_path, "x.yaml", isvc(predictor))]), "iris")
    default = service.default
    assert default.command == ("python", "serve.py", "--port", "{port}")
    assert default.image == "registry/custom:1"
    assert default.container_command == ("python", "serve.py")
    assert default.args == ("--port", "{port}")
    assert default.env == (("MODEL", "iris"),)
    assert default.container_port == 8080
    assert default.resources == {"requests": {"cpu": "1"}}
    assert default.readiness_path == "/ready"


KUBERNETES = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: kubernetes\n"


def test_onnx_under_kubernetes_needs_a_path_inside_the_image(tmp_path: Path, model: Path) -> None:
    gateway = write(tmp_path, "gw.yaml", KUBERNETES)
    path = write(tmp_path, "x.yaml", isvc(ONNX))
    assert problems([gateway, path]) == [
        (
            f"{path}: {LABEL}: spec.predictor.model.storageUri: under the kubernetes backend the model is read inside "
            "the model-server image, so the path must be absolute there (deploy/Dockerfile puts config/ at "
            "/app/config), got 'models/iris.onnx'"
        ),
    ]


@pytest.mark.parametrize("uri", ["/app/config/models/iris.onnx", "file:///app/config/models/iris.onnx"])
def test_onnx_under_kubernetes_runs_the_model_server_image(tmp_path: Path, uri: str) -> None:
    gateway = write(tmp_path, "gw.yaml", KUBERNETES)
    path = write(tmp_path, "x.yaml", isvc(f"model:\n  modelFormat: {{name: onnx}}\n  storageUri: {uri}\n"))
    default = load([gateway, path]).services[0].default
    assert default.model_path == "/app/config/models/iris.onnx"
    assert default.image is None
    assert default.readiness_path == "/v2/health/ready"


def test_onnx_missing_here_is_an_error_only_under_local(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", isvc("model:\n  modelFormat: {name: onnx}\n  storageUri: /app/config/models/iris.onnx\n"))
    assert problems([path]) == [
        f"{path}: {LABEL}: spec.predictor.model.storageUri: model file not found: /app/config/models/iris.onnx"
    ]


def test_onnx_under_static_cannot_give_endpoints(tmp_path: Path, model: Path) -> None:
    gateway = write(tmp_path, "gw.yaml", "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n")
    path = write(tmp_path, "x.yaml", isvc(ONNX))
    assert problems([gateway, path]) == [
        (
            f"{path}: {LABEL}: spec.predictor: the static backend needs endpoints, which this InferenceService cannot "
            "give; use a PaddleService with endpoints"
        )
    ]


def test_canary_percent_at_kfservings_level_is_an_error(tmp_path: Path, model: Path) -> None:
    """A v1beta1 InferenceService with spec.canaryTrafficPercent (where KFServing's v1alpha2 had it) would
    otherwise roll the new predictor out to all traffic: refused, pointing to spec.predictor."""
    path = write(tmp_path, "x.yaml", isvc(ONNX, "  canaryTrafficPercent: 10\n"))
    assert problems([path]) == [
        f"{path}: {LABEL}: spec.canaryTrafficPercent: belongs in spec.predictor (serving.kserve.io/v1beta1); "
        "did you mean spec.predictor.canaryTrafficPercent?"
    ]


def test_canary_percent_quoted_is_taken_as_every_integer_field_is(tmp_path: Path, model: Path) -> None:
    """The project reads numeric strings in every integer field (gateway/config/values.py `number`): "10" is 10,
    "10.5" and "ten" are refused."""
    rollout = one_service(load([write(tmp_path, "x.yaml", isvc(ONNX + 'canaryTrafficPercent: "10"\n'))]), "iris").rollout
    assert rollout is not None and rollout.canary_percent == 10
    for bad in ('"10.5"', '"ten"'):
        path = write(tmp_path, "y.yaml", isvc(ONNX + f"canaryTrafficPercent: {bad}\n"))
        assert problems([path]) == [
            f"{path}: {LABEL}: spec.predictor.canaryTrafficPercent: must be an integer 0..100, got {bad.replace(chr(34), chr(39))}"
        ]
