"""An InferenceService's remote storageUri: accepted by its form, no network at config time (issue 12 item 3)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway.config import load
from tests.config.support import one_service, write
from tests.config.test_kserve import KUBERNETES, isvc


@pytest.mark.parametrize(
    "uri",
    [
        "s3://models/iris",
        "S3://models/iris/",
        "gs://kfserving-samples/models/sklearn/iris",
        "https://example.com/models/iris.tar.gz",
        "http://127.0.0.1:1/iris.zip",  # nothing listens there: the config does not look
    ],
)
@pytest.mark.parametrize("backend", ["local", "kubernetes"])
def test_a_remote_uri_is_downloaded_by_the_replica(tmp_path: Path, uri: str, backend: str) -> None:
    files = [write(tmp_path, "x.yaml", isvc(f"model:\n  modelFormat: {{name: onnx}}\n  storageUri: {uri}\n"))]
    if backend == "kubernetes":
        files.insert(0, write(tmp_path, "gw.yaml", KUBERNETES))
    default = one_service(load(files), "iris").default
    assert default.storage_uri == uri
    assert default.model_path == "/mnt/models"  # where the init container puts it under kubernetes
    assert default.command == (
        sys.executable,
        "-m",
        "gateway",
        "modelserver",
        "--model",
        uri,
        "--format",
        "onnx",
        "--name",
        "iris",
        "--port",
        "{port}",
    )
    assert default.readiness_path == "/v2/health/ready"
    assert default.model_format == "onnx"


@pytest.mark.parametrize(("fmt", "key"), [("sklearn", "model"), ("xgboost", "xgboost")])
def test_every_format_downloads_its_model(tmp_path: Path, fmt: str, key: str) -> None:
    predictor = f"model:\n  modelFormat: {{name: {fmt}}}\n  storageUri: gs://kfserving-samples/models/{fmt}/iris\n"
    if key != "model":
        predictor = f"{key}:\n  storageUri: gs://kfserving-samples/models/{fmt}/iris\n"
    default = one_service(load([write(tmp_path, "x.yaml", isvc(predictor))]), "iris").default
    assert default.storage_uri == f"gs://kfserving-samples/models/{fmt}/iris" and default.model_format == fmt
    assert default.command is not None and default.command[5:8] == (f"gs://kfserving-samples/models/{fmt}/iris", "--format", fmt)


def test_a_local_uri_has_no_download(tmp_path: Path) -> None:
    model = tmp_path / "iris.onnx"
    model.write_bytes(b"onnx")
    default = one_service(load([write(tmp_path, "x.yaml", isvc(f"onnx:\n  storageUri: file://{model}\n"))]), "iris").default
    assert default.storage_uri is None and default.model_path == str(model)


@pytest.mark.parametrize(
    ("uri", "module", "package"),
    [("s3://models/iris", "boto3", "boto3"), ("gs://b/iris", "google.cloud.storage", "google-cloud-storage")],
)
def test_without_the_storage_extra_validate_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, module: str, package: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    path = write(tmp_path, "x.yaml", isvc(f"model:\n  modelFormat: {{name: onnx}}\n  storageUri: {uri}\n"))
    scheme = uri.split(":", 1)[0]
    assert load([path]).warnings == (
        f"{path}: document 1 (InferenceService/iris): spec.predictor.model.storageUri: {scheme}:// needs the {package} library: "
        "pip install 'serving-gateway[storage]'; until then its replicas fail to start",
    )


def test_with_the_storage_extra_there_is_no_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "x.yaml", isvc("model:\n  modelFormat: {name: onnx}\n  storageUri: s3://models/iris\n"))
    assert load([path]).warnings == ()
