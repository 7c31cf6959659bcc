from __future__ import annotations

from typing import Any

import httpx
import pytest

from .utils import SEED_ROWS


def test_list_models(iris_url: str) -> None:
    response = httpx.get(f"{iris_url}/v1/models")
    assert response.status_code == 200
    assert response.json() == {"models": ["iris"]}


def test_model_status(iris_url: str) -> None:
    response = httpx.get(f"{iris_url}/v1/models/iris")
    assert response.status_code == 200
    assert response.json() == {"name": "iris", "ready": True}


def test_predict_seed_rows(iris_url: str) -> None:
    response = httpx.post(f"{iris_url}/v1/models/iris:predict", json={"instances": SEED_ROWS})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"predictions": [1, 1]}


def test_predict_casts_integer_instances(iris_url: str) -> None:
    response = httpx.post(f"{iris_url}/v1/models/iris:predict", json={"instances": [[7, 3, 5, 1]]})
    assert response.status_code == 200
    assert response.json() == {"predictions": [1]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"inputs": [[1, 2, 3, 4]]}', "missing 'instances'"),
        (b'{"instances": []}', "non-empty list"),
        (b'{"instances": {"a": 1}}', "non-empty list"),
        (b'{"instances": [[6.8, 2.8, 4.8]]}', "shape [1, 3]"),
        (b'{"instances": [6.8, 2.8, 4.8, 1.4]}', "shape [4]"),
        (b'{"instances": [[6.8, 2.8, 4.8, 1.4], [6.0]]}', "cannot be read as FP32"),
        (b'{"instances": [["a", "b", "c", "d"]]}', "cannot be read as FP32"),
    ],
)
def test_predict_bad_input(iris_url: str, body: bytes, needle: str) -> None:
    response = httpx.post(f"{iris_url}/v1/models/iris:predict", content=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert needle in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("GET", "/v1/models/nope", None),
        ("POST", "/v1/models/nope:predict", {"instances": SEED_ROWS}),
    ],
)
def test_unknown_model(iris_url: str, method: str, path: str, json: Any) -> None:
    response = httpx.request(method, f"{iris_url}{path}", json=json)
    assert response.status_code == 404
    assert "'nope' not found" in response.json()["error"]


def test_wrong_method_is_json(iris_url: str) -> None:
    """GET on the predict path matches the model route, with ``iris:predict`` as the model's name."""
    response = httpx.get(f"{iris_url}/v1/models/iris:predict")
    assert response.status_code == 404
    assert response.json() == {"error": "model 'iris:predict' not found; this server serves 'iris'"}
