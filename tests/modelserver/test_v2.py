from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway import __version__

from .utils import SEED_ROWS

IRIS_METADATA = {
    "name": "iris",
    "versions": ["1"],
    "platform": "onnxruntime_onnx",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ],
}


def seed_input(**overrides: Any) -> dict[str, Any]:
    flat = [value for row in SEED_ROWS for value in row]
    return {"name": "input", "shape": [2, 4], "datatype": "FP32", "data": flat, **overrides}


def infer(url: str, body: Any, model: str = "iris") -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{model}/infer", json=body)


def test_server_metadata(iris_url: str) -> None:
    response = httpx.get(f"{iris_url}/v2")
    assert response.status_code == 200
    assert response.json() == {
        "name": "serving-gateway-modelserver",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }


def test_health(iris_url: str) -> None:
    assert httpx.get(f"{iris_url}/v2/health/live").json() == {"live": True}
    ready = httpx.get(f"{iris_url}/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}


@pytest.mark.parametrize("prefix", ["/v2/models/iris", "/v2/models/iris/versions/1"])
def test_model_metadata_and_ready(iris_url: str, prefix: str) -> None:
    assert httpx.get(f"{iris_url}{prefix}").json() == IRIS_METADATA
    ready = httpx.get(f"{iris_url}{prefix}/ready")
    assert ready.status_code == 200
    assert ready.json() == {"name": "iris", "ready": True}


def test_infer_flat_data(iris_url: str) -> None:
    response = infer(iris_url, {"id": "req-1", "inputs": [seed_input()]})
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "iris"
    assert body["model_version"] == "1"
    assert body["id"] == "req-1"
    label, probabilities = body["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 1]}
    assert probabilities["name"] == "probabilities"
    assert probabilities["datatype"] == "FP32"
    assert probabilities["shape"] == [2, 3]
    assert len(probabilities["data"]) == 6
    assert sum(probabilities["data"][:3]) == pytest.approx(1.0, abs=1e-5)


def test_infer_nested_data_and_versioned_path(iris_url: str) -> None:
    body = {"inputs": [seed_input(data=SEED_ROWS)]}
    response = httpx.post(f"{iris_url}/v2/models/iris/versions/1/infer", json=body)
    assert response.status_code == 200
    assert "id" not in response.json()
    assert response.json()["outputs"][0]["data"] == [1, 1]


def test_infer_selects_outputs(iris_url: str) -> None:
    body = {"inputs": [seed_input()], "outputs": [{"name": "probabilities"}]}
    outputs = infer(iris_url, body).json()["outputs"]
    assert [output["name"] for output in outputs] == ["probabilities"]


def test_infer_empty_batch(iris_url: str) -> None:
    response = infer(iris_url, {"inputs": [seed_input(shape=[0, 4], data=[])]})
    assert response.status_code == 200
    assert response.json()["outputs"][0] == {
        "name": "label",
        "datatype": "INT64",
        "shape": [0],
        "data": [],
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"inputs": [seed_input(name="features")]},
            "unknown input 'features'; the model's inputs are: input",
        ),
        (
            {"inputs": [seed_input(datatype="FP64")]},
            "datatype FP64 does not match the model's FP32",
        ),
        ({"inputs": [seed_input(datatype="FLOAT32")]}, "unknown datatype 'FLOAT32'"),
        ({"inputs": [seed_input(datatype=["FP32"])]}, "unknown datatype ['FP32']"),
        ({"inputs": [{"name": "input", "shape": [2, 4], "data": [1] * 8}]}, "missing 'datatype'"),
        (
            {"inputs": [seed_input(shape=[2, 3], data=[1.0] * 6)]},
            "shape [2, 3] does not fit the model's [-1, 4]",
        ),
        ({"inputs": [seed_input(shape=[8])]}, "shape [8] does not fit"),
        (
            {"inputs": [seed_input(shape=[2, -4])]},
            "'shape' must be a list of non-negative integers",
        ),
        ({"inputs": [seed_input(shape="2x4")]}, "'shape' must be a list of non-negative integers"),
        ({"inputs": [{"name": "input", "datatype": "FP32", "data": [1] * 8}]}, "missing 'shape'"),
        ({"inputs": [seed_input(data=[1.0] * 7)]}, "shape needs 8 values, 'data' has 7"),
        ({"inputs": [seed_input(data=[1.0] * 9)]}, "shape needs 8 values, 'data' has 9"),
        ({"inputs": [seed_input(data=["a"] * 8)]}, "'data' holds values that are not FP32"),
        ({"inputs": [seed_input(data=[[1.0] * 4, [1.0] * 3])]}, "not a regular"),
        ({"inputs": [seed_input(data=1.0)]}, "'data' must be a list"),
        ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32"}]}, "missing 'data'"),
        ({"inputs": [seed_input(), seed_input()]}, "given twice"),
        ({"inputs": [{"shape": [1]}]}, "inputs[0]: missing 'name'"),
        ({"inputs": ["input"]}, "inputs[0] must be an object"),
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"instances": SEED_ROWS}, "missing 'inputs'"),
        ({"id": 7, "inputs": [seed_input()]}, "'id' must be a string"),
        ({"inputs": [seed_input()], "outputs": [{"name": "score"}]}, "unknown output 'score'"),
        ({"inputs": [seed_input()], "outputs": [{}]}, "outputs[0]: missing 'name'"),
        (
            {
                "inputs": [seed_input()],
                "outputs": [{"name": "label", "parameters": {"classification": 2}}],
            },
            "classification extension is not supported",
        ),
    ],
)
def test_infer_bad_input(iris_url: str, body: dict[str, Any], needle: str) -> None:
    response = infer(iris_url, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert needle in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"{oops", "malformed JSON"), (b'"inputs"', "JSON object"), (b"\xff\xfe", "malformed JSON")],
)
def test_infer_malformed_body(iris_url: str, content: bytes, needle: str) -> None:
    response = httpx.post(f"{iris_url}/v2/models/iris/infer", content=content)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_infer_missing_input(identity_url: str) -> None:
    body = {"inputs": [{"name": "in_INT32", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}]}
    response = infer(identity_url, body, model="identity")
    assert response.status_code == 400
    assert response.json()["error"] == "missing input 'in_BOOL'"


@pytest.mark.parametrize(
    ("datatype", "data", "needle"),
    [
        ("UINT8", [256, 0], "not UINT8"),
        ("INT8", [-129, 0], "not INT8"),
        ("INT32", [1.5, 2], "not INT32"),
        ("BOOL", [1, 0], "not BOOL"),
        ("BYTES", [1, 2], "not BYTES"),
    ],
)
def test_infer_values_out_of_datatype(identity_url: str, datatype: str, data: list[Any], needle: str) -> None:
    body = {"inputs": [{"name": f"in_{datatype}", "shape": [1, 2], "datatype": datatype, "data": data}]}
    response = infer(identity_url, body, model="identity")
    assert response.status_code == 400
    assert needle in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/nope"),
        ("GET", "/v2/models/nope/ready"),
        ("POST", "/v2/models/nope/infer"),
        ("GET", "/v2/models/iris/versions/2"),
        ("GET", "/v2/models/iris/versions/2/ready"),
        ("POST", "/v2/models/iris/versions/2/infer"),
    ],
)
def test_unknown_model_or_version(iris_url: str, method: str, path: str) -> None:
    body = json.dumps({"inputs": [seed_input()]}) if method == "POST" else None
    response = httpx.request(method, f"{iris_url}{path}", content=body)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "not found" in response.json()["error"] or "no version '2'" in response.json()["error"]


def test_unknown_path_and_method_are_json(iris_url: str) -> None:
    missing = httpx.get(f"{iris_url}/v3/anything")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found"}
    wrong_method = httpx.get(f"{iris_url}/v2/models/iris/infer")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "Method Not Allowed"}


def test_all_datatypes_round_trip_as_json(identity_url: str) -> None:
    values: dict[str, list[Any]] = {
        "BOOL": [True, False],
        "UINT8": [0, 255],
        "UINT16": [0, 65535],
        "UINT32": [0, 2**32 - 1],
        "UINT64": [0, 2**64 - 1],
        "INT8": [-128, 127],
        "INT16": [-(2**15), 2**15 - 1],
        "INT32": [-(2**31), 2**31 - 1],
        "INT64": [-(2**63), 2**63 - 1],
        "FP16": [0.5, -2.0],
        "FP32": [1.5, -0.25],
        "FP64": [1e-300, 1e300],
        "BYTES": ["héllo", ""],
    }
    inputs = [{"name": f"in_{t}", "shape": [1, 2], "datatype": t, "data": v} for t, v in values.items()]
    response = infer(identity_url, {"inputs": inputs}, model="identity")
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    for datatype, data in values.items():
        assert outputs[f"out_{datatype}"] == {
            "name": f"out_{datatype}",
            "datatype": datatype,
            "shape": [1, 2],
            "data": data,
        }


def test_identity_metadata_lists_every_datatype(identity_url: str) -> None:
    metadata = httpx.get(f"{identity_url}/v2/models/identity").json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]][:2] == [
        ("in_BOOL", "BOOL", [-1, 2]),
        ("in_UINT8", "UINT8", [-1, 2]),
    ]
    assert {o["datatype"] for o in metadata["outputs"]} == {
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
        "FP16", "FP32", "FP64", "BYTES",
    }  # fmt: skip
