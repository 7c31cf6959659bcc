"""The KServe quick start, word for word but for the bucket's address, served on the local backend:
the model trained by the test and uploaded to moto's S3 and to the GCS emulator, for each format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import needs
from tests.storage.servers import IRIS, GcsServer, S3Server, Start, predict
from tests.tabular_models import SEED_INPUT, write_sklearn_iris, write_xgboost_iris

pytestmark = [pytest.mark.e2e, needs("sklearn", "xgboost")]

# KServe's first InferenceService (seed 002), in the namespace its `kubectl -n kserve-test` puts it.
QUICK_START = """\
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
  namespace: kserve-test
spec:
  predictor:
    model:
      modelFormat:
        name: {format}
      storageUri: "{uri}"
"""
MODELS: dict[str, tuple[str, Callable[[Path], Path], list[object]]] = {
    "sklearn": ("model.joblib", write_sklearn_iris, [1, 1]),
    "xgboost": ("model.bst", write_xgboost_iris, [1.0, 1.0]),
    "onnx": ("model.onnx", lambda path: IRIS, [1, 1]),
}
assert SEED_INPUT == {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}  # what predict() sends


def trained(fmt: str, tmp_path: Path) -> tuple[str, bytes, list[object]]:
    name, write, expected = MODELS[fmt]
    return name, write(tmp_path / "trained" / name).read_bytes(), expected


@pytest.mark.parametrize("fmt", list(MODELS))
async def test_from_s3(fmt: str, s3: S3Server, serve: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, data, expected = trained(fmt, tmp_path)
    bucket = f"quickstart-{fmt}"
    s3.put(bucket, {f"models/{fmt}/iris/{name}": data})
    for variable, value in s3.env().items():
        monkeypatch.setenv(variable, value)
    _, base = await serve(QUICK_START.format(format=fmt, uri=f"s3://{bucket}/models/{fmt}/iris"))
    r = await predict(base)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected}


@pytest.mark.parametrize("fmt", list(MODELS))
async def test_from_gcs(fmt: str, gcs: GcsServer, serve: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, data, expected = trained(fmt, tmp_path)
    gcs.put("kfserving-samples", {f"models/{fmt}/iris/{name}": data})
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.env()["STORAGE_EMULATOR_HOST"])
    _, base = await serve(QUICK_START.format(format=fmt, uri=f"gs://kfserving-samples/models/{fmt}/iris"))
    r = await predict(base)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected}


# Seed 002's sklearn-inference-service.yaml as written (the older `sklearn:` key and the bucket's own
# URI, served by the GCS emulator), with no namespace: `-n kserve-test` puts it there, as `kubectl apply -n kserve-test`.
SEED_MANIFEST = """\
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
    sklearn:
      storageUri: "gs://kfserving-samples/models/sklearn/iris"
"""


async def test_the_seed_manifest_word_for_word(
    gcs: GcsServer, serve: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, data, expected = trained("sklearn", tmp_path)
    gcs.put("kfserving-samples", {f"models/sklearn/iris/{name}": data})
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.env()["STORAGE_EMULATOR_HOST"])
    _, base = await serve(SEED_MANIFEST, namespace="kserve-test")
    r = await predict(base)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    assert r.headers["x-gateway-revision"] == "sklearn-iris-predictor-00001"
